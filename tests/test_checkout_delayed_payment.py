"""Issue 8, case 3: one booking, one payment, also with delayed payment methods.

SEPA, Bacs and ACH debits complete a Checkout Session with ``payment_status: "unpaid"`` and
settle days later (``checkout.session.async_payment_succeeded`` or ``_failed``). On the old
code ``create_session`` opened a second session meanwhile; both settled and the mentor was
credited twice. The checkout row's contract with the webhook handlers: ``awaiting_payment``
while the debit is pending (a new session is refused with ``PaymentPendingError``),
``complete`` once paid, ``payment_failed`` after a failed debit (the booking is free again).
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses
from sqlalchemy import Engine, select, update

from mentorpay.analytics import AnalyticsService
from mentorpay.bookings import BookingInfo
from mentorpay.checkout import CheckoutService
from mentorpay.config import MentorpayConfig
from mentorpay.errors import AlreadyPaidError, ConflictError, PaymentPendingError
from mentorpay.gateway import PaymentGateway, StripeGateway
from mentorpay.ledger import LedgerService
from mentorpay.models import CheckoutSession, Payment
from mentorpay.money import Money
from mentorpay.testing import (
    FakeGateway,
    InMemoryBookings,
    booking_metadata,
    checkout_session,
    encode_event,
    make_event,
    sign_payload,
    stripe_id,
)
from mentorpay.webhooks import WebhookProcessor

API = "https://api.stripe.com"
SECRET = "whsec_test"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OK_URL = "https://app.test/paid"
CANCEL_URL = "https://app.test/cancel"
_sessions = CheckoutSession.__table__


class Clock:
    """A settable clock shared by the services and the fake gateway."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def booking(price: int = 5000) -> BookingInfo:
    """Booking 42: mentee 7 pays mentor 3 ``price`` GBP."""
    return BookingInfo(
        id="42", mentee_id="7", mentor_id="3", price=Money(price, "GBP"), status="confirmed"
    )


