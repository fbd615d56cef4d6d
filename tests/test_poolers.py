"""Behind PgBouncer in transaction pooling mode (issue 9, case 1), and the pooler setting itself.

Each transaction may run on another server connection there: psycopg's automatic prepared
statements cross between clients (``DuplicatePreparedStatement``, ``InvalidSqlStatementName``,
``bind message supplies 5 parameters``) unless ``make_engine`` turns them off.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from mentorpay.app import MentorPay
from mentorpay.config import MentorpayConfig
from mentorpay.db import make_engine, pooler_from_env
from mentorpay.errors import ConfigurationError
from mentorpay.money import Money
from mentorpay.payouts import PayoutService
from mentorpay.testing import (
    FakeGateway,
    InMemoryBookings,
    encode_event,
    sign_payload,
    truncate_all,
)
from tests.conftest import POSTGRES_URL
from tests.fixtures.webhook_support import NOW, SECRET, intent_succeeded, make_harness

THREADS = 4
PAYMENTS = 240  # each delivered twice: 480 webhooks


@pytest.fixture
def bouncer(_bouncer_engine: Engine | None) -> Engine:
    """A clean database reached through PgBouncer in transaction mode (the default engine)."""
    if _bouncer_engine is None:
        pytest.skip("MENTORPAY_TEST_PGBOUNCER_URL is not set")
    truncate_all(_bouncer_engine)
    return _bouncer_engine


@pytest.mark.pgbouncer
def test_webhooks_release_and_a_payout_cycle_through_pgbouncer(bouncer: Engine) -> None:
    """4 threads, 480 webhooks, release, release_due and a payout cycle: no error, exact sums."""
    h = make_harness(bouncer)
    mentors = ["m1", "m2", "m3", "m4"]
    bodies = []
    for i in range(PAYMENTS):
        body = encode_event(intent_succeeded(f"pi_{i}", mentor=mentors[i % 4]))
        bodies += [(body, sign_payload(body, SECRET))] * 2
    results: list[Any] = []
    lock = threading.Lock()
    work = iter(bodies)

    def worker() -> None:
        while True:
            with lock:
                item = next(work, None)
            if item is None:
                return
            try:
                got: Any = h.processor.process(*item).status
            except Exception as exc:  # every failure is counted, not just the first
                got = f"{type(exc).__name__}: {exc}"
            with lock:
                results.append(got)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = Counter(results)
    assert counts == {"success": PAYMENTS, "already_processed": PAYMENTS}, counts

    assert [p.created for p in h.ledger.release("bpi_0")] == [True]
    released = h.ledger.release_due(NOW + timedelta(days=8))
    assert len(released) == PAYMENTS - 1
    share = 4500 * PAYMENTS // 4
    assert h.ledger.balance("m1", "GBP").available == Money(share, "GBP")

    payouts = PayoutService(h.config, bouncer, h.ledger, FakeGateway())
    view = payouts.request("m1", Money(share, "GBP"), destination="bank 1")
    payouts.approve(view.id, approver="admin")
    payouts.execute(view.id)
    assert payouts.mark_paid(view.id, reference="wire-1").status == "paid"
    after = h.ledger.balance("m1", "GBP")
    assert (after.available.amount, after.reserved.amount, after.withdrawn.amount) == (0, 0, share)
    assert h.ledger.verify().ok


def _prepare_threshold(engine: Engine) -> Any:
    raw = engine.raw_connection()
    try:
        return raw.driver_connection.prepare_threshold
    finally:
        raw.close()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("pooler", "expected"), [(None, None), ("transaction", None), ("session", 5), ("none", 5)]
)
def test_prepared_statements_are_off_unless_the_connection_is_known_direct(
    pooler: Any, expected: int | None
) -> None:
    """Transaction pooling or an unknown path turns psycopg's prepared statements off."""
    if not POSTGRES_URL:
        pytest.skip("MENTORPAY_TEST_POSTGRES_URL is not set")
    engine = make_engine(POSTGRES_URL, pooler=pooler)
    try:
        assert _prepare_threshold(engine) == expected
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_an_explicit_prepare_threshold_wins() -> None:
    """connect_args={"prepare_threshold": 2} is kept even when the pooler is unknown."""
    if not POSTGRES_URL:
        pytest.skip("MENTORPAY_TEST_POSTGRES_URL is not set")
    engine = make_engine(POSTGRES_URL, connect_args={"prepare_threshold": 2})
    try:
        assert _prepare_threshold(engine) == 2
    finally:
        engine.dispose()


def test_an_unknown_pooler_is_a_configuration_error() -> None:
    """pooler="statement" (mentorpay needs multi-statement transactions) is refused."""
    with pytest.raises(ConfigurationError):
        make_engine("postgresql+psycopg://u@127.0.0.1/db", pooler="statement")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", "transaction"), ("transaction", "transaction"), ("session", "session"), ("0", "none")],
)
def test_mentorpay_pgbouncer_names_the_pooler(value: str, expected: str) -> None:
    """MENTORPAY_PGBOUNCER reaches MentorpayConfig.pooler through from_env."""
    env = {"STRIPE_WEBHOOK_SECRET": "whsec_x", "MENTORPAY_PGBOUNCER": value}
    assert pooler_from_env(env) == expected
    assert MentorpayConfig.from_env(env).pooler == expected


def test_mentorpay_pgbouncer_rejects_nonsense() -> None:
    """MENTORPAY_PGBOUNCER=maybe is a ConfigurationError, not a silent default."""
    with pytest.raises(ConfigurationError):
        MentorpayConfig.from_env(
            {"STRIPE_WEBHOOK_SECRET": "whsec_x", "MENTORPAY_PGBOUNCER": "maybe"}
        )


@pytest.mark.pgbouncer
def test_from_env_with_mentorpay_pgbouncer_works_through_the_pooler(bouncer: Engine) -> None:
    """MentorPay.from_env(MENTORPAY_PGBOUNCER=1) sends repeated queries through PgBouncer."""
    env = {
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
        "MENTORPAY_DATABASE_URL": bouncer.url.render_as_string(hide_password=False),
        "MENTORPAY_PGBOUNCER": "1",
    }
    mp = MentorPay.from_env(bookings=InMemoryBookings(), gateway=FakeGateway(), environ=env)
    try:
        assert _prepare_threshold(mp.engine) is None
        for _ in range(20):  # past psycopg's default threshold of 5 executions
            assert mp.ledger.balances("nobody") == []
    finally:
        mp.engine.dispose()
