"""Concurrency on PostgreSQL: real threads posting for one mentor lose no update."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from mentorpay.commission import CommissionPolicy
from mentorpay.db import run_in_transaction
from mentorpay.errors import InsufficientBalanceError
from mentorpay.ledger import LedgerService
from mentorpay.money import Money

pytestmark = pytest.mark.postgres
POLICY = CommissionPolicy(rate_bps=1000)
THREADS = 8


def run_threads(work: Callable[[int], None]) -> list[BaseException]:
    """Run work(i) in THREADS threads started together; return what they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def target(i: int) -> None:
        barrier.wait()
        try:
            work(i)
        except BaseException as exc:  # collected and asserted on by the test
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_eight_threads_payments_refunds_payouts_exact(pg_engine: Engine) -> None:
    """8 threads of payments, refunds and payout requests end with exact balances."""
    ledger = LedgerService(pg_engine)
    released = 0
    for i in range(16):
        ledger.record_payment(
            payment_intent_id=f"pi_seed_{i}",
            booking_id=f"seed{i}",
            mentor_id="m1",
            mentee_id="u",
            gross=Money(10_000, "GBP"),
            policy=POLICY,
        )
        ledger.release_payment(f"pi_seed_{i}")
        released += 9_000
    reserved: list[int] = []
    refunded_pending: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        rng = random.Random(i)
        for j in range(12):
            pi = f"pi_{i}_{j}"
            ledger.record_payment(
                payment_intent_id=pi,
                booking_id=pi,
                mentor_id="m1",
                mentee_id="u",
                gross=Money(5_000, "GBP"),
                policy=POLICY,
            )
            ledger.apply_refund_total(pi, Money(2_000, "GBP"))
            # A duplicate of the same cumulative refund must be harmless under concurrency.
            ledger.apply_refund_total(pi, Money(2_000, "GBP"))
            with lock:
                refunded_pending.append(1_800)
            amount = rng.randint(500, 4_000)
            payout_id = i * 100 + j

            def reserve(conn, payout_id=payout_id, amount=amount):  # type: ignore[no-untyped-def]
                return ledger.reserve_payout(conn, payout_id, "m1", Money(amount, "GBP"))

            try:
                run_in_transaction(pg_engine, reserve)
            except InsufficientBalanceError:
                continue
            with lock:
                reserved.append(amount)

    errors = run_threads(work)
    assert errors == []
    view = ledger.balance("m1", "GBP")
    assert view.reserved.amount == sum(reserved)
    assert view.available.amount == released - sum(reserved)
    assert view.available.amount >= 0, "a payout exceeded available"
    assert view.pending.amount == THREADS * 12 * 4_500 - sum(refunded_pending)
    report = ledger.verify()
    assert report.ok, report.problems


def test_concurrent_payout_requests_never_exceed_available(pg_engine: Engine) -> None:
    """Eight simultaneous requests for 60% of available: exactly one succeeds."""
    ledger = LedgerService(pg_engine)
    ledger.record_payment(
        payment_intent_id="pi_1",
        booking_id="b",
        mentor_id="m1",
        mentee_id="u",
        gross=Money(10_000, "GBP"),
        policy=POLICY,
    )
    ledger.release_payment("pi_1")
    wins: list[int] = []

    def work(i: int) -> None:
        try:
            run_in_transaction(
                pg_engine,
                lambda conn: ledger.reserve_payout(conn, i + 1, "m1", Money(5_400, "GBP")),
            )
        except InsufficientBalanceError:
            return
        wins.append(i)

    assert run_threads(work) == []
    assert len(wins) == 1
    view = ledger.balance("m1", "GBP")
    assert (view.available.amount, view.reserved.amount) == (3_600, 5_400)
    assert ledger.verify().ok


def test_concurrent_duplicate_payment_records_once(pg_engine: Engine) -> None:
    """Eight threads recording the same payment intent create it exactly once."""
    ledger = LedgerService(pg_engine)
    created: list[bool] = []

    def work(_: int) -> None:
        out = ledger.record_payment(
            payment_intent_id="pi_same",
            booking_id="b",
            mentor_id="m1",
            mentee_id="u",
            gross=Money(7_000, "GBP"),
            policy=POLICY,
        )
        created.append(out.created)

    assert run_threads(work) == []
    assert sorted(created) == [False] * 7 + [True]
    assert ledger.balance("m1", "GBP").pending == Money(6_300, "GBP")
    assert ledger.verify().ok


def test_verify_beside_live_postings_reports_no_false_problems(pg_engine: Engine) -> None:
    """verify() reads one snapshot: payments committing meanwhile never look half-applied."""
    ledger = LedgerService(pg_engine)
    stop = threading.Event()

    def post_payments() -> None:
        i = 0
        while not stop.is_set():
            ledger.record_payment(
                payment_intent_id=f"pi_live_{i}",
                booking_id=f"b{i}",
                mentor_id=f"m{i % 3}",
                mentee_id="u",
                gross=Money(1_000 + i, "GBP"),
                policy=POLICY,
            )
            i += 1

    writer = threading.Thread(target=post_payments)
    writer.start()
    try:
        reports = [ledger.verify() for _ in range(40)]
    finally:
        stop.set()
        writer.join()
    assert [r.problems for r in reports if not r.ok] == []
    assert reports[-1].transactions > 0
