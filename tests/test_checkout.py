"""CheckoutService: authorization and payability rules, Stripe's currency rules, one open
session per booking (reuse, retirement, concurrency), and failure handling."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
import responses
from sqlalchemy import Engine, func, select

from mentorpay.bookings import BookingInfo
from mentorpay.checkout import CheckoutService
from mentorpay.commission import CommissionPolicy
from mentorpay.config import MentorpayConfig
from mentorpay.errors import (
    AlreadyPaidError,
    BookingNotFoundError,
    BookingNotPayableError,
    GatewayConnectionError,
    GatewayError,
    GatewayInvalidRequestError,
    GatewayRateLimitError,
    IdempotencyConflictError,
    InvalidAmountError,
    InvalidRequestError,
    NotAuthorizedError,
    NotBookingOwnerError,
)
from mentorpay.gateway import StripeGateway
from mentorpay.ledger import LedgerService
from mentorpay.models import CheckoutSession, LedgerTransaction, Payment
from mentorpay.money import Money
from mentorpay.testing import FakeGateway, InMemoryBookings

API = "https://api.stripe.com"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OK_URL = "https://app.test/paid"
CANCEL_URL = "https://app.test/cancel"


class Clock:
    """A settable clock shared by the service and the fake gateway."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_config(**overrides: Any) -> MentorpayConfig:
    """A config with a webhook secret and the given overrides."""
    return MentorpayConfig(webhook_secrets=["whsec_test"], **overrides)


def make_booking(**overrides: Any) -> BookingInfo:
    """Booking 42: mentee 7 pays mentor 3 50.00 GBP."""
    values: dict[str, Any] = {
        "id": "42",
        "mentee_id": "7",
        "mentor_id": "3",
        "price": Money(5000, "GBP"),
        "status": "confirmed",
        "mentor_stripe_account": "acct_mentor3",
    }
    values.update(overrides)
    return BookingInfo(**values)


class Setup:
    """A CheckoutService over a FakeGateway, with the collaborators exposed for assertions."""

    def __init__(self, engine: Engine, config: MentorpayConfig | None = None) -> None:
        self.engine = engine
        self.clock = Clock()
        self.config = config or make_config()
        self.bookings = InMemoryBookings([make_booking()])
        self.fake = FakeGateway(clock=self.clock)
        self.service = CheckoutService(
            self.config, engine, self.bookings, self.fake, clock=self.clock
        )

    def create(self, booking_id: str = "42", user_id: str = "7") -> Any:
        return self.service.create_session(
            booking_id, user_id=user_id, success_url=OK_URL, cancel_url=CANCEL_URL
        )

    def rows(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(CheckoutSession.__table__)).all())


@pytest.fixture
def setup(engine: Engine) -> Setup:
    """A CheckoutService over a FakeGateway on each database."""
    return Setup(engine)


def count(engine: Engine, model: Any) -> int:
    """Rows in a model's table."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model.__table__)).scalar_one())


def record_payment(engine: Engine, booking: BookingInfo, pi: str = "pi_paid") -> LedgerService:
    """Record a succeeded payment for the booking, as the webhook would."""
    ledger = LedgerService(engine)
    assert booking.price is not None
    ledger.record_payment(
        payment_intent_id=pi,
        booking_id=booking.id,
        mentor_id=booking.mentor_id,
        mentee_id=booking.mentee_id,
        gross=booking.price,
        policy=CommissionPolicy(rate_bps=1000),
    )
    return ledger


# -- creating and reusing ------------------------------------------------------------------------


def test_creates_a_session_with_booking_metadata_and_expiry(setup: Setup) -> None:
    """A new session carries price, metadata, client reference and the configured expiry."""
    info = setup.create()
    assert not info.reused
    assert info.amount == Money(5000, "GBP")
    assert info.platform_fee == Money(500, "GBP")
    assert info.expires_at == T0 + timedelta(hours=1)
    assert info.url.endswith(info.session_id)
    session = setup.fake.session(info.session_id)
    assert session["metadata"] == {"booking_id": "42", "mentor_id": "3", "mentee_id": "7"}
    assert session["client_reference_id"] == "42"
    (call,) = setup.fake.calls_to("create_checkout_session")
    sent = call.args["params"]
    assert sent.metadata == session["metadata"]
    assert sent.application_fee is None  # not Connect mode
    assert sent.destination is None
    assert call.idempotency_key is not None
    assert call.idempotency_key.startswith("mentorpay:checkout:42:0:5000gbp:")
    (row,) = setup.rows()
    assert (row.id, row.status, row.url) == (info.session_id, "open", info.url)


def test_open_session_is_reused_not_duplicated(setup: Setup) -> None:
    """A second call for the same booking and price returns the open session."""
    first = setup.create()
    setup.clock.now += timedelta(minutes=10)
    second = setup.create()
    assert second.session_id == first.session_id
    assert second.reused
    assert len(setup.fake.calls_to("create_checkout_session")) == 1
    assert len(setup.rows()) == 1


def test_a_new_session_after_expiry_uses_a_new_key(setup: Setup) -> None:
    """Once the session expired, the next call creates another under the next attempt's key."""
    first = setup.create()
    setup.clock.now += timedelta(hours=2)
    second = setup.create()
    assert second.session_id != first.session_id
    keys = [c.idempotency_key for c in setup.fake.calls_to("create_checkout_session")]
    assert keys[0] != keys[1]
    assert keys[1] is not None
    assert ":42:1:" in keys[1]


