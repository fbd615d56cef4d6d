"""Shared fixtures: every database test runs on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from hypothesis import settings
from sqlalchemy import Engine

from mentorpay.testing import POSTGRES_URL_ENV, postgres_engine, sqlite_engine, truncate_all
from tests.fixtures.pooler import PGBOUNCER_URL_ENV, pgbouncer_engine

POSTGRES_URL = os.environ.get(POSTGRES_URL_ENV)
PGBOUNCER_URL = os.environ.get(PGBOUNCER_URL_ENV)

#: The database legs of most tests, and the same plus PgBouncer in transaction pooling mode for
#: the tests that must hold behind a pooler (concurrency, storm, payouts).
DB_LEGS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
DB_LEGS_WITH_POOLER = [*DB_LEGS, pytest.param("pgbouncer", marks=pytest.mark.pgbouncer)]
PG_LEGS = [
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("pgbouncer", marks=pytest.mark.pgbouncer),
]

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


@pytest.fixture(scope="session")
def _bouncer_engine() -> Iterator[Engine | None]:
    if not PGBOUNCER_URL:
        yield None
        return
    if not POSTGRES_URL:
        raise RuntimeError(f"{PGBOUNCER_URL_ENV} needs {POSTGRES_URL_ENV} (to create its database)")
    with pgbouncer_engine(POSTGRES_URL, PGBOUNCER_URL) as engine:
        yield engine


def database_leg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The clean database of one leg: sqlite, postgres or pgbouncer (skipped if unset)."""
    if request.param == "sqlite":
        eng = sqlite_engine(tmp_path)
        yield eng
        eng.dispose()
        return
    if request.param == "pgbouncer":
        found: Engine | None = request.getfixturevalue("_bouncer_engine")
        missing = PGBOUNCER_URL_ENV
    else:
        found = request.getfixturevalue("_pg_engine")
        missing = POSTGRES_URL_ENV
    if found is None:
        pytest.skip(f"{missing} is not set")
    truncate_all(found)
    yield found


@pytest.fixture(params=DB_LEGS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A clean database with mentorpay's tables, on SQLite and on PostgreSQL."""
    yield from database_leg(request, tmp_path)


@pytest.fixture(params=PG_LEGS)
def pg_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A clean PostgreSQL database, direct and through PgBouncer; skipped when not configured."""
    yield from database_leg(request, tmp_path)


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """Stripe's HTTP API intercepted: every request must be expected, none reaches the
    network (modules with their own ``http`` fixture override this one)."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock
