"""Plans under real concurrency on PostgreSQL (direct and behind PgBouncer): threads racing for
the last credits, for a mentee's checkout, and an invoice's two halves arriving together."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Engine

from mentorpay.errors import NoCreditsError
from mentorpay.plans.checkout import PlanCheckoutInfo
from mentorpay.testing import STRIPE_API_VERSION
from tests.plan_kit import CANCEL, SUCCESS, PlanWorld, plan_world

pytestmark = pytest.mark.postgres
THREADS = 8


def run_threads(count: int, work: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run work(i) in ``count`` threads started together; what they returned and raised."""
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)
    lock = threading.Lock()

    def target(i: int) -> None:
        barrier.wait()
        try:
            value = work(i)
        except BaseException as exc:  # collected and asserted on by the test
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_eight_threads_race_for_four_credits(pg_engine: Engine) -> None:
    """8 bookings spend credits of a 4-credit period at once: exactly 4 win, 4 get none."""
    w = plan_world(pg_engine)
    purchase = w.subscribe()
    bookings = [w.book(f"b{i}") for i in range(THREADS)]
    results, errors = run_threads(THREADS, lambda i: w.mp.plans.consume(purchase, bookings[i]))
    assert len(results) == 4
    assert len(errors) == 4 and all(isinstance(e, NoCreditsError) for e in errors), errors
    assert sorted(c.seq for c in results) == [0, 1, 2, 3]
    view = w.mp.plans.get(purchase)
    assert (view.periods[0].used, view.credits_left) == (4, 0)
    w.assert_verified()


def test_concurrent_checkouts_of_one_plan_create_one_stripe_session(pg_engine: Engine) -> None:
    """8 concurrent create_plan_session calls for one mentee and plan: one Stripe session."""
    w = plan_world(pg_engine)

    def buy(_: int) -> PlanCheckoutInfo:
        return w.mp.checkout.create_plan_session(
            "monthly", user_id="e1", success_url=SUCCESS, cancel_url=CANCEL
        )

    results, errors = run_threads(THREADS, buy)
    assert errors == []
    assert len({r.session_id for r in results}) == 1
    assert len({r.plan_purchase_id for r in results}) == 1
    assert len(w.gateway.sessions) == 1
    assert len({c.idempotency_key for c in w.gateway.calls_to("create_plan_checkout_session")}) == 1


def deliver_half(w: PlanWorld, halves: list[dict[str, Any]], i: int) -> str:
    """One thread's half of the invoice."""
    return w.process(halves[i])


def test_an_invoices_two_halves_processed_together_record_one_period(pg_engine: Engine) -> None:
    """invoice.paid and invoice_payment.paid in two threads: one payment, one period, credits."""
    w = plan_world(pg_engine, STRIPE_API_VERSION)
    rounds = 4
    for n in range(rounds):
        info = w.mp.checkout.create_plan_session(
            "monthly", user_id=f"e{n}", success_url=SUCCESS, cancel_url=CANCEL
        )
        events = [w.event(t, o) for t, o in w.billing.subscribe(info.session_id)]
        halves = [e for e in events if e["type"] in ("invoice.paid", "invoice_payment.paid")]
        assert len(halves) == 2
        for e in events:
            if e not in halves:
                w.process(e)
        statuses, errors = run_threads(2, partial(deliver_half, w, halves))
        assert errors == [], errors
        assert "success" in statuses
        view = w.mp.plans.get(info.plan_purchase_id)
        assert [(p.status, p.credits) for p in view.periods] == [("paid", 4)]
        assert view.credits_left == 4
    assert w.balance() == (7200 * rounds, 0)
    assert [e.kind for e in w.effects].count("plan_period_paid") == rounds
    w.assert_verified()
