"""A plan's Checkout Session that ends without a sale: expired or its delayed payment failed,
the purchase is abandoned and the mentee may buy again, with one effect for the host; events
about sessions that are not the purchase's change nothing. And the period end a paid invoice
reports is the purchase's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from mentorpay.testing import checkout_session, subscription_checkout_session
from tests.plan_kit import CANCEL, START, SUCCESS, plan_world


@pytest.mark.parametrize(
    ("event_type", "effect"),
    [
        ("checkout.session.expired", "checkout_expired"),
        ("checkout.session.async_payment_failed", "plan_payment_failed"),
    ],
)
def test_a_plan_checkout_that_ends_unpaid_abandons_the_purchase(
    engine: Engine, event_type: str, effect: str
) -> None:
    """The purchase is abandoned, one effect names it, and a new checkout is a new purchase."""
    w = plan_world(engine)
    seen: list[str] = []
    w.mp.on("checkout_expired", lambda e: seen.append(e.kind))
    w.mp.on("plan_payment_failed", lambda e: seen.append(e.kind))
    info = w.mp.checkout.create_plan_session(
        "pack5", user_id="e1", success_url=SUCCESS, cancel_url=CANCEL
    )
    session = {**w.gateway.session(info.session_id), "status": "expired"}
    assert w.send([(event_type, session)]) == ["success"]
    assert w.mp.plans.get(info.plan_purchase_id).status == "abandoned"
    assert seen == [effect]
    again = w.mp.checkout.create_plan_session(
        "pack5", user_id="e1", success_url=SUCCESS, cancel_url=CANCEL
    )
    assert again.plan_purchase_id != info.plan_purchase_id
    assert not again.reused


def test_an_ended_session_that_is_not_the_purchases_changes_nothing(engine: Engine) -> None:
    """A session naming the purchase in its metadata but not created for it: no effect on it."""
    w = plan_world(engine)
    info = w.mp.checkout.create_plan_session(
        "pack5", user_id="e1", success_url=SUCCESS, cancel_url=CANCEL
    )
    meta = w.gateway.session(info.session_id)["metadata"]
    other = checkout_session(status="expired", payment_status="unpaid", metadata=meta)
    assert w.send([("checkout.session.expired", other)]) == ["ignored"]
    assert w.mp.plans.get(info.plan_purchase_id).status == "checkout"
    forged = subscription_checkout_session(metadata=meta)
    assert w.send([("checkout.session.completed", forged)]) == ["ignored"]
    view = w.mp.plans.get(info.plan_purchase_id)
    assert (view.status, view.subscription_id) == ("checkout", None)


def test_a_subscriptions_period_end_is_the_paid_periods_end(engine: Engine) -> None:
    """After the first invoice the purchase's period end is the billed period's end."""
    w = plan_world(engine)
    purchase = w.subscribe()
    assert w.mp.plans.get(purchase).current_period_end == START + timedelta(days=30)
