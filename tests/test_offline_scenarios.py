"""The offline checkout plays Stripe's test scenarios: card succeeds, card declined, a bank debit
settling or failing days later (a fake clock the test kit advances), an inquiry or a dispute
afterwards; each as signed events in Stripe's shapes, ending in a ledger that verifies."""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe
from sqlalchemy import Engine

from mentorpay import (
    BookingInfo,
    GatewayError,
    InvalidRequestError,
    MentorPay,
    MentorpayConfig,
    Money,
)
from mentorpay.testing import (
    SCENARIOS,
    FakeClock,
    FakeGateway,
    InMemoryBookings,
    OfflineCheckout,
    SignedEvent,
    check_scenario,
)

SECRET = "whsec_scenarios"
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
URL = "http://127.0.0.1:9/payments/webhook"
SDK_CLASSES = {
    "checkout.session": stripe.checkout.Session,
    "payment_intent": stripe.PaymentIntent,
    "charge": stripe.Charge,
    "dispute": stripe.Dispute,
}


class Harness:
    """mentorpay, the fake Stripe and the offline checkout on one fake clock; webhooks go
    straight to mentorpay's processor, and every delivered event is kept."""

    def __init__(self, engine: Engine) -> None:
        self.clock = FakeClock(T0)
        self.fake = FakeGateway(
            clock=self.clock, checkout_url_template="/fake-checkout/{session_id}"
        )
        booking = BookingInfo("b1", "u7", "m3", Money.parse("50.00", "GBP"), "confirmed")
        self.mp = MentorPay(
            MentorpayConfig(webhook_secrets=[SECRET]),
            engine,
            bookings=InMemoryBookings([booking]),
            gateway=self.fake,
            clock=self.clock,
        )
        self.offline = OfflineCheckout(self.fake, SECRET, clock=self.clock)
        self.delivered: list[tuple[str, str]] = []
        self.bodies: list[dict[str, Any]] = []

    def deliver(self, url: str, event: SignedEvent) -> int:
        """What the app's webhook route does with a signed event."""
        assert url == URL
        result = self.mp.webhooks.process(event.body, event.signature)
        self.delivered.append((event.event_type, result.status))
        self.bodies.append(json.loads(event.body))
        return result.http_status

    def checkout(self) -> str:
        """A Checkout Session for booking b1."""
        info = self.mp.checkout.create_session(
            "b1", user_id="u7", success_url="http://127.0.0.1:9/ok", cancel_url="http://x.test/"
        )
        return info.session_id

    def advance(self, days: int) -> list[str]:
        """Move the fake clock on; the events that fall due are delivered."""
        return [e.event_type for e in self.offline.advance(timedelta(days=days), URL, self.deliver)]


def sdk_literals(cls: type, field: str) -> set[str]:
    """The enumerated values the SDK declares for ``cls.field``."""
    values: set[str] = set()
    for arg in typing.get_args(cls.__annotations__[field]):
        values.update(a for a in typing.get_args(arg) if isinstance(a, str))
    return values


@pytest.fixture
def h(engine: Engine) -> Harness:
    """A fresh harness on each database leg."""
    return Harness(engine)


def gbp(amount: int) -> Money:
    """A GBP amount in pence."""
    return Money(amount, "GBP")


def test_card_succeeds_credits_the_mentor(h: Harness) -> None:
    """The default scenario pays at once: 45.00 pending for the mentor, nothing scheduled."""
    paid = h.offline.pay_and_deliver(h.checkout(), URL, h.deliver, scenario="card")
    assert paid.outcome == "paid" and paid.scheduled == []
    assert h.delivered == [
        ("checkout.session.completed", "success"),
        ("payment_intent.succeeded", "payment_already_processed"),
    ]
    assert h.mp.ledger.balance("m3", "GBP").pending == gbp(4500)
    assert h.mp.ledger.verify().ok


def test_card_declined_sends_payment_failed_and_leaves_the_session_open(h: Harness) -> None:
    """A declined card: payment_failed in Stripe's decline shape, no money, session open."""
    session_id = h.checkout()
    paid = h.offline.pay_and_deliver(session_id, URL, h.deliver, scenario="card_declined")
    assert paid.outcome == "declined"
    assert h.delivered == [("payment_intent.payment_failed", "success")]
    error = h.bodies[0]["data"]["object"]["last_payment_error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "generic_decline",
    )
    assert h.fake.session(session_id)["status"] == "open"
    assert paid.success_url == f"/fake-checkout/{session_id}?declined=1"
    assert h.mp.ledger.balances("m3") == []
    # The mentee tries again with a card that works.
    h.offline.pay_and_deliver(session_id, URL, h.deliver, scenario="card")
    assert h.mp.ledger.balance("m3", "GBP").pending == gbp(4500)
    assert h.mp.ledger.verify().ok