def test_session_about_to_expire_is_expired_and_replaced(setup: Setup) -> None:
    """A session with too little time left is expired at Stripe before a new one is made."""
    first = setup.create()
    setup.clock.now += timedelta(minutes=57)
    second = setup.create()
    assert second.session_id != first.session_id
    assert setup.fake.session(first.session_id)["status"] == "expired"
    statuses = {r.id: r.status for r in setup.rows()}
    assert statuses == {first.session_id: "expired", second.session_id: "open"}


def test_price_change_retires_the_old_session(setup: Setup) -> None:
    """After a price change the old session is expired so the mentee cannot pay both."""
    first = setup.create()
    setup.bookings.add(make_booking(price=Money(6000, "GBP")))
    second = setup.create()
    assert second.amount == Money(6000, "GBP")
    assert setup.fake.session(first.session_id)["status"] == "expired"
    open_sessions = [s for s in setup.fake.sessions if s["status"] == "open"]
    assert [s["id"] for s in open_sessions] == [second.session_id]


def test_completed_old_session_blocks_a_new_checkout(setup: Setup) -> None:
    """If the old session was paid (webhook not yet in), a new checkout is AlreadyPaidError."""
    first = setup.create()
    setup.fake.complete_checkout_session(first.session_id)
    setup.bookings.add(make_booking(price=Money(6000, "GBP")))
    with pytest.raises(AlreadyPaidError):
        setup.create()
    assert len(setup.fake.calls_to("create_checkout_session")) == 1
    assert {r.status for r in setup.rows()} == {"complete"}


def test_refunded_payment_allows_paying_again(setup: Setup) -> None:
    """A fully refunded payment leaves nothing with the platform, so the booking is payable."""
    ledger = record_payment(setup.engine, make_booking())
    ledger.apply_refund_total("pi_paid", Money(5000, "GBP"))
    assert setup.create().session_id


# -- who may pay, and what -----------------------------------------------------------------------


def test_unknown_booking(setup: Setup) -> None:
    """An unknown booking is BookingNotFoundError (404) and Stripe is never called."""
    with pytest.raises(BookingNotFoundError) as caught:
        setup.create("404")
    assert caught.value.http_status == 404
    assert setup.fake.calls == []


@pytest.mark.parametrize("user_id", ["3", "8", ""])
def test_only_the_mentee_may_pay(setup: Setup, user_id: str) -> None:
    """The mentor, another user or an empty id get NotBookingOwnerError (403)."""
    with pytest.raises(NotBookingOwnerError) as caught:
        setup.create(user_id=user_id)
    assert isinstance(caught.value, NotAuthorizedError)
    assert caught.value.http_status == 403
    assert setup.fake.calls == []
    assert setup.rows() == []


def test_ownership_is_checked_before_payability(setup: Setup) -> None:
    """A stranger learns nothing about the state of someone else's booking."""
    setup.bookings.add(make_booking(status="cancelled"))
    with pytest.raises(NotBookingOwnerError):
        setup.create(user_id="8")


@pytest.mark.parametrize(
    "booking",
    [
        make_booking(status="cancelled"),
        make_booking(status="completed"),
        make_booking(price=None),
    ],
    ids=["cancelled", "completed", "no-price"],
)
def test_unpayable_bookings_are_refused(setup: Setup, booking: BookingInfo) -> None:
    """Cancelled, completed and unpriced bookings are BookingNotPayableError (409)."""
    setup.bookings.add(booking)
    with pytest.raises(BookingNotPayableError) as caught:
        setup.create()
    assert caught.value.http_status == 409
    assert setup.fake.calls == []