class World:
    """Checkout over a gateway, the real webhook processor, and the ledger, on one database."""

    def __init__(self, engine: Engine, gateway: PaymentGateway | None = None) -> None:
        self.engine = engine
        self.clock = Clock()
        self.config = MentorpayConfig(webhook_secrets=[SECRET])
        self.bookings = InMemoryBookings([booking()])
        self.fake = FakeGateway(clock=self.clock)
        self.gateway = gateway if gateway is not None else self.fake
        self.ledger = LedgerService(engine)
        self.checkout = CheckoutService(
            self.config, engine, self.bookings, self.gateway, clock=self.clock
        )
        self.webhooks = WebhookProcessor(
            self.config, engine, self.ledger, bookings=self.bookings, clock=self.clock
        )

    def create(self, booking_id: str = "42") -> Any:
        return self.checkout.create_session(
            booking_id, user_id="7", success_url=OK_URL, cancel_url=CANCEL_URL
        )

    def send(self, event_type: str, session_id: str, payment_status: str, pi: str) -> str:
        """A signed Checkout event about ``session_id`` for booking 42, through process()."""
        obj = checkout_session(
            id=session_id,
            payment_intent=pi,
            payment_status=payment_status,
            metadata=booking_metadata("42", mentor_id="3", mentee_id="7"),
            payment_method_types=["sepa_debit"],
        )
        raw = encode_event(make_event(event_type, obj))
        return self.webhooks.process(raw, sign_payload(raw, SECRET)).status

    def statuses(self) -> list[str]:
        """The checkout rows' statuses, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_sessions.c.status).order_by(_sessions.c.created_at, _sessions.c.id)
            )
            return [r.status for r in rows]

    def credited(self) -> tuple[int, int]:
        """(payments recorded for booking 42, mentor 3's pending GBP)."""
        with self.engine.connect() as conn:
            payments = conn.execute(
                select(Payment.__table__.c.payment_intent_id).where(
                    Payment.__table__.c.booking_id == "42"
                )
            ).all()
        return len(payments), self.ledger.balance("3", "GBP").pending.amount


def test_pending_delayed_payment_refuses_a_second_session(engine: Engine) -> None:
    """While a debit is pending, create_session is PaymentPendingError (409), no Stripe call."""
    world = World(engine)
    first = world.create()
    assert world.send("checkout.session.completed", first.session_id, "unpaid", "pi_a") == "success"
    assert world.statuses() == ["awaiting_payment"]
    for price in (5000, 6000):  # the same terms, or a repriced booking
        world.bookings.add(booking(price))
        world.clock.now += timedelta(hours=2)  # long after the session's own expiry
        with pytest.raises(PaymentPendingError) as caught:
            world.create()
        error = caught.value
        assert isinstance(error, ConflictError)
        assert (error.http_status, error.code) == (409, "payment_pending")
        assert "pending" in error.message and "fails" in error.message
        assert error.details == {"booking_id": "42", "session_id": first.session_id}
    assert len(world.fake.calls_to("create_checkout_session")) == 1
    assert world.fake.calls_to("expire_checkout_session") == []
    assert world.statuses() == ["awaiting_payment"]
    assert world.credited() == (0, 0)


def test_two_sessions_never_both_settle_for_one_booking(engine: Engine) -> None:
    """The reported case: pending debit, second checkout, both paid: the mentor is credited once."""
    world = World(engine)
    first = world.create()
    world.send("checkout.session.completed", first.session_id, "unpaid", "pi_a")
    try:
        second = world.create()
    except PaymentPendingError:
        second = None
    world.send("checkout.session.async_payment_succeeded", first.session_id, "paid", "pi_a")
    if second is not None:  # the old code opened it; the mentee pays it by card
        world.send("checkout.session.completed", second.session_id, "paid", "pi_b")
    assert world.credited() == (1, 4500)
    assert second is None


def test_async_success_pays_the_booking_once(engine: Engine) -> None:
    """After async_payment_succeeded the booking is paid: AlreadyPaidError, credited once."""
    world = World(engine)
    first = world.create()
    world.send("checkout.session.completed", first.session_id, "unpaid", "pi_a")
    with pytest.raises(PaymentPendingError):
        world.create()
    assert (
        world.send("checkout.session.async_payment_succeeded", first.session_id, "paid", "pi_a")
        == "success"
    )
    assert world.statuses() == ["complete"]
    with pytest.raises(AlreadyPaidError):
        world.create()
    assert world.credited() == (1, 4500)
    assert len(world.fake.calls_to("create_checkout_session")) == 1


def test_async_failure_frees_the_booking(engine: Engine) -> None:
    """After async_payment_failed a new session can be created, under a fresh key."""
    world = World(engine)
    first = world.create()
    world.send("checkout.session.completed", first.session_id, "unpaid", "pi_a")
    assert (
        world.send("checkout.session.async_payment_failed", first.session_id, "unpaid", "pi_a")
        == "success"
    )
    assert world.statuses() == ["payment_failed"]
    world.clock.now += timedelta(days=3)  # the debit failed days later
    second = world.create()
    assert second.session_id != first.session_id
    assert not second.reused
    assert world.statuses() == ["payment_failed", "open"]
    first_key, second_key = (
        c.idempotency_key for c in world.fake.calls_to("create_checkout_session")
    )
    assert first_key != second_key
    assert world.credited() == (0, 0)


def test_late_completed_event_does_not_block_a_failed_debit(engine: Engine) -> None:
    """completed (unpaid) delivered after async_payment_failed leaves the booking free."""
    world = World(engine)
    first = world.create()
    world.send("checkout.session.async_payment_failed", first.session_id, "unpaid", "pi_a")
    world.send("checkout.session.completed", first.session_id, "unpaid", "pi_a")
    assert world.statuses() == ["payment_failed"]
    assert world.create().session_id != first.session_id


def test_late_completed_event_keeps_a_paid_session_complete(engine: Engine) -> None:
    """completed (unpaid) delivered after async_payment_succeeded leaves the row complete."""
    world = World(engine)
    first = world.create()
    world.send("checkout.session.async_payment_succeeded", first.session_id, "paid", "pi_a")
    world.send("checkout.session.completed", first.session_id, "unpaid", "pi_a")
    assert world.statuses() == ["complete"]
    with pytest.raises(AlreadyPaidError):
        world.create()
    assert world.credited() == (1, 4500)


def test_paid_completion_marks_the_row_complete(engine: Engine) -> None:
    """A card payment (payment_status paid) completes the row and the booking is paid."""
    world = World(engine)
    first = world.create()
    world.send("checkout.session.completed", first.session_id, "paid", "pi_a")
    assert world.statuses() == ["complete"]
    with pytest.raises(AlreadyPaidError):
        world.create()


def test_row_status_contract_without_webhooks(engine: Engine) -> None:
    """awaiting_payment refuses, payment_failed frees: the row alone decides, whatever expiry."""
    world = World(engine)
    first = world.create()
    with engine.begin() as conn:
        conn.execute(update(_sessions).values(status="awaiting_payment"))
    with pytest.raises(PaymentPendingError):
        world.create()
    with engine.begin() as conn:
        conn.execute(update(_sessions).values(status="payment_failed"))
    assert world.create().session_id != first.session_id


# -- the webhook has not arrived yet: Stripe is asked -------------------------------------------


def stripe_session(session_id: str, status: str, payment_status: str) -> dict[str, Any]:
    """A Checkout Session as Stripe returns it."""
    return checkout_session(
        id=session_id,
        status=status,
        payment_status=payment_status,
        payment_intent=stripe_id("pi") if status == "complete" else None,
        url=f"https://checkout.stripe.com/c/pay/{session_id}" if status == "open" else None,
        expires_at=int((T0 + timedelta(hours=1)).timestamp()),
        metadata=booking_metadata("42", mentor_id="3", mentee_id="7"),
    )


def test_retiring_a_session_with_a_pending_debit_refuses(engine: Engine) -> None:
    """_retire maps Stripe's complete + unpaid session to awaiting_payment: PaymentPendingError."""
    with responses.RequestsMock() as http:
        world = World(engine, StripeGateway("sk_test_123", max_network_retries=0))
        http.post(f"{API}/v1/checkout/sessions", json=stripe_session("cs_a", "open", "unpaid"))
        world.create()
        world.bookings.add(booking(6000))  # a new price: the old session must be retired
        http.post(
            f"{API}/v1/checkout/sessions/cs_a/expire",
            status=400,
            json={
                "error": {
                    "type": "invalid_request_error",
                    "code": "checkout_session_not_expirable",
                    "message": 'Only Checkout Sessions with a status in ["open"] can be expired',
                }
            },
        )
        http.get(
            f"{API}/v1/checkout/sessions/cs_a", json=stripe_session("cs_a", "complete", "unpaid")
        )
        with pytest.raises(PaymentPendingError):
            world.create()
        assert world.statuses() == ["awaiting_payment"]
        calls = len(http.calls)
        with pytest.raises(PaymentPendingError):  # now from the row, without asking Stripe
            world.create()
        assert len(http.calls) == calls
        assert [c.request.method for c in http.calls].count("POST") == 2


def test_retiring_a_paid_session_is_already_paid(engine: Engine) -> None:
    """_retire still maps Stripe's complete + paid session to complete: AlreadyPaidError."""
    with responses.RequestsMock() as http:
        world = World(engine, StripeGateway("sk_test_123", max_network_retries=0))
        http.post(f"{API}/v1/checkout/sessions", json=stripe_session("cs_a", "open", "unpaid"))
        world.create()
        world.bookings.add(booking(6000))
        http.post(
            f"{API}/v1/checkout/sessions/cs_a/expire",
            status=400,
            json={"error": {"type": "invalid_request_error", "message": "not open"}},
        )
        http.get(
            f"{API}/v1/checkout/sessions/cs_a", json=stripe_session("cs_a", "complete", "paid")
        )
        with pytest.raises(AlreadyPaidError):
            world.create()
        assert world.statuses() == ["complete"]


def test_checkout_funnel_counts_delayed_payment_sessions(engine: Engine) -> None:
    """Sessions awaiting or failing a debit count as created, and only paid ones as completed."""
    world = World(engine)
    sessions = {}
    for booking_id in ("42", "43", "44"):
        world.bookings.add(replace(booking(), id=booking_id))
        sessions[booking_id] = world.create(booking_id).session_id
        world.send("checkout.session.completed", sessions[booking_id], "unpaid", f"pi_{booking_id}")
    world.send("checkout.session.async_payment_failed", sessions["43"], "unpaid", "pi_43")
    world.send("checkout.session.async_payment_succeeded", sessions["44"], "paid", "pi_44")
    assert sorted(world.statuses()) == ["awaiting_payment", "complete", "payment_failed"]
    report = AnalyticsService(engine).summary(T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert (report.checkout.created, report.checkout.completed) == (3, 1)


def deliver_together(world: World, session_id: str, event_types: list[str]) -> list[BaseException]:
    """Deliver unpaid Checkout events about one session from threads released together."""
    barrier = threading.Barrier(len(event_types))
    errors: list[BaseException] = []

    def deliver(event_type: str) -> None:
        barrier.wait()
        try:
            world.send(event_type, session_id, "unpaid", "pi_x")
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(t,)) for t in event_types]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_simultaneous_completed_and_failed_events_free_the_booking(engine: Engine) -> None:
    """completed (unpaid) and async_payment_failed delivered at once: always payment_failed."""
    world = World(engine)
    for round_ in range(5):
        world.bookings.add(replace(booking(), id=f"b{round_}"))
        session_id = world.create(f"b{round_}").session_id
        types = ["checkout.session.completed", "checkout.session.async_payment_failed"]
        assert deliver_together(world, session_id, types) == []
        with engine.connect() as conn:
            status = conn.execute(
                select(_sessions.c.status).where(_sessions.c.id == session_id)
            ).scalar_one()
        assert status == "payment_failed"
