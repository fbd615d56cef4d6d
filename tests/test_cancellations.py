"""``mp.bookings.cancel`` and ``refund_booking``: the policy's refund, sent once per booking
under a booking-derived Stripe idempotency key, and the ledger following from the refund
webhooks with the fee kept or returned as the policy says."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses
from sqlalchemy import Engine, func, select

from mentorpay import BookingInfo, MentorpayConfig, Money
from mentorpay.app import MentorPay
from mentorpay.commission import CommissionPolicy
from mentorpay.errors import BookingNotFoundError, InvalidRequestError, PaymentNotFoundError
from mentorpay.gateway import StripeGateway
from mentorpay.models import cancellations_table
from mentorpay.testing import FakeGateway, InMemoryBookings, encode_event, make_event, sign_payload

API = "https://api.stripe.com"
SECRET = "whsec_cancel"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def booking(starts_in: timedelta | None = timedelta(hours=30), **fields: Any) -> BookingInfo:
    """Booking 42: mentee 7 books mentor 3 for 50.00 GBP, the session ``starts_in`` from NOW."""
    values: dict[str, Any] = {
        "id": "42",
        "mentee_id": "7",
        "mentor_id": "3",
        "price": Money(5000, "GBP"),
        "status": "confirmed",
        "starts_at": None if starts_in is None else NOW + starts_in,
    }
    return BookingInfo(**(values | fields))


def facade(engine: Engine, gateway: Any, *bookings: BookingInfo) -> MentorPay:
    """A MentorPay with the default cancellation policy (48h: all, 24h: half, fee kept)."""
    config = MentorpayConfig(webhook_secrets=[SECRET])
    return MentorPay(
        config,
        engine,
        bookings=InMemoryBookings(list(bookings) or [booking()]),
        gateway=gateway,
        clock=lambda: NOW,
    )


def deliver(mp: MentorPay, event_type: str, obj: dict[str, Any]) -> str:
    """A signed webhook, the way Stripe sends it; returns the result status."""
    body = encode_event(make_event(event_type, obj))
    return mp.webhooks.process(body, sign_payload(body, SECRET)).status


def paid(mp: MentorPay, fake: FakeGateway, booking_id: str = "42") -> dict[str, Any]:
    """The mentee pays through the fake Checkout; returns the charge."""
    info = mp.checkout.create_session(
        booking_id, user_id="7", success_url="https://a.test/ok", cancel_url="https://a.test/no"
    )
    session = fake.complete_checkout_session(info.session_id)
    assert deliver(mp, "checkout.session.completed", session) == "success"
    return fake.charge(fake.payment_intent(session["payment_intent"])["latest_charge"])


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """Stripe's API, intercepted."""
    with responses.RequestsMock() as mock:
        yield mock