def test_already_paid_booking_is_refused(setup: Setup) -> None:
    """A succeeded payment for the booking makes checkout AlreadyPaidError (409)."""
    record_payment(setup.engine, make_booking())
    with pytest.raises(AlreadyPaidError) as caught:
        setup.create()
    assert caught.value.details["payment_intent_id"] == "pi_paid"
    assert setup.fake.calls == []


@pytest.mark.parametrize(
    ("price", "rule"),
    [
        (Money(1005, "KWD"), "three_decimal_last_digit_zero"),
        (Money(150, "ISK"), "divisible_by_100"),
        (Money(20, "GBP"), "minimum_charge"),
        (Money(49, "JPY"), "minimum_charge"),
    ],
    ids=["kwd-last-digit", "isk-whole-units", "gbp-minimum", "jpy-minimum"],
)
def test_amounts_breaking_stripe_rules_are_refused_before_stripe(
    setup: Setup, price: Money, rule: str
) -> None:
    """Currency rules are enforced locally with a clear error; Stripe is never called."""
    setup.bookings.add(make_booking(price=price))
    with pytest.raises(InvalidAmountError) as caught:
        setup.create()
    assert caught.value.details["rule"] == rule
    assert setup.fake.calls == []


@pytest.mark.parametrize("url", ["", "/relative", "ftp://x.test/a", "javascript:alert(1)"])
def test_bad_redirect_urls_are_refused(setup: Setup, url: str) -> None:
    """success_url and cancel_url must be absolute http(s) URLs."""
    with pytest.raises(InvalidRequestError):
        setup.service.create_session("42", user_id="7", success_url=url, cancel_url=CANCEL_URL)
    with pytest.raises(InvalidRequestError):
        setup.service.create_session("42", user_id="7", success_url=OK_URL, cancel_url=url)


def test_connect_mode_needs_the_mentors_account(engine: Engine) -> None:
    """In Connect mode a mentor without a connected account cannot be paid."""
    setup = Setup(engine, make_config(connect_destination_charges=True))
    setup.bookings.add(make_booking(mentor_stripe_account=None))
    with pytest.raises(BookingNotPayableError, match="connected Stripe account"):
        setup.create()


def test_commission_preview_uses_default_and_overrides(engine: Engine) -> None:
    """The preview splits with the default policy, or the mentor's override."""
    config = make_config(
        commission_resolver=lambda m: CommissionPolicy(rate_bps=2000) if m == "vip" else None
    )
    service = CheckoutService(config, engine, InMemoryBookings(), FakeGateway())
    assert service.commission_preview(Money(5000, "GBP")).platform_fee == Money(500, "GBP")
    vip = service.commission_preview(Money(5000, "GBP"), mentor_id="vip")
    assert (vip.platform_fee, vip.mentor_payout) == (Money(1000, "GBP"), Money(4000, "GBP"))


# -- through Stripe's HTTP API -------------------------------------------------------------------


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """Stripe's API, intercepted."""
    with responses.RequestsMock() as mock:
        yield mock


def stripe_setup(engine: Engine, **config: Any) -> Setup:
    """A Setup whose gateway is the real StripeGateway (no SDK retries)."""
    setup = Setup(engine, make_config(**config))
    gateway = StripeGateway("sk_test_123", max_network_retries=0)
    setup.service = CheckoutService(
        setup.config, engine, setup.bookings, gateway, clock=setup.clock
    )
    return setup


def session_json(session_id: str = "cs_test_1") -> dict[str, Any]:
    """The session Stripe answers with."""
    return {
        "id": session_id,
        "object": "checkout.session",
        "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        "status": "open",
        "expires_at": int((T0 + timedelta(hours=1)).timestamp()),
    }


