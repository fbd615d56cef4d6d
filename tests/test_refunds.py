"""Platform refunds: validated against the recorded payment, sent to Stripe under a
deterministic key, and applied to the ledger only by the ``charge.refunded`` webhook."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses
from sqlalchemy import Engine

from mentorpay.commission import CommissionPolicy
from mentorpay.config import MentorpayConfig
from mentorpay.errors import (
    ConflictError,
    CurrencyMismatchError,
    GatewayInvalidRequestError,
    InvalidAmountError,
    InvalidRequestError,
    PaymentNotFoundError,
)
from mentorpay.gateway import CheckoutSessionParams, PaymentGateway, StripeGateway
from mentorpay.ledger import LedgerService
from mentorpay.money import Money
from mentorpay.refunds import RefundService
from mentorpay.testing import FakeGateway, make_event
from tests.fixtures.declared_bookings import RigProcessor

API = "https://api.stripe.com"


def make_config(**overrides: Any) -> MentorpayConfig:
    """A config with a webhook secret and the given overrides."""
    return MentorpayConfig(webhook_secrets=["whsec_test"], **overrides)


GBP_50 = Money(5000, "GBP")


def record(engine: Engine, gross: Money = GBP_50, pi: str = "pi_1") -> LedgerService:
    """A recorded 50.00 GBP payment for booking 42 (mentor 3, mentee 7)."""
    ledger = LedgerService(engine)
    ledger.record_payment(
        payment_intent_id=pi,
        booking_id="42",
        mentor_id="3",
        mentee_id="7",
        gross=gross,
        policy=CommissionPolicy(rate_bps=1000),
        charge_id="ch_1",
    )
    return ledger


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """Stripe's API, intercepted."""
    with responses.RequestsMock() as mock:
        yield mock


def refund_json(amount: int, refund_id: str = "re_1") -> dict[str, Any]:
    """The refund Stripe answers with."""
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "currency": "gbp",
        "payment_intent": "pi_1",
        "charge": "ch_1",
        "status": "succeeded",
    }


def stripe_service(engine: Engine, **config: Any) -> RefundService:
    """A RefundService over the real StripeGateway (no SDK retries)."""
    gateway: PaymentGateway = StripeGateway("sk_test_123", max_network_retries=0)
    return RefundService(make_config(**config), engine, gateway)


def test_full_refund_request_over_http(engine: Engine, http: responses.RequestsMock) -> None:
    """A full refund sends the remaining amount and booking metadata under its request's key."""
    ledger = record(engine)
    before = ledger.balance("3", "GBP")
    http.post(f"{API}/v1/refunds", json=refund_json(5000))
    result = stripe_service(engine).refund("pi_1", reason="requested_by_customer")
    request = http.calls[0].request
    body = dict(parse_qsl(request.body))
    # The refund names its request, so refund events find it even if this answer is lost.
    assert body.pop("metadata[mentorpay_refund_request]").startswith("auto-")
    assert body == {
        "payment_intent": "pi_1",
        "amount": "5000",
        "reason": "requested_by_customer",
        "metadata[booking_id]": "42",
        "metadata[mentor_id]": "3",
        "metadata[mentee_id]": "7",
    }
    assert request.headers["Idempotency-Key"].startswith("mentorpay:refund:pi_1:request:auto-")
    assert request.headers["Idempotency-Key"] == result.idempotency_key
    assert "Stripe-Account" not in request.headers
    assert (result.refund_id, result.amount) == ("re_1", Money(5000, "GBP"))
    # The ledger waits for charge.refunded.
    assert ledger.balance("3", "GBP") == before
    assert ledger.payment("pi_1").refunded == Money(0, "GBP")