def test_cancellation_refund_request_over_http(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """A mentee cancelling 30h ahead sends half the price under the booking-derived key, once."""
    mp = facade(engine, StripeGateway("sk_test_123", max_network_retries=0))
    mp.ledger.record_payment(
        payment_intent_id="pi_1",
        booking_id="42",
        mentor_id="3",
        mentee_id="7",
        gross=Money(5000, "GBP"),
        policy=CommissionPolicy(rate_bps=1000),
        charge_id="ch_1",
    )
    http.post(
        f"{API}/v1/refunds",
        json={
            "id": "re_1",
            "object": "refund",
            "amount": 2500,
            "currency": "gbp",
            "payment_intent": "pi_1",
            "charge": "ch_1",
            "status": "succeeded",
        },
    )
    result = mp.bookings.cancel("42", by="mentee", reason="ill")
    request = http.calls[0].request
    assert dict(parse_qsl(request.body)) == {
        "payment_intent": "pi_1",
        "amount": "2500",
        "reason": "requested_by_customer",
        "metadata[booking_id]": "42",
        "metadata[mentor_id]": "3",
        "metadata[mentee_id]": "7",
        "metadata[mentorpay_refund_request]": "cancellation:42",
    }
    assert request.headers["Idempotency-Key"] == "mentorpay:refund:pi_1:request:cancellation:42"
    assert result.refund_amount == Money(2500, "GBP")
    assert (result.refund_bps, result.fee_kept, result.created) == (5000, True, True)
    assert "platform keeps its fee" in result.rule
    assert result.refund is not None and result.refund.refund_id == "re_1"
    again = mp.bookings.cancel("42", by="mentor")  # a retry, even a confused one
    assert len(http.calls) == 1
    assert (again.created, again.cancelled_by, again.refund_amount) == (
        False,
        "mentee",
        Money(2500, "GBP"),
    )
    assert again.refund is not None and again.refund.refund_id == "re_1"


def test_late_mentee_cancellation_keeps_the_fee_in_the_ledger(engine: Engine) -> None:
    """30h ahead: half back, all of it from the mentor's share; the commission stays 5.00."""
    fake = FakeGateway(clock=lambda: NOW)
    mp = facade(engine, fake)
    charge = paid(mp, fake)
    result = mp.bookings.cancel("42", by="mentee")
    assert result.refund_amount == Money(2500, "GBP")
    assert deliver(mp, "charge.refunded", fake.charge(charge["id"])) == "success"
    assert mp.ledger.balance("3", "GBP").pending == Money(2000, "GBP")
    assert mp.ledger.platform_commission("GBP") == Money(500, "GBP")
    assert mp.ledger.verify().ok


def test_mentor_cancellation_refunds_everything_fee_included(engine: Engine) -> None:
    """The mentor cancels after the session should have started: a full refund, the fee too."""
    fake = FakeGateway(clock=lambda: NOW)
    mp = facade(engine, fake, booking(starts_in=-timedelta(hours=1)))
    charge = paid(mp, fake)
    result = mp.bookings.cancel("42", by="mentor", reason="no-show")
    assert (result.refund_amount, result.fee_kept) == (Money(5000, "GBP"), False)
    assert deliver(mp, "charge.refunded", fake.charge(charge["id"])) == "success"
    assert mp.ledger.balance("3", "GBP").pending == Money(0, "GBP")
    assert mp.ledger.platform_commission("GBP") == Money(0, "GBP")
    assert mp.ledger.verify().ok


def test_cancellation_too_late_refunds_nothing_and_calls_nobody(engine: Engine) -> None:
    """2h ahead under the default policy: recorded with no refund, Stripe is not called."""
    fake = FakeGateway(clock=lambda: NOW)
    mp = facade(engine, fake, booking(starts_in=timedelta(hours=2)))
    paid(mp, fake)
    result = mp.bookings.cancel("42", by="mentee")
    assert (result.refund_amount, result.refund) == (None, None)
    assert fake.calls_to("create_refund") == []
    recorded = mp.bookings.cancellation("42")
    assert recorded is not None and recorded.rule.startswith("cancelled by the mentee")


def test_unpaid_booking_cancels_without_refund(engine: Engine) -> None:
    """Nothing paid: the cancellation is recorded, nothing is refunded."""
    mp = facade(engine, FakeGateway(clock=lambda: NOW))
    result = mp.bookings.cancel("42", by="platform")
    assert (result.payment_intent_id, result.refund_amount) == (None, None)
    assert result.as_dict()["refund_display"] == "nothing"


def test_bad_cancellations_are_refused_and_change_nothing(engine: Engine) -> None:
    """Unknown booking (404), unknown canceller, naive time, no session time (400)."""
    mp = facade(engine, FakeGateway(clock=lambda: NOW), booking(starts_in=None))
    with pytest.raises(BookingNotFoundError):
        mp.bookings.cancel("nope", by="mentee")
    with pytest.raises(InvalidRequestError):
        mp.bookings.cancel("42", by="someone")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        mp.bookings.cancel("42", by="mentor", at=datetime(2026, 12, 1))
    with pytest.raises(InvalidRequestError) as exc:
        mp.bookings.cancel("42", by="mentee")
    assert exc.value.http_status == 400
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(cancellations_table)).scalar() == 0


def test_bookings_facade_still_answers_get_booking(engine: Engine) -> None:
    """mp.bookings keeps the host source's API (get_booking, add) it had before cancel."""
    mp = facade(engine, FakeGateway(clock=lambda: NOW))
    assert mp.bookings.get_booking("42") == booking()
    mp.bookings.add(booking(id="43"))
    assert mp.bookings.get_booking("43") is not None


def test_refund_booking_refunds_the_bookings_payment(engine: Engine) -> None:
    """refund_booking finds the payment by booking id; a booking nothing paid is a 404."""
    fake = FakeGateway(clock=lambda: NOW)
    mp = facade(engine, fake)
    charge = paid(mp, fake)
    result = mp.refunds.refund_booking("42", Money(1000, "GBP"), request_id="t-1")
    assert result.amount == Money(1000, "GBP")
    assert fake.charge(charge["id"])["amount_refunded"] == 1000
    with pytest.raises(PaymentNotFoundError):
        mp.refunds.refund_booking("43")


@pytest.mark.parametrize("pay", [True, False], ids=["paid", "unpaid"])
def test_concurrent_cancels_refund_once(pg_engine: Engine, pay: bool) -> None:
    """Eight threads cancel one booking at once on PostgreSQL: one cancellation, one refund."""
    fake = FakeGateway(clock=lambda: NOW)
    mp = facade(pg_engine, fake)
    charge = paid(mp, fake) if pay else None
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def cancel() -> None:
        barrier.wait()
        try:
            results.append(mp.bookings.cancel("42", by="mentee"))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=cancel) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.created for r in results) == 1
    if charge is None:
        assert {r.refund for r in results} == {None}
        return
    assert {r.refund.refund_id for r in results} == {results[0].refund.refund_id}
    assert fake.charge(charge["id"])["amount_refunded"] == 2500
    assert deliver(mp, "charge.refunded", fake.charge(charge["id"])) == "success"
    assert mp.ledger.balance("3", "GBP").pending == Money(2000, "GBP")
    assert mp.ledger.verify().ok