def test_connect_checkout_request_over_http(engine: Engine, http: responses.RequestsMock) -> None:
    """In Connect mode the exact body carries the fee and destination, under the booking's key."""
    setup = stripe_setup(engine, connect_destination_charges=True)
    http.post(f"{API}/v1/checkout/sessions", json=session_json())
    info = setup.create()
    request = http.calls[0].request
    assert dict(parse_qsl(request.body)) == {
        "mode": "payment",
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "gbp",
        "line_items[0][price_data][unit_amount]": "5000",
        "line_items[0][price_data][product_data][name]": "Booking 42",
        "success_url": OK_URL,
        "cancel_url": CANCEL_URL,
        "client_reference_id": "42",
        "expires_at": str(int((T0 + timedelta(hours=1)).timestamp())),
        "metadata[booking_id]": "42",
        "metadata[mentor_id]": "3",
        "metadata[mentee_id]": "7",
        "metadata[mentor_account]": "acct_mentor3",
        "metadata[platform_fee]": "500",
        "payment_intent_data[metadata][booking_id]": "42",
        "payment_intent_data[metadata][mentor_id]": "3",
        "payment_intent_data[metadata][mentee_id]": "7",
        "payment_intent_data[metadata][mentor_account]": "acct_mentor3",
        "payment_intent_data[metadata][platform_fee]": "500",
        "payment_intent_data[application_fee_amount]": "500",
        "payment_intent_data[transfer_data][destination]": "acct_mentor3",
    }
    key = request.headers["Idempotency-Key"]
    assert key.startswith("mentorpay:checkout:42:0:5000gbp:")
    assert "Stripe-Account" not in request.headers
    (row,) = setup.rows()
    assert (row.id, row.idempotency_key, row.platform_fee) == (info.session_id, key, 500)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (
            400,
            {"error": {"type": "invalid_request_error", "message": "No such destination"}},
            GatewayInvalidRequestError,
        ),
        (
            429,
            {"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "slow"}},
            GatewayRateLimitError,
        ),
        (401, {"error": {"type": "invalid_request_error", "message": "bad key"}}, GatewayError),
    ],
    ids=["invalid-request", "rate-limit", "authentication"],
)
def test_refusal_writes_nothing_locally(
    engine: Engine, http: responses.RequestsMock, status: int, body: Any, error: type
) -> None:
    """When Stripe refuses, the error is typed and no row of any kind remains."""
    setup = stripe_setup(engine)
    http.post(f"{API}/v1/checkout/sessions", status=status, json=body)
    with pytest.raises(error):
        setup.create()
    assert setup.rows() == []
    assert count(engine, Payment) == 0
    assert count(engine, LedgerTransaction) == 0


def test_lost_answer_keeps_only_the_claim_and_retry_replays_it(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """A lost answer keeps only a URL-less claim; the retry resends the identical request."""
    setup = stripe_setup(engine)
    http.post(f"{API}/v1/checkout/sessions", body=requests.ConnectionError("reset"))
    with pytest.raises(GatewayConnectionError):
        setup.create()
    (claim,) = setup.rows()
    assert (claim.status, claim.url) == ("creating", None)
    assert count(engine, Payment) == 0
    setup.clock.now += timedelta(seconds=30)
    http.post(f"{API}/v1/checkout/sessions", json=session_json())
    info = setup.create()
    first, second = (c.request for c in http.calls)
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert first.body == second.body
    (row,) = setup.rows()
    assert (row.id, row.status, info.session_id) == ("cs_test_1", "open", "cs_test_1")


# -- concurrency ---------------------------------------------------------------------------------


def test_simultaneous_calls_create_one_stripe_session(engine: Engine) -> None:
    """Eight threads asking at once for one booking's checkout get one and the same session."""
    setup = Setup(engine)
    setup.fake = FakeGateway(clock=setup.clock, latency=0.05)
    setup.service = CheckoutService(
        setup.config, engine, setup.bookings, setup.fake, clock=setup.clock
    )
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(setup.create().session_id)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    assert len(setup.fake.sessions) == 1
    assert [(r.id, r.status) for r in setup.rows()] == [(results[0], "open")]
    keys = {c.idempotency_key for c in setup.fake.calls_to("create_checkout_session")}
    assert len(keys) == 1


def test_spent_key_after_conflict_moves_to_a_fresh_attempt(setup: Setup) -> None:
    """An idempotency conflict spends the key; the claim is abandoned and a new key used."""
    setup.fake.fail_next(GatewayConnectionError("lost"), performed=True)
    with pytest.raises(GatewayConnectionError):
        setup.create()
    with pytest.raises(IdempotencyConflictError):
        setup.service.create_session(
            "42", user_id="7", success_url="https://app.test/other", cancel_url=CANCEL_URL
        )
    assert [r.status for r in setup.rows()] == ["abandoned"]
    info = setup.create()
    keys = [c.idempotency_key for c in setup.fake.calls_to("create_checkout_session")]
    assert keys[0] == keys[1] != keys[2]
    assert sorted(r.status for r in setup.rows()) == ["abandoned", "open"]
    assert setup.create().session_id == info.session_id


def test_overlong_booking_ids_are_refused_before_the_database(setup: Setup) -> None:
    """Host ids longer than mentorpay's columns are an InvalidRequestError, not a driver error."""
    setup.bookings.add(make_booking(id="b" * 256))
    with pytest.raises(InvalidRequestError):
        setup.create("b" * 256)
    assert setup.fake.calls == []
