"""The Alembic migration creates exactly what the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from mentorpay.db import make_engine
from mentorpay.migrations import VERSION_TABLE, upgrade
from mentorpay.models import metadata
from mentorpay.testing import postgres_engine
from tests.conftest import PG_LEGS, PGBOUNCER_URL, POSTGRES_URL
from tests.fixtures.pooler import pgbouncer_engine


@pytest.fixture(params=["sqlite", *PG_LEGS])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database with no tables (SQLite, PostgreSQL, PostgreSQL through PgBouncer)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'migrate.db'}")
        yield engine
        engine.dispose()
        return
    if request.param == "pgbouncer":
        if not (PGBOUNCER_URL and POSTGRES_URL):
            pytest.skip("MENTORPAY_TEST_PGBOUNCER_URL is not set")
        with pgbouncer_engine(POSTGRES_URL, PGBOUNCER_URL, create_tables=False) as engine:
            yield engine
        return
    if not POSTGRES_URL:
        pytest.skip("MENTORPAY_TEST_POSTGRES_URL is not set")
    with postgres_engine(POSTGRES_URL, create_tables=False) as engine:
        yield engine


def test_migrated_schema_matches_models(empty_engine: Engine) -> None:
    """After upgrade to head, autogenerate finds no difference between database and models."""
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)]
    assert diff == []


def test_upgrade_is_idempotent_and_uses_its_own_version_table(empty_engine: Engine) -> None:
    """Running upgrade twice is harmless and records mentorpay's revision in its own table."""
    upgrade(empty_engine)
    upgrade(empty_engine)
    tables = set(inspect(empty_engine).get_table_names())
    assert VERSION_TABLE in tables
    assert "alembic_version" not in tables
    assert {t.name for t in metadata.sorted_tables} <= tables


ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 4


def _schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    return [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)]


def test_four_processes_upgrading_an_empty_database_at_once_all_succeed(
    empty_engine: Engine, tmp_path: Path
) -> None:
    """4 processes run upgrade() at the same instant: all exit 0, one schema, one version row."""
    if empty_engine.dialect.name == "sqlite":
        url, schema = empty_engine.url.render_as_string(hide_password=False), "-"
    else:
        with empty_engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        schema = "-" if schema == "public" else schema  # PgBouncer: a database of its own
        url = empty_engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.fixtures.upgrade_worker", url, schema],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    for p in procs:  # every process connected and waiting at the start line
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    failures = [err[-2000:] for code, _, err in outcomes if code != 0]
    assert failures == []
    assert [out.strip() for _, out, _ in outcomes] == ["upgraded"] * PROCESSES
    assert _schema_diff(empty_engine) == []
    with empty_engine.connect() as conn:
        versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    assert len(versions) == 1
