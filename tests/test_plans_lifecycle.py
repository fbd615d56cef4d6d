"""The whole life of a monthly plan and of a package, through Stripe's events in the API version
the SDK pins and an older shape, with balances, credits and ``verify()`` exact at each step.

The oracle is DESIGN.md's arithmetic written out: 10% commission rounded half-even (GBP 80.00
-> 72.00 to the mentor), each credit's share the payout divided by the credits with the
remainder to the first ones, unused credits released to the mentor when they lapse."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from mentorpay.errors import NoCreditsError
from mentorpay.testing import STRIPE_API_VERSION
from tests.plan_kit import OLDER_API, plan_world

MONTH = timedelta(days=30)  # the fake's month


@pytest.mark.parametrize("api_version", [STRIPE_API_VERSION, OLDER_API])
def test_a_monthly_plan_from_subscription_to_cancellation(engine: Engine, api_version: str) -> None:
    """Subscribe, renew, fail and recover, change plan, cancel at period end: exact throughout."""
    w = plan_world(engine, api_version)
    purchase = w.subscribe()
    view = w.mp.plans.get(purchase)
    assert (view.status, view.credits_left, len(view.periods)) == ("active", 4, 1)
    assert view.subscription_id is not None and view.customer_id is not None
    assert w.balance() == (7200, 0)
    w.assert_verified()

    # Two sessions booked with credits; the first one takes place.
    w.mp.plans.consume(purchase, w.book("b1"))
    credit = w.mp.plans.consume(view.subscription_id, w.book("b2"))  # by Stripe's id too
    assert credit.share.amount == 1800
    assert w.mp.plans.get(purchase).credits_left == 2
    released = w.mp.ledger.release("b1")
    assert [p.amount.amount for p in released] == [1800]
    assert w.mp.ledger.release("b1") == []  # once
    assert w.balance() == (5400, 1800)
    w.assert_verified()

    # First renewal; the first period's credits lapse and its remainder goes to the mentor.
    w.clock.advance(MONTH + timedelta(hours=1))
    assert set(w.send(w.billing.renew_due())) <= {"success", "ignored"}
    assert w.balance() == (12600, 1800)
    assert w.mp.plans.expire_due() == 1
    assert w.balance() == (7200, 7200)
    assert w.mp.ledger.release("b2") == []  # its period was released as a whole
    assert w.mp.plans.get(purchase).credits_left == 4
    w.assert_verified()

    # A renewal fails (past due, no credits), then Stripe's retry is paid.
    w.clock.advance(MONTH)
    assert w.send(w.billing.renew(view.subscription_id, fail=True)) == ["success", "success"]
    failed = w.mp.plans.get(purchase)
    assert failed.status == "past_due"
    assert len(failed.periods) == 2
    assert [e.kind for e in w.effects].count("plan_payment_failed") == 1
    w.mp.plans.expire_due()
    assert w.balance() == (0, 14400)
    assert w.mp.plans.get(purchase).credits_left == 0
    with pytest.raises(NoCreditsError):
        w.mp.plans.consume(purchase, w.book("b3"))
    w.clock.advance(timedelta(days=3))
    w.send(w.billing.retry(view.subscription_id))
    recovered = w.mp.plans.get(purchase)
    assert (recovered.status, recovered.credits_left, len(recovered.periods)) == ("active", 4, 3)
    assert w.balance() == (7200, 14400)
    w.assert_verified()

    # Plan change: the next invoice is the bigger plan's and grants its credits.
    changed = w.mp.plans.change(purchase, "monthly-plus", user_id="e1")
    assert changed.pending_plan_id == "monthly-plus"
    w.clock.advance(MONTH)
    w.send(w.billing.renew_due())
    w.mp.plans.expire_due()
    after_change = w.mp.plans.get(purchase)
    assert after_change.plan_id == "monthly-plus"
    assert after_change.pending_plan_id is None
    assert after_change.periods[-1].credits == 8
    assert after_change.periods[-1].mentor_payout.amount == 12600
    assert after_change.credits_left == 8
    assert w.balance() == (12600, 21600)
    w.assert_verified()

    # Cancel at period end: credits stay until the period ends, then lapse to the mentor.
    cancelled = w.mp.plans.cancel(purchase, user_id="e1")
    assert cancelled.cancel_at_period_end and cancelled.status == "active"
    w.mp.plans.consume(purchase, w.book("b4"))
    w.mp.ledger.release("b4")
    assert w.balance() == (12600 - 1575, 21600 + 1575)
    w.clock.advance(MONTH)
    assert w.send(w.billing.renew_due()) == ["success"]
    ended = w.mp.plans.get(purchase)
    assert ended.status == "canceled" and ended.canceled_at is not None
    assert w.mp.plans.expire_due() == 1
    assert w.balance() == (0, 34200)
    assert [e.kind for e in w.effects].count("plan_period_paid") == 4
    assert [e.kind for e in w.effects].count("plan_canceled") == 1
    w.assert_verified()


def test_a_package_bought_partly_used_and_expired(engine: Engine) -> None:
    """A package grants its credits; used sessions release their share, the rest at expiry."""
    w = plan_world(engine)
    purchase = w.buy_package()
    view = w.mp.plans.get(purchase)
    assert (view.kind, view.status, view.credits_left) == ("package", "paid", 5)
    assert w.balance() == (18000, 0)
    w.mp.plans.consume(purchase, w.book("b1"))
    w.mp.plans.consume(purchase, w.book("b2"))
    assert w.mp.plans.give_back("b2") is True  # cancelled before the session
    w.mp.plans.consume(purchase, w.book("b3"))
    w.mp.ledger.release("b1")
    assert w.balance() == (14400, 3600)
    assert w.mp.plans.get(purchase).credits_left == 3
    w.clock.advance(timedelta(days=89))
    assert w.mp.plans.expire_due() == 0
    w.clock.advance(timedelta(days=2))
    assert w.mp.plans.expire_due() == 1
    assert w.mp.plans.get(purchase).credits_left == 0
    assert w.balance() == (0, 18000)
    with pytest.raises(NoCreditsError):
        w.mp.plans.consume(purchase, w.book("b4"))
    w.assert_verified()
    # A second package may be bought once the first is paid.
    second = w.buy_package()
    assert second != purchase
    assert w.mp.plans.get(second).credits_left == 5
