"""Shared fixtures: every database test runs on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import Engine

from mentorpay.testing import POSTGRES_URL_ENV, postgres_engine, sqlite_engine, truncate_all

POSTGRES_URL = os.environ.get(POSTGRES_URL_ENV)

# Tests that leave the example count to the profile (the payment-lifecycle ordering test) run a
# modest number in CI; HYPOTHESIS_PROFILE=thorough runs many more locally. Tests that set
# max_examples themselves are unaffected.
settings.register_profile("ci", max_examples=100, deadline=None)
settings.register_profile("thorough", max_examples=3000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def _pg_engine() -> Iterator[Engine | None]:
    if not POSTGRES_URL:
        yield None
        return
    # Set but unreachable must fail loudly, never skip: CI relies on these tests running.
    with postgres_engine(POSTGRES_URL) as engine:
        yield engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A clean database with mentorpay's tables, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        eng = sqlite_engine(tmp_path)
        yield eng
        eng.dispose()
        return
    pg: Engine | None = request.getfixturevalue("_pg_engine")
    if pg is None:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set")
    truncate_all(pg)
    yield pg


@pytest.fixture
def pg_engine(_pg_engine: Engine | None) -> Engine:
    """A clean PostgreSQL database; skipped when none is configured."""
    if _pg_engine is None:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set")
    truncate_all(_pg_engine)
    return _pg_engine