def test_connect_refund_follows_the_configured_policy(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """In Connect mode reverse_transfer and refund_application_fee come from the config."""
    record(engine)
    http.post(f"{API}/v1/refunds", json=refund_json(2000))
    service = stripe_service(
        engine,
        connect_destination_charges=True,
        refund_reverse_transfer=True,
        refund_application_fee=False,
    )
    service.refund("pi_1", Money(2000, "GBP"))
    body = dict(parse_qsl(http.calls[0].request.body))
    assert body["reverse_transfer"] == "true"
    assert body["refund_application_fee"] == "false"
    assert body["amount"] == "2000"


def test_partial_refund_key_does_not_depend_on_the_ledger(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """After 20.00 was applied, refunding 10.00 more is keyed on its own request, not on 30.00."""
    ledger = record(engine)
    ledger.apply_refund_total("pi_1", Money(2000, "GBP"))
    http.post(f"{API}/v1/refunds", json=refund_json(1000))
    result = stripe_service(engine).refund("pi_1", Money(1000, "GBP"))
    key = http.calls[0].request.headers["Idempotency-Key"]
    assert key == result.idempotency_key
    assert key.startswith("mentorpay:refund:pi_1:request:auto-")


def test_request_id_keys_the_refund_on_the_callers_id(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """With request_id the key names the caller's request instead of the target."""
    record(engine)
    http.post(f"{API}/v1/refunds", json=refund_json(1000))
    stripe_service(engine).refund("pi_1", Money(1000, "GBP"), request_id="ticket-77")
    key = http.calls[0].request.headers["Idempotency-Key"]
    assert key == "mentorpay:refund:pi_1:request:ticket-77"


def test_stripe_refusal_writes_nothing(engine: Engine, http: responses.RequestsMock) -> None:
    """A refused refund raises the typed error and the ledger is untouched."""
    ledger = record(engine)
    before = (ledger.balance("3", "GBP"), ledger.verify().transactions)
    http.post(
        f"{API}/v1/refunds",
        status=400,
        json={
            "error": {
                "type": "invalid_request_error",
                "code": "charge_disputed",
                "message": "Charge ch_1 has been charged back",
            }
        },
    )
    with pytest.raises(GatewayInvalidRequestError, match="charge_disputed"):
        stripe_service(engine).refund("pi_1")
    assert (ledger.balance("3", "GBP"), ledger.verify().transactions) == before


def test_double_click_refunds_once(engine: Engine) -> None:
    """Two refund calls with one request_id (a double click's form token) refund once."""
    fake = FakeGateway()
    fake_pi = _paid_at_fake(fake)
    record(engine, pi=fake_pi["id"])
    service = RefundService(make_config(), engine, fake)
    first = service.refund(fake_pi["id"], Money(2000, "GBP"), request_id="form-1")
    second = service.refund(fake_pi["id"], Money(2000, "GBP"), request_id="form-1")
    assert first.refund_id == second.refund_id
    assert fake.charge(fake_pi["latest_charge"])["amount_refunded"] == 2000


@pytest.mark.parametrize(
    ("amount", "reason", "error"),
    [
        (Money(5001, "GBP"), None, InvalidAmountError),
        (Money(0, "GBP"), None, InvalidAmountError),
        (Money(-5, "GBP"), None, InvalidAmountError),
        (Money(100, "EUR"), None, CurrencyMismatchError),
        (None, "because", InvalidRequestError),
    ],
    ids=["above-remaining", "zero", "negative", "other-currency", "bad-reason"],
)
def test_invalid_refunds_never_reach_stripe(
    engine: Engine, amount: Money | None, reason: str | None, error: type
) -> None:
    """Amounts and reasons Stripe would refuse are refused locally, with nothing sent."""
    record(engine)
    fake = FakeGateway()
    with pytest.raises(error):
        RefundService(make_config(), engine, fake).refund("pi_1", amount, reason)
    assert fake.calls == []


def test_unknown_payment_and_nothing_left(engine: Engine) -> None:
    """An unknown intent is PaymentNotFoundError; a fully refunded one is a ConflictError."""
    ledger = record(engine)
    fake = FakeGateway()
    service = RefundService(make_config(), engine, fake)
    with pytest.raises(PaymentNotFoundError):
        service.refund("pi_unknown")
    ledger.apply_refund_total("pi_1", Money(5000, "GBP"))
    with pytest.raises(ConflictError, match="nothing left"):
        service.refund("pi_1")
    assert fake.calls == []


def test_three_decimal_refund_must_end_in_zero(engine: Engine) -> None:
    """A KWD refund of 1.005 breaks Stripe's rule and is refused before Stripe."""
    record(engine, Money(10000, "KWD"), pi="pi_1")
    fake = FakeGateway()
    with pytest.raises(InvalidAmountError, match="multiple of 10"):
        RefundService(make_config(), engine, fake).refund("pi_1", Money(1005, "KWD"))
    assert fake.calls == []


def test_ledger_changes_once_when_charge_refunded_arrives(engine: Engine) -> None:
    """The refund moves money only when charge.refunded is processed, once however delivered."""
    fake = FakeGateway()
    pi = _paid_at_fake(fake)
    ledger = LedgerService(engine)
    processor = RigProcessor(make_config(), engine, ledger)
    assert processor.process_trusted(make_event("payment_intent.succeeded", pi)).status == "success"
    pending_before = ledger.balance("3", "GBP").pending
    RefundService(make_config(), engine, fake).refund(pi["id"], Money(2000, "GBP"))
    assert ledger.balance("3", "GBP").pending == pending_before
    charge = fake.charge(pi["latest_charge"])
    results = [processor.process_trusted(make_event("charge.refunded", charge)) for _ in range(3)]
    assert [r.status for r in results] == ["success"] * 3
    assert sum(len(r.effects) for r in results) == 1
    assert ledger.balance("3", "GBP").pending == pending_before - Money(1800, "GBP")
    assert ledger.payment(pi["id"]).refunded == Money(2000, "GBP")
    assert ledger.verify().ok


def _paid_at_fake(fake: FakeGateway) -> dict[str, Any]:
    """A completed checkout at the fake for booking 42 (50.00 GBP); returns its intent."""
    params = CheckoutSessionParams(
        booking_id="42",
        mentor_id="3",
        mentee_id="7",
        amount=Money(5000, "GBP"),
        line_item_name="Booking 42",
        success_url="https://app.test/ok",
        cancel_url="https://app.test/cancel",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    session = fake.create_checkout_session(params, idempotency_key="k")
    completed = fake.complete_checkout_session(session.id)
    return fake.payment_intent(completed["payment_intent"])