def test_bank_debit_pays_days_later_on_the_fake_clock(h: Harness) -> None:
    """A bank debit completes unpaid and credits the mentor once, 3 fake-clock days later."""
    paid = h.offline.pay_and_deliver(h.checkout(), URL, h.deliver, scenario="bank_debit")
    assert paid.outcome == "pending"
    assert h.bodies[0]["data"]["object"]["payment_status"] == "unpaid"
    assert [label for _, label in h.offline.upcoming()] == ["the bank debit succeeds"]
    assert h.mp.ledger.balances("m3") == []
    assert h.advance(1) == []
    assert h.advance(2) == [
        "checkout.session.async_payment_succeeded",
        "payment_intent.succeeded",
    ]
    assert h.delivered[-2][1] == "success"
    assert h.mp.ledger.balance("m3", "GBP").pending == gbp(4500)
    assert h.offline.upcoming() == []
    assert h.mp.ledger.verify().ok
    assert h.clock() == T0 + timedelta(days=3)


def test_bank_debit_fails_days_later_and_credits_nothing(h: Harness) -> None:
    """A failed debit: async_payment_failed and payment_failed, no money, booking free again."""
    h.offline.pay_and_deliver(h.checkout(), URL, h.deliver, scenario="bank_debit_fails")
    assert h.advance(3) == [
        "checkout.session.async_payment_failed",
        "payment_intent.payment_failed",
    ]
    assert [status for _, status in h.delivered] == ["success", "ignored", "success", "success"]
    assert h.mp.ledger.balances("m3") == []
    assert h.checkout().startswith("cs_")  # the booking can be paid again
    assert h.mp.ledger.verify().ok


def test_inquiry_holds_then_releases_exactly(h: Harness) -> None:
    """An inquiry's hold comes (warning_needs_response) and goes (warning_closed) exactly."""
    h.offline.pay_and_deliver(h.checkout(), URL, h.deliver, scenario="inquiry")
    assert h.advance(2) == ["charge.dispute.created"]
    assert h.bodies[-1]["data"]["object"]["status"] == "warning_needs_response"
    assert h.mp.ledger.balance("m3", "GBP").pending == gbp(0)
    assert h.advance(10) == ["charge.dispute.closed"]
    assert h.bodies[-1]["data"]["object"]["status"] == "warning_closed"
    assert h.mp.ledger.balance("m3", "GBP").pending == gbp(4500)
    assert h.mp.ledger.verify().ok


def test_lost_dispute_takes_the_money_back(h: Harness) -> None:
    """A dispute lost days later reverses the payment: mentor and commission at zero."""
    h.offline.pay_and_deliver(h.checkout(), URL, h.deliver, scenario="dispute_lost")
    assert h.advance(30) == ["charge.dispute.created", "charge.dispute.closed"]
    assert h.bodies[-1]["data"]["object"]["status"] == "lost"
    view = h.mp.ledger.balance("m3", "GBP")
    assert (view.pending, view.available) == (gbp(0), gbp(0))
    assert h.mp.ledger.platform_commission("GBP") == gbp(0)
    assert h.mp.ledger.verify().ok


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_event_is_in_stripes_shape(h: Harness, scenario: str) -> None:
    """Each event's object carries only fields the SDK's typed class defines, and is signed."""
    h.offline.pay_and_deliver(h.checkout(), URL, h.deliver, scenario=scenario)
    h.advance(30)
    assert h.bodies
    for body in h.bodies:
        obj = body["data"]["object"]
        sdk = SDK_CLASSES[obj["object"]]
        assert set(obj) - {"id", "object"} <= set(sdk.__annotations__), obj["object"]
        assert obj["status"] in sdk_literals(sdk, "status"), (obj["object"], obj["status"])
        error = obj.get("last_payment_error")
        if error is not None:
            assert set(error) <= set(stripe.PaymentIntent.LastPaymentError.__annotations__)
            assert error["type"] in sdk_literals(stripe.PaymentIntent.LastPaymentError, "type")
        assert body["object"] == "event" and body["livemode"] is False
    assert all(status != "rejected" for _, status in h.delivered)
    assert h.mp.ledger.verify().ok


def test_a_refused_delivery_stays_due_and_is_retried_with_the_same_event_id(h: Harness) -> None:
    """If the app answers 5xx, advance raises and the same event (same id) is sent next time."""
    h.offline.pay_and_deliver(h.checkout(), URL, h.deliver, scenario="bank_debit")
    with pytest.raises(GatewayError):
        h.offline.advance(timedelta(days=3), URL, lambda _url, _event: 503)
    assert h.mp.ledger.balances("m3") == []
    retried = h.offline.advance(timedelta(0), URL, h.deliver)
    assert [e.event_type for e in retried] == [
        "checkout.session.async_payment_succeeded",
        "payment_intent.succeeded",
    ]
    assert h.mp.ledger.balance("m3", "GBP").pending == gbp(4500)
    assert h.offline.advance(timedelta(0), URL, h.deliver) == []


def test_unknown_scenarios_and_a_backward_clock_are_refused() -> None:
    """A scenario name not offered is a 400; the fake clock never goes back."""
    assert check_scenario(None) == "card"
    assert check_scenario("inquiry") == "inquiry"
    with pytest.raises(InvalidRequestError) as info:
        check_scenario("card_stolen")
    assert info.value.http_status == 400
    clock = FakeClock(T0)
    with pytest.raises(InvalidRequestError):
        clock.advance(timedelta(seconds=-1))
    assert clock.advance(timedelta(days=1)) == T0 + timedelta(days=1)
