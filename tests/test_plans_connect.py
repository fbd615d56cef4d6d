"""Plans with Stripe Connect destination charges: the subscription carries the mentor's account
and a percentage that keeps exactly the policy's fee, the ledger posts the mentor's share as
transferred, and a price the percentage cannot express exactly is refused before Stripe."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from mentorpay import MentorPay, MentorpayConfig, Money, PlanInfo
from mentorpay.errors import InvalidRequestError
from mentorpay.testing import FakeBilling, FakeClock, FakeGateway, InMemoryBookings, InMemoryPlans
from tests.plan_kit import CANCEL, SECRET, START, SUCCESS, PlanWorld

CONNECTED = PlanInfo(
    "c-monthly", "m1", "subscription", Money(8000, "GBP"), 4, mentor_stripe_account="acct_m1"
)
ODD = PlanInfo(
    "c-odd", "m1", "subscription", Money(8005, "GBP"), 4, mentor_stripe_account="acct_m1"
)
PACK = PlanInfo("c-pack", "m1", "package", Money(8005, "GBP"), 2, mentor_stripe_account="acct_m1")


def connect_world(engine: Engine) -> PlanWorld:
    """A world whose config sends the mentor's share with each charge."""
    clock = FakeClock(START)
    gateway = FakeGateway(clock=clock)
    bookings = InMemoryBookings([])
    config = MentorpayConfig(
        webhook_secrets=[SECRET], connect_destination_charges=True, refund_reverse_transfer=True
    )
    mp = MentorPay(
        config,
        engine,
        bookings=bookings,
        gateway=gateway,
        clock=clock,
        plans=InMemoryPlans([CONNECTED, ODD, PACK]),
    )
    mp.create_schema()
    return PlanWorld(mp, gateway, clock, FakeBilling(gateway, clock), bookings, "2026-10-28.endive")


def test_a_connected_subscription_sends_the_exact_percentage_and_posts_the_share_as_sent(
    engine: Engine,
) -> None:
    """The session asks for 10.00% and the destination; each period's share is withdrawn."""
    w = connect_world(engine)
    purchase = w.subscribe("c-monthly")
    call = next(c for c in w.gateway.calls if c.method == "create_plan_checkout_session")
    params = call.args["params"]
    assert (params.application_fee_percent, params.destination) == ("10.00", "acct_m1")
    view = w.mp.plans.get(purchase)
    assert view.credits_left == 4
    balance = w.mp.ledger.balance("m1", "GBP")
    assert (balance.pending.amount, balance.withdrawn.amount) == (0, 7200)
    w.mp.plans.consume(purchase, w.book("b1"))
    assert w.mp.ledger.release("b1") == []  # the share left with the charge: nothing to move
    w.assert_verified()


def test_a_price_the_percentage_cannot_express_exactly_is_refused(engine: Engine) -> None:
    """10% of GBP 80.05 is not whole pence: refused with a 400 before any Stripe call."""
    w = connect_world(engine)
    with pytest.raises(InvalidRequestError) as info:
        w.mp.checkout.create_plan_session(
            "c-odd", user_id="e1", success_url=SUCCESS, cancel_url=CANCEL
        )
    assert info.value.http_status == 400
    assert not any(c.method == "create_plan_checkout_session" for c in w.gateway.calls)


def test_a_connected_package_sends_the_exact_fee_amount(engine: Engine) -> None:
    """A package has no percentage problem: the exact fee goes as application_fee_amount."""
    w = connect_world(engine)
    info = w.mp.checkout.create_plan_session(
        "c-pack", user_id="e1", success_url=SUCCESS, cancel_url=CANCEL
    )
    call = next(c for c in w.gateway.calls if c.method == "create_plan_checkout_session")
    assert call.args["params"].application_fee == Money(800, "GBP")  # half-even of 800.5
    session = w.gateway.complete_checkout_session(info.session_id)
    intent = w.gateway.payment_intent(str(session["payment_intent"]))
    w.send([("checkout.session.completed", session), ("payment_intent.succeeded", intent)])
    balance = w.mp.ledger.balance("m1", "GBP")
    assert balance.withdrawn.amount == 8005 - 800
    assert w.mp.plans.get(info.plan_purchase_id).credits_left == 2
    w.assert_verified()
