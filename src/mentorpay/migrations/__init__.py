"""mentorpay's Alembic environment, usable on its own or from a host's Alembic setup.

mentorpay keeps its revision in its own version table (``mentorpay_alembic_version``) so its
migrations never collide with the host application's Alembic history.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

__all__ = ["MIGRATIONS_DIR", "VERSION_TABLE", "alembic_config", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parent
VERSION_TABLE = "mentorpay_alembic_version"


def alembic_config(engine: Engine) -> Config:
    """An Alembic Config pointing at mentorpay's migrations, bound to ``engine``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply mentorpay's migrations up to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(engine), revision)
