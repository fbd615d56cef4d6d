"""mentorpay's Alembic environment, usable on its own or from a host's Alembic setup.

mentorpay keeps its revision in its own version table (``mentorpay_alembic_version``) so its
migrations never collide with the host application's Alembic history.

Several processes may upgrade at once (``uvicorn --workers 4`` on an empty database): the whole
upgrade, from reading the current revision to recording the new one, is one transaction that
first takes a lock, so the others wait, then find the schema at head and do nothing.

- PostgreSQL: a *transaction-scoped* advisory lock (``pg_advisory_xact_lock``), keyed by the
  current schema. It is released by the commit or rollback, so it cannot leak on a pooled
  connection and works through PgBouncer in transaction mode, unlike a session lock that needs
  an unlock on the same server connection. PostgreSQL's DDL is transactional, so a failed upgrade
  leaves nothing half-applied.
- SQLite: the same single transaction, begun ``BEGIN IMMEDIATE`` by mentorpay's engine (see
  :func:`mentorpay.db.make_engine`), which is SQLite's writer lock.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

from mentorpay.db import outages_typed

__all__ = ["MIGRATIONS_DIR", "VERSION_TABLE", "alembic_config", "lock_for_upgrade", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parent
VERSION_TABLE = "mentorpay_alembic_version"
#: First half of the two-int advisory-lock key ("ment"); the second is the schema's hash. The
#: two-int key space never collides with the one-bigint keys the webhooks lock payments with.
_LOCK_CLASS = 0x6D656E74


def alembic_config(engine: Engine) -> Config:
    """An Alembic Config pointing at mentorpay's migrations, bound to ``engine``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply mentorpay's migrations up to ``revision`` (idempotent; safe to run from several
    processes at once). A database that cannot be reached raises ``DatabaseUnavailableError``."""
    with outages_typed():
        command.upgrade(alembic_config(engine), revision)


def lock_for_upgrade(connection: Connection) -> None:
    """Take the migration lock inside the upgrade's transaction (PostgreSQL; see above)."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:cls, hashtext(coalesce(current_schema(), '')))"),
            {"cls": _LOCK_CLASS},
        )
