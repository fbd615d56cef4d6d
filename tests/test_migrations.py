"""The Alembic migration creates exactly what the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from mentorpay.db import make_engine
from mentorpay.migrations import VERSION_TABLE, upgrade
from mentorpay.models import metadata
from mentorpay.testing import postgres_engine
from tests.conftest import POSTGRES_URL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database with no tables."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'migrate.db'}")
        yield engine
        engine.dispose()
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
