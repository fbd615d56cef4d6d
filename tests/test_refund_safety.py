"""Refund retries never refund twice: each refund request is claimed under a fixed idempotency
key before Stripe is called, and every retry of that request sends that key (issue 8, case 4)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
import responses
from sqlalchemy import Engine, select

from mentorpay.commission import CommissionPolicy
from mentorpay.config import MentorpayConfig
from mentorpay.errors import (
    ConflictError,
    GatewayConnectionError,
    GatewayInvalidRequestError,
)
from mentorpay.gateway import PaymentGateway, StripeGateway
from mentorpay.ledger import LedgerService
from mentorpay.money import Money
from mentorpay.refunds import RefundService
from mentorpay.testing import FakeGateway, charge, make_event
from mentorpay.webhooks import WebhookProcessor

API = "https://api.stripe.com"
GBP = "GBP"


def make_config() -> MentorpayConfig:
    """A config with a webhook secret."""
    return MentorpayConfig(webhook_secrets=["whsec_test"])


def record(engine: Engine, pi: str = "pi_1") -> LedgerService:
    """A recorded 50.00 GBP payment for booking 42 (mentor 3, mentee 7), charge ch_1."""
    ledger = LedgerService(engine)
    ledger.record_payment(
        payment_intent_id=pi,
        booking_id="42",
        mentor_id="3",
        mentee_id="7",
        gross=Money(5000, GBP),
        policy=CommissionPolicy(rate_bps=1000),
        charge_id="ch_1",
    )
    return ledger


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """Stripe's API, intercepted."""
    with responses.RequestsMock() as mock:
        yield mock


def refund_json(amount: int, refund_id: str = "re_1", status: str = "succeeded") -> dict[str, Any]:
    """The refund Stripe answers with (the shape of Stripe's own fixture)."""
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "currency": "gbp",
        "payment_intent": "pi_1",
        "charge": "ch_1",
        "status": status,
        "reason": None,
        "metadata": {},
        "created": 1234567890,
    }


def stripe_service(engine: Engine) -> RefundService:
    """A RefundService over the real StripeGateway (no SDK retries)."""
    gateway: PaymentGateway = StripeGateway("sk_test_123", max_network_retries=0)
    return RefundService(make_config(), engine, gateway)


def lose_answer(http: responses.RequestsMock) -> None:
    """The next refund request reaches Stripe, which acts, but the answer never comes back."""
    http.post(f"{API}/v1/refunds", body=requests.ConnectionError("connection reset by peer"))


def refunded_event(total: int) -> dict[str, Any]:
    """charge.refunded for ch_1 with Stripe's cumulative amount_refunded."""
    obj = charge(id="ch_1", payment_intent="pi_1", amount=5000, amount_refunded=total)
    return make_event("charge.refunded", obj)


def keys(http: responses.RequestsMock) -> list[str]:
    """The Idempotency-Key header of every request sent to Stripe."""
    return [str(c.request.headers["Idempotency-Key"]) for c in http.calls]


def request_rows(engine: Engine) -> list[dict[str, Any]]:
    """The stored refund requests, oldest first."""
    from mentorpay.models import refund_requests_table

    with engine.connect() as conn:
        rows = conn.execute(select(refund_requests_table).order_by(refund_requests_table.c.id))
        return [dict(r._mapping) for r in rows]


