"""Every query of the CLI, stats, reconcile, release_due and the dashboard uses an index on a
journal-sized table.

PostgreSQL only (its planner decides; SQLite's would say little about production). A schema is
seeded with a valid ledger of 10k payments (about 50k journal entries, see ``benchmarks/seed.py``)
and ANALYZEd; the commands run while a ``before_cursor_execute`` listener records every statement
they send; each is then EXPLAINed with its own parameters, and a sequential scan of a table that
grows with the business (entries, transactions, payments, the inbox) fails the test.

Left out on purpose: ``ledger verify``, a full scan by design (it re-adds the whole journal), and
the posting path's single-row inserts and upserts sent straight to the driver
(``db.driver_execute``), which the listener does not see and which are keyed by unique indexes.

Also here, on SQLite too: the migration creates the partial indexes exactly as the models declare
them (autogenerate, in ``test_migrations.py``, does not compare their predicates).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from benchmarks.seed import Seeded, seed
from sqlalchemy import Engine, event, text

from mentorpay import MentorPay, MentorpayConfig, Money
from mentorpay.cli import Output, main
from mentorpay.db import make_engine
from mentorpay.migrations import VERSION_TABLE, upgrade
from mentorpay.testing import (
    FakeGateway,
    InMemoryBookings,
    booking_metadata,
    payment_intent,
    postgres_engine,
    sqlite_engine,
)
from tests.conftest import POSTGRES_URL

#: Tables whose size grows with every payment, checkout or webhook: never scanned whole.
JOURNAL_TABLES = frozenset(
    {
        "mentorpay_checkout_sessions",
        "mentorpay_ledger_entries",
        "mentorpay_ledger_transactions",
        "mentorpay_payments",
        "mentorpay_webhook_events",
    }
)
PAYMENTS = 10_000


@dataclass
class SeededDatabase:
    """The seeded engine, a CLI URL for its schema, and what was seeded."""

    engine: Engine
    url: str
    plan: Seeded


@pytest.fixture(scope="module")
def seeded() -> Iterator[SeededDatabase]:
    """A schema of its own holding 10k seeded payments, and a URL for the CLI that points at it."""
    if not POSTGRES_URL:
        pytest.skip("MENTORPAY_TEST_POSTGRES_URL is not set")
    with postgres_engine(POSTGRES_URL) as engine:
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        # 2% due: release_due's statements run for real (one transaction per payment today).
        plan = seed(engine, PAYMENTS, due_share=0.02)
        options = quote(f"-csearch_path={schema}")
        separator = "&" if "?" in POSTGRES_URL else "?"
        yield SeededDatabase(engine, f"{POSTGRES_URL}{separator}options={options}", plan)


class Recorder:
    """Statements sent through SQLAlchemy to mentorpay's tables, each once, with parameters."""

    def __init__(self) -> None:
        self.statements: dict[str, Any] = {}

    def __call__(
        self,
        _conn: Any,
        _cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        if "mentorpay_" not in statement or VERSION_TABLE in statement or executemany:
            return
        if statement.lstrip().split(None, 1)[0].upper() in ("SELECT", "UPDATE", "DELETE", "WITH"):
            self.statements.setdefault(statement, parameters)


def _run_cli(url: str, *argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--url", url], out=Output(out, err))
    assert code == 0, err.getvalue()
    return out.getvalue()


def _short(statement: str) -> str:
    """The statement on one line, its column list elided: the WHERE clause is what matters."""
    flat = " ".join(statement.split())
    return re.sub(r"^SELECT .*? FROM ", "SELECT ... FROM ", flat)[:400]


def _stripe_side(day: datetime) -> FakeGateway:
    """Stripe's record of ``day``: a payment, its refund and dispute, a payout's transfer, so
    that reconcile runs its lookups by id (``IN (...)``) as well as its period queries."""
    gateway = FakeGateway(clock=lambda: day + timedelta(hours=1))
    pi = f"pi_seed_{PAYMENTS - 100}"
    metadata = booking_metadata(f"b_seed_{PAYMENTS - 100}", mentor_id="m1", mentee_id="u1")
    gateway.add_payment_intent(payment_intent(id=pi, amount=5000, metadata=metadata))
    gateway.create_refund(payment_intent_id=pi, amount=Money(100, "GBP"), idempotency_key="r1")
    gateway.open_dispute(pi)
    gateway.create_transfer(
        amount=Money(100, "GBP"),
        destination="acct_plans",
        idempotency_key="t1",
        metadata={"payout_request_id": "1"},
    )
    return gateway


def _scans(plan: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    yield plan["Node Type"], plan.get("Relation Name")
    for child in plan.get("Plans", []):
        yield from _scans(child)


@pytest.mark.postgres
def test_no_sequential_scan_of_a_journal_table(seeded: SeededDatabase) -> None:
    """No query of the CLI, stats, reconcile, release_due or dashboard scans a journal table."""
    url, plan = seeded.url, seeded.plan
    day = plan.end - timedelta(days=3)
    since, until = day.isoformat(), (day + timedelta(days=1)).isoformat()
    recorder = Recorder()
    event.listen(Engine, "before_cursor_execute", recorder)
    try:
        _run_cli(url, "balance", "m1")
        _run_cli(url, "events", "list")
        _run_cli(url, "events", "list", "--status", "deferred")
        _run_cli(url, "events", "list", "--status", "processed", "--type", "charge.refunded")
        _run_cli(url, "events", "list", "--stale")
        _run_cli(url, "payments", "review")
        _run_cli(url, "payouts", "list")
        _run_cli(url, "payouts", "list", "--mentor", "m1", "--status", "paid")
        _run_cli(url, "stats", "--since", since, "--until", until)
        released = _run_cli(url, "release-due", "--now", plan.end.isoformat())
        assert f"released {plan.due} payment(s)" in released
        mp = MentorPay(
            MentorpayConfig(webhook_secrets=["whsec_plans"]),
            seeded.engine,
            bookings=InMemoryBookings([]),
            gateway=_stripe_side(day),
        )
        first = mp.ledger.history("m1", limit=4)
        assert first.next_cursor is not None
        mp.ledger.history("m1", limit=4, cursor=first.next_cursor)
        mp.ledger.history("u1", role="mentee", limit=4)
        mp.analytics.summary(day, day + timedelta(days=1))
        mp.reconcile(day, day + timedelta(days=1))
        board = mp.dashboard.overview(day - timedelta(days=6), day + timedelta(days=1))
        assert board.currencies and board.last_reconciliation is not None
        assert mp.dashboard.earnings("m1", day - timedelta(days=6), day + timedelta(days=1)).earned
    finally:
        event.remove(Engine, "before_cursor_execute", recorder)

    assert len(recorder.statements) >= 15  # the listener saw the commands' queries
    assert sum(" IN (" in s for s in recorder.statements) >= 3  # reconcile's lookups by id
    offenders: list[str] = []
    raw = seeded.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in recorder.statements.items():
            cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
            explained = cursor.fetchone()[0]
            tree = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
            for node, relation in _scans(tree):
                if node == "Seq Scan" and relation in JOURNAL_TABLES:
                    offenders.append(f"{relation}: {_short(statement)}")
        raw.rollback()
    finally:
        raw.close()
    assert offenders == [], "\n".join(offenders)


def _index_definitions(engine: Engine) -> list[str]:
    if engine.dialect.name == "sqlite":
        query = "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    else:  # the schema's name differs between the two engines: keep what follows it
        query = (
            "SELECT regexp_replace(indexdef, ' ON [^.]+\\.', ' ON ') FROM pg_indexes"
            " WHERE schemaname = current_schema() AND indexname NOT LIKE 'pk\\_%'"
        )
    with engine.connect() as conn:
        return sorted(str(row[0]) for row in conn.execute(text(query)))


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_migration_and_models_create_the_same_indexes(backend: str, tmp_path: Any) -> None:
    """Partial-index predicates, which autogenerate does not compare, match create_all's."""
    if backend == "sqlite":
        declared, migrated = (
            sqlite_engine(tmp_path, "a.db"),
            make_engine(f"sqlite:///{tmp_path}/b.db"),
        )
        upgrade(migrated)
        try:
            assert _index_definitions(declared) == _index_definitions(migrated)
        finally:
            declared.dispose()
            migrated.dispose()
        return
    if not POSTGRES_URL:
        pytest.skip("MENTORPAY_TEST_POSTGRES_URL is not set")
    with (
        postgres_engine(POSTGRES_URL) as declared,
        postgres_engine(POSTGRES_URL, create_tables=False) as migrated,
    ):
        upgrade(migrated)
        found = _index_definitions(migrated)
        assert any("WHERE" in d for d in found)
        assert _index_definitions(declared) == [d for d in found if VERSION_TABLE not in d]
