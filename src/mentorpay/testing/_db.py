"""Database fixtures users can reuse: a file-backed SQLite engine, an isolated PostgreSQL schema.

Both return engines configured by :func:`mentorpay.db.make_engine` with mentorpay's tables
created, so users' tests run against the same transaction setup as production.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from mentorpay.db import make_engine
from mentorpay.models import metadata

__all__ = ["POSTGRES_URL_ENV", "postgres_engine", "sqlite_engine", "truncate_all"]

#: Environment variable naming the PostgreSQL server for tests.
POSTGRES_URL_ENV = "MENTORPAY_TEST_POSTGRES_URL"


def sqlite_engine(directory: Path | str, name: str = "mentorpay-test.db") -> Engine:
    """A fresh SQLite database file in ``directory`` with mentorpay's tables."""
    path = Path(directory) / name
    engine = make_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    return engine


@contextmanager
def postgres_engine(url: str, *, create_tables: bool = True) -> Iterator[Engine]:
    """An engine confined to a new, uniquely named schema, dropped afterwards.

    Separate schemas let several test runs share one server without seeing each other's rows.
    """
    schema = f"mentorpay_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    # Direct by construction: poolers such as PgBouncer refuse the "options" startup parameter,
    # so prepared statements may stay on (see make_engine's ``pooler``).
    engine = make_engine(url, pooler="none", connect_args={"options": f"-csearch_path={schema}"})
    try:
        if create_tables:
            metadata.create_all(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def truncate_all(engine: Engine) -> None:
    """Empty every mentorpay table (fast reset between tests on a shared database)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