def test_retry_after_lost_answer_and_webhook_sends_the_same_key(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """Case 4: the answer is lost, charge.refunded arrives, the retry repeats the same request."""
    ledger = record(engine)
    processor = WebhookProcessor(make_config(), engine, ledger)
    service = stripe_service(engine)
    lose_answer(http)
    with pytest.raises(GatewayConnectionError):
        service.refund("pi_1", Money(1000, GBP))
    # Stripe did refund: its webhook moves the ledger, changing amount_refunded.
    assert processor.process_trusted(refunded_event(1000)).status == "success"
    http.post(f"{API}/v1/refunds", json=refund_json(1000))
    result = service.refund("pi_1", Money(1000, GBP))
    assert len(http.calls) == 2
    assert keys(http)[0] == keys(http)[1]
    assert http.calls[0].request.body == http.calls[1].request.body
    assert result.refund_id == "re_1"
    assert result.idempotency_key == keys(http)[0]
    assert ledger.payment("pi_1").refunded == Money(1000, GBP)


def test_request_row_is_claimed_before_stripe_and_records_the_answer(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """The claim is committed before the call; Stripe's refund id and status land on it."""
    record(engine)
    seen: list[list[dict[str, Any]]] = []

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        import json

        seen.append(request_rows(engine))  # read from another connection: it is committed
        return 200, {}, json.dumps(refund_json(1000, status="pending"))

    http.add_callback(responses.POST, f"{API}/v1/refunds", callback=answer)
    result = stripe_service(engine).refund("pi_1", Money(1000, GBP), reason="duplicate")
    assert [r["status"] for r in seen[0]] == ["creating"]
    assert seen[0][0]["idempotency_key"] == keys(http)[0]
    (row,) = request_rows(engine)
    assert (row["status"], row["refund_id"], row["amount"], row["currency"]) == (
        "pending",
        "re_1",
        1000,
        GBP,
    )
    assert (row["reason"], row["payment_intent_id"]) == ("duplicate", "pi_1")
    assert (result.status, result.amount) == ("pending", Money(1000, GBP))


def test_request_id_retry_after_success_does_not_call_stripe_again(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """A request_id Stripe already answered returns that answer; Stripe is not asked again."""
    record(engine)
    http.post(f"{API}/v1/refunds", json=refund_json(1000))
    service = stripe_service(engine)
    first = service.refund("pi_1", Money(1000, GBP), request_id="ticket-77")
    second = service.refund("pi_1", Money(1000, GBP), request_id="ticket-77")
    assert len(http.calls) == 1
    assert first == second
    assert keys(http) == ["mentorpay:refund:pi_1:request:ticket-77"]


def test_request_id_with_another_amount_is_a_conflict(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """Reusing a request_id for a different amount is a typed 409 and sends nothing."""
    record(engine)
    http.post(f"{API}/v1/refunds", json=refund_json(1000))
    service = stripe_service(engine)
    service.refund("pi_1", Money(1000, GBP), request_id="ticket-77")
    with pytest.raises(ConflictError, match="ticket-77") as caught:
        service.refund("pi_1", Money(2000, GBP), request_id="ticket-77")
    assert caught.value.http_status == 409
    assert len(http.calls) == 1
    assert len(request_rows(engine)) == 1


def test_request_id_retry_after_lost_answer_repeats_the_request(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """A request_id whose answer was lost is sent again byte for byte, whatever reason is given."""
    record(engine)
    lose_answer(http)
    service = stripe_service(engine)
    with pytest.raises(GatewayConnectionError):
        service.refund("pi_1", Money(1000, GBP), "duplicate", request_id="t-1")
    http.post(f"{API}/v1/refunds", json=refund_json(1000))
    service.refund("pi_1", Money(1000, GBP), "fraudulent", request_id="t-1")
    assert keys(http) == ["mentorpay:refund:pi_1:request:t-1"] * 2
    assert http.calls[0].request.body == http.calls[1].request.body


def test_a_new_refund_after_a_completed_one_gets_a_new_key(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """Without request_id, only a request with an unknown outcome is reused."""
    record(engine)
    http.post(f"{API}/v1/refunds", json=refund_json(1000, "re_1"))
    http.post(f"{API}/v1/refunds", json=refund_json(1000, "re_2"))
    service = stripe_service(engine)
    first = service.refund("pi_1", Money(1000, GBP))
    second = service.refund("pi_1", Money(1000, GBP))
    assert keys(http)[0] != keys(http)[1]
    assert (first.refund_id, second.refund_id) == ("re_1", "re_2")
    assert [r["status"] for r in request_rows(engine)] == ["succeeded", "succeeded"]


def test_a_full_refund_retry_after_lost_answer_reuses_the_request(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """refund(pi) lost, webhook applies it, refund(pi) again repeats it instead of a 409."""
    ledger = record(engine)
    processor = WebhookProcessor(make_config(), engine, ledger)
    service = stripe_service(engine)
    lose_answer(http)
    with pytest.raises(GatewayConnectionError):
        service.refund("pi_1")
    processor.process_trusted(refunded_event(5000))
    http.post(f"{API}/v1/refunds", json=refund_json(5000))
    assert service.refund("pi_1").refund_id == "re_1"
    assert keys(http)[0] == keys(http)[1]
    assert dict(parse_qsl(http.calls[1].request.body))["amount"] == "5000"


def test_refusal_marks_the_request_failed_and_moves_no_money(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """A refused refund is recorded failed with Stripe's reason; a later call gets a new key."""
    ledger = record(engine)
    before = (ledger.balance("3", GBP), ledger.verify().transactions)
    http.post(
        f"{API}/v1/refunds",
        status=400,
        json={
            "error": {"type": "invalid_request_error", "code": "charge_disputed", "message": "x"}
        },
    )
    http.post(f"{API}/v1/refunds", json=refund_json(1000))
    service = stripe_service(engine)
    with pytest.raises(GatewayInvalidRequestError):
        service.refund("pi_1", Money(1000, GBP))
    service.refund("pi_1", Money(1000, GBP))
    assert keys(http)[0] != keys(http)[1]
    rows = request_rows(engine)
    assert [r["status"] for r in rows] == ["failed", "succeeded"]
    assert rows[0]["failure_reason"] and "charge_disputed" in rows[0]["failure_reason"]
    assert (ledger.balance("3", GBP), ledger.verify().transactions) == before


def test_an_unknown_outcome_older_than_stripes_key_lifetime_is_not_resent(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """After 24 h Stripe may have forgotten the key, so the retry refuses instead of doubling."""
    record(engine)
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    gateway: PaymentGateway = StripeGateway("sk_test_123", max_network_retries=0)
    service = RefundService(make_config(), engine, gateway, clock=lambda: now[0])
    lose_answer(http)
    with pytest.raises(GatewayConnectionError):
        service.refund("pi_1", Money(1000, GBP))
    now[0] += timedelta(hours=25)
    with pytest.raises(ConflictError, match="24 hours"):
        service.refund("pi_1", Money(1000, GBP))
    assert len(http.calls) == 1


def test_concurrent_retries_of_an_unknown_refund_refund_once(engine: Engine) -> None:
    """Threads retrying at once a refund whose answer was lost all reuse its key."""
    fake = FakeGateway(latency=0.3)  # every retry claims before any answer comes back
    from tests.test_refunds import _paid_at_fake

    pi = _paid_at_fake(fake)
    ledger = LedgerService(engine)
    ledger.record_payment(
        payment_intent_id=pi["id"],
        booking_id="42",
        mentor_id="3",
        mentee_id="7",
        gross=Money(5000, GBP),
        policy=CommissionPolicy(rate_bps=1000),
        charge_id=pi["latest_charge"],
    )
    service = RefundService(make_config(), engine, fake)
    fake.fail_next(GatewayConnectionError("lost"), method="create_refund", performed=True)
    with pytest.raises(GatewayConnectionError):
        service.refund(pi["id"], Money(2000, GBP))
    errors: list[BaseException] = []

    def retry() -> None:
        try:
            service.refund(pi["id"], Money(2000, GBP))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=retry) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert fake.charge(pi["latest_charge"])["amount_refunded"] == 2000
    assert len({c.idempotency_key for c in fake.calls_to("create_refund")}) == 1


def test_refund_event_links_a_lost_answer_so_a_late_retry_returns_it(engine: Engine) -> None:
    """refund.created names our request in its metadata: the retry returns it, even after 24 h."""
    from mentorpay import BookingInfo
    from mentorpay.app import MentorPay
    from mentorpay.testing import InMemoryBookings
    from tests.test_refunds import _paid_at_fake

    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    fake = FakeGateway()
    bookings = InMemoryBookings([BookingInfo("42", "7", "3", Money(5000, GBP), "confirmed")])
    mp = MentorPay(make_config(), engine, bookings=bookings, gateway=fake, clock=lambda: now[0])
    pi = _paid_at_fake(fake)
    assert mp.webhooks.process_trusted(make_event("payment_intent.succeeded", pi)).status in (
        "success",
    )
    fake.fail_next(GatewayConnectionError("lost"), method="create_refund", performed=True)
    with pytest.raises(GatewayConnectionError):
        mp.refunds.refund(pi["id"], Money(2000, GBP))
    (call,) = fake.calls_to("create_refund")
    (row,) = request_rows(engine)
    assert call.args["metadata"]["mentorpay_refund_request"] == row["request_key"]
    (made,) = fake.list_refunds(created_gte=datetime(2000, 1, 1, tzinfo=UTC))
    refund_obj = dict(made.raw)
    assert mp.webhooks.process_trusted(make_event("refund.created", refund_obj)).status == "success"
    (row,) = request_rows(engine)
    assert (row["refund_id"], row["status"]) == (refund_obj["id"], "succeeded")
    now[0] += timedelta(days=3)
    result = mp.refunds.refund(pi["id"], Money(2000, GBP))
    assert result.refund_id == refund_obj["id"]
    assert len(fake.calls_to("create_refund")) == 1
    # The caller has its answer now: the next identical call is a new refund.
    assert mp.refunds.refund(pi["id"], Money(2000, GBP)).refund_id != refund_obj["id"]
    assert fake.charge(pi["latest_charge"])["amount_refunded"] == 4000


def test_refund_failed_marks_a_request_whose_answer_was_lost(engine: Engine) -> None:
    """A failure of a refund whose answer never came back still finds its request row."""
    from mentorpay import BookingInfo
    from mentorpay.app import MentorPay
    from mentorpay.testing import InMemoryBookings
    from tests.test_refunds import _paid_at_fake

    fake = FakeGateway()
    bookings = InMemoryBookings([BookingInfo("42", "7", "3", Money(5000, GBP), "confirmed")])
    mp = MentorPay(make_config(), engine, bookings=bookings, gateway=fake)
    pi = _paid_at_fake(fake)
    mp.webhooks.process_trusted(make_event("payment_intent.succeeded", pi))
    fake.fail_next(GatewayConnectionError("lost"), method="create_refund", performed=True)
    with pytest.raises(GatewayConnectionError):
        mp.refunds.refund(pi["id"], Money(2000, GBP))
    (made,) = fake.list_refunds(created_gte=datetime(2000, 1, 1, tzinfo=UTC))
    refund_obj = dict(made.raw)
    refund_obj.update(status="failed", failure_reason="declined")
    assert mp.webhooks.process_trusted(make_event("refund.failed", refund_obj)).status == "success"
    (row,) = request_rows(engine)
    assert (row["refund_id"], row["status"], row["failure_reason"]) == (
        refund_obj["id"],
        "failed",
        "declined",
    )
    # The retry learns the outcome instead of resending.
    assert mp.refunds.refund(pi["id"], Money(2000, GBP)).status == "failed"
    assert len(fake.calls_to("create_refund")) == 1
