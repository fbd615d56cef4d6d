"""StripeGateway against Stripe's real HTTP surface (intercepted by ``responses``), the error
mapping, idempotency keys, pagination, and the FakeGateway's Stripe-like behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from mentorpay.errors import (
    CardError,
    ConfigurationError,
    GatewayConnectionError,
    GatewayError,
    GatewayInvalidRequestError,
    GatewayRateLimitError,
    IdempotencyConflictError,
    InvalidRequestError,
)
from mentorpay.gateway import (
    CheckoutSessionParams,
    PaymentGateway,
    StripeGateway,
    checkout_expire_idempotency_key,
    checkout_idempotency_key,
    is_missing_resource,
    outcome_unknown,
    payout_reversal_idempotency_key,
    payout_transfer_idempotency_key,
    refund_idempotency_key,
)
from mentorpay.money import Money
from mentorpay.testing import FakeGateway
from tests.fixtures.stripe_http import form

API = "https://api.stripe.com"
EXPIRES = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)


@pytest.fixture
def gateway() -> StripeGateway:
    """A StripeGateway with SDK retries off, so error tests see exactly one request."""
    return StripeGateway("sk_test_123", max_network_retries=0)


def query(request: Any) -> dict[str, str]:
    """The request's query string as a dict."""
    return dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))


def session_json(**extra: Any) -> dict[str, Any]:
    """A checkout.session object as Stripe returns it."""
    return {
        "id": "cs_test_1",
        "object": "checkout.session",
        "url": "https://checkout.stripe.com/c/pay/cs_test_1",
        "status": "open",
        "payment_status": "unpaid",
        "payment_intent": None,
        "amount_total": 5000,
        "currency": "gbp",
        "expires_at": int(EXPIRES.timestamp()),
        "created": int(EXPIRES.timestamp()) - 3600,
        "metadata": {"booking_id": "42", "mentor_id": "3", "mentee_id": "7"},
        **extra,
    }


def params(**overrides: Any) -> CheckoutSessionParams:
    """Checkout parameters for booking 42 at 50.00 GBP."""
    values: dict[str, Any] = {
        "booking_id": "42",
        "mentor_id": "3",
        "mentee_id": "7",
        "amount": Money(5000, "GBP"),
        "line_item_name": "Booking 42",
        "success_url": "https://app.test/paid",
        "cancel_url": "https://app.test/cancel",
        "expires_at": EXPIRES,
    }
    values.update(overrides)
    return CheckoutSessionParams(**values)


def error_body(type_: str, message: str, **extra: Any) -> dict[str, Any]:
    """A Stripe error response body."""
    return {"error": {"type": type_, "message": message, **extra}}


# -- POST bodies and headers ---------------------------------------------------------------------


def test_checkout_session_body_key_and_no_stripe_account(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """A platform checkout sends the exact form body, the Idempotency-Key, no Stripe-Account."""
    http.post(f"{API}/v1/checkout/sessions", json=session_json())
    session = gateway.create_checkout_session(params(), idempotency_key="mentorpay:checkout:42:0")
    request = http.calls[0].request
    assert form(request) == {
        "mode": "payment",
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "gbp",
        "line_items[0][price_data][unit_amount]": "5000",
        "line_items[0][price_data][product_data][name]": "Booking 42",
        "success_url": "https://app.test/paid",
        "cancel_url": "https://app.test/cancel",
        "client_reference_id": "42",
        "expires_at": str(int(EXPIRES.timestamp())),
        "metadata[booking_id]": "42",
        "metadata[mentor_id]": "3",
        "metadata[mentee_id]": "7",
        "payment_intent_data[metadata][booking_id]": "42",
        "payment_intent_data[metadata][mentor_id]": "3",
        "payment_intent_data[metadata][mentee_id]": "7",
    }
    assert request.headers["Idempotency-Key"] == "mentorpay:checkout:42:0"
    assert "Stripe-Account" not in request.headers
    assert request.headers["Authorization"] == "Bearer sk_test_123"
    assert session.id == "cs_test_1"
    assert session.url == "https://checkout.stripe.com/c/pay/cs_test_1"
    assert session.expires_at == EXPIRES
    assert session.raw["object"] == "checkout.session"


def test_connect_checkout_carries_fee_and_destination(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """Destination charges add application_fee_amount and transfer_data[destination]."""
    http.post(f"{API}/v1/checkout/sessions", json=session_json())
    gateway.create_checkout_session(
        params(application_fee=Money(500, "GBP"), destination="acct_mentor3"),
        idempotency_key="k-connect",
    )
    body = form(http.calls[0].request)
    assert body["payment_intent_data[application_fee_amount]"] == "500"
    assert body["payment_intent_data[transfer_data][destination]"] == "acct_mentor3"
    # Both events that can record the payment learn the mentor's share left at capture.
    assert body["metadata[mentor_account]"] == "acct_mentor3"
    assert body["payment_intent_data[metadata][mentor_account]"] == "acct_mentor3"
    assert body["metadata[platform_fee]"] == body["payment_intent_data[metadata][platform_fee]"]
    assert body["metadata[platform_fee]"] == "500"
    assert "Stripe-Account" not in http.calls[0].request.headers


def test_expire_session_posts_to_expire_with_key(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """Expiring a session is an empty POST to .../expire carrying its idempotency key."""
    http.post(f"{API}/v1/checkout/sessions/cs_test_1/expire", json=session_json(status="expired"))
    key = checkout_expire_idempotency_key("cs_test_1")
    session = gateway.expire_checkout_session("cs_test_1", idempotency_key=key)
    request = http.calls[0].request
    assert form(request) == {}
    assert request.headers["Idempotency-Key"] == "mentorpay:checkout-expire:cs_test_1"
    assert session.status == "expired"


def test_refund_body_with_connect_flags(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """A refund sends payment_intent, amount, reason, metadata and both Connect flags."""
    http.post(
        f"{API}/v1/refunds",
        json={
            "id": "re_1",
            "object": "refund",
            "amount": 2000,
            "currency": "gbp",
            "payment_intent": "pi_1",
            "charge": "ch_1",
            "status": "succeeded",
        },
    )
    key = refund_idempotency_key("pi_1", cumulative_target=2000)
    refund = gateway.create_refund(
        payment_intent_id="pi_1",
        amount=Money(2000, "GBP"),
        idempotency_key=key,
        reason="requested_by_customer",
        metadata={"booking_id": "42"},
        reverse_transfer=True,
        refund_application_fee=False,
    )
    request = http.calls[0].request
    assert form(request) == {
        "payment_intent": "pi_1",
        "amount": "2000",
        "reason": "requested_by_customer",
        "metadata[booking_id]": "42",
        "reverse_transfer": "true",
        "refund_application_fee": "false",
    }
    assert request.headers["Idempotency-Key"] == "mentorpay:refund:pi_1:to:2000"
    assert refund.money == Money(2000, "GBP")
    assert refund.charge_id == "ch_1"


def test_transfer_body_and_key(http: responses.RequestsMock, gateway: StripeGateway) -> None:
    """A payout transfer sends amount, currency, destination, metadata, group, description."""
    http.post(
        f"{API}/v1/transfers",
        json={
            "id": "tr_1",
            "object": "transfer",
            "amount": 4500,
            "amount_reversed": 0,
            "currency": "gbp",
            "destination": "acct_mentor3",
            "reversed": False,
            "metadata": {"payout_request_id": "9"},
        },
    )
    transfer = gateway.create_transfer(
        amount=Money(4500, "GBP"),
        destination="acct_mentor3",
        idempotency_key=payout_transfer_idempotency_key(9),
        metadata={"payout_request_id": "9", "mentor_id": "3"},
        transfer_group="mentorpay-payout-9",
        description="mentorpay payout 9",
    )
    request = http.calls[0].request
    assert form(request) == {
        "amount": "4500",
        "currency": "gbp",
        "destination": "acct_mentor3",
        "metadata[payout_request_id]": "9",
        "metadata[mentor_id]": "3",
        "transfer_group": "mentorpay-payout-9",
        "description": "mentorpay payout 9",
    }
    assert request.headers["Idempotency-Key"] == "mentorpay:payout:9:transfer"
    assert transfer.money == Money(4500, "GBP")
    assert transfer.metadata == {"payout_request_id": "9"}


def test_transfer_reversal_body_and_key(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """A reversal posts to /transfers/<id>/reversals with its own key."""
    http.post(
        f"{API}/v1/transfers/tr_1/reversals",
        json={
            "id": "trr_1",
            "object": "transfer_reversal",
            "amount": 4500,
            "currency": "gbp",
            "transfer": "tr_1",
        },
    )
    reversal = gateway.create_transfer_reversal(
        "tr_1",
        idempotency_key=payout_reversal_idempotency_key(9),
        amount=Money(4500, "GBP"),
        metadata={"payout_request_id": "9"},
    )
    request = http.calls[0].request
    assert form(request) == {"amount": "4500", "metadata[payout_request_id]": "9"}
    assert request.headers["Idempotency-Key"] == "mentorpay:payout:9:reversal"
    assert reversal.transfer_id == "tr_1"


def test_stripe_account_and_key_prefix_when_configured(http: responses.RequestsMock) -> None:
    """A gateway acting for a connected account sends Stripe-Account; the prefix namespaces keys."""
    gateway = StripeGateway(
        "sk_test_123",
        max_network_retries=0,
        stripe_account="acct_platform2",
        idempotency_prefix="staging:",
    )
    http.post(f"{API}/v1/checkout/sessions/cs_test_1/expire", json=session_json())
    http.get(f"{API}/v1/transfers/tr_1", json={"id": "tr_1", "object": "transfer"})
    gateway.expire_checkout_session("cs_test_1", idempotency_key="k1")
    gateway.retrieve_transfer("tr_1")
    post, get = http.calls[0].request, http.calls[1].request
    assert post.headers["Stripe-Account"] == "acct_platform2"
    assert post.headers["Idempotency-Key"] == "staging:k1"
    assert get.headers["Stripe-Account"] == "acct_platform2"
    assert "Idempotency-Key" not in get.headers


def test_gateway_refuses_to_start_without_a_key() -> None:
    """No secret key is a configuration error, not a failed request later."""
    with pytest.raises(ConfigurationError, match="secret key"):
        StripeGateway(None)


def test_empty_idempotency_key_is_refused(gateway: StripeGateway) -> None:
    """A POST without a usable key is refused before any request is made."""
    with pytest.raises(InvalidRequestError):
        gateway.expire_checkout_session("cs_test_1", idempotency_key="")


# -- error mapping -------------------------------------------------------------------------------

ERRORS = [
    pytest.param(
        402,
        error_body(
            "card_error",
            "Your card was declined.",
            code="card_declined",
            decline_code="insufficient_funds",
        ),
        CardError,
        False,
        "card was declined",
        id="card",
    ),
    pytest.param(
        429,
        error_body("invalid_request_error", "Too many requests", code="rate_limit"),
        GatewayRateLimitError,
        True,
        "rate-limited",
        id="rate-limit",
    ),
    pytest.param(
        400,
        error_body(
            "idempotency_error",
            "Keys for idempotent requests can only be used "
            "with the same parameters they were first used with.",
        ),
        IdempotencyConflictError,
        False,
        "different parameters",
        id="idempotency",
    ),
    pytest.param(
        400,
        error_body(
            "invalid_request_error",
            "Invalid currency: zzz",
            param="currency",
            code="parameter_invalid",
        ),
        GatewayInvalidRequestError,
        False,
        "param currency",
        id="invalid-request",
    ),
    pytest.param(
        401,
        error_body("invalid_request_error", "Invalid API Key provided"),
        GatewayError,
        False,
        "STRIPE_SECRET_KEY",
        id="authentication",
    ),
    pytest.param(
        403,
        error_body("invalid_request_error", "The provided key does not have access"),
        GatewayError,
        False,
        "retrying will not help",
        id="permission",
    ),
    pytest.param(
        500,
        error_body("api_error", "Something went wrong on Stripe's end."),
        GatewayConnectionError,
        True,
        "may or may not",
        id="stripe-5xx",
    ),
]


@pytest.mark.parametrize(("status", "body", "expected", "retryable", "fragment"), ERRORS)
def test_stripe_errors_map_to_typed_gateway_errors(
    http: responses.RequestsMock,
    gateway: StripeGateway,
    *,
    status: int,
    body: dict[str, Any],
    expected: type[GatewayError],
    retryable: bool,
    fragment: str,
) -> None:
    """Each Stripe error becomes its mentorpay class, saying whether a retry can help."""
    http.post(f"{API}/v1/refunds", status=status, json=body, headers={"Request-Id": "req_9"})
    with pytest.raises(GatewayError) as caught:
        gateway.create_refund(payment_intent_id="pi_1", amount=None, idempotency_key="k-err")
    error = caught.value
    assert type(error) is expected
    assert error.retryable is retryable
    assert fragment in error.message
    assert error.details["request_id"] == "req_9"
    assert error.details["idempotency_key"] == "k-err"
    assert error.details["action"] == "refund pi_1"
    assert isinstance(error.__cause__, Exception)


def test_connection_failure_means_outcome_unknown(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """A network failure is GatewayConnectionError, retryable, with the outcome unknown."""
    http.post(f"{API}/v1/transfers", body=requests.ConnectionError("connection reset"))
    with pytest.raises(GatewayConnectionError) as caught:
        gateway.create_transfer(
            amount=Money(100, "USD"), destination="acct_1", idempotency_key="k-net"
        )
    assert caught.value.retryable
    assert outcome_unknown(caught.value)
    assert "same idempotency key" in caught.value.message


def test_refusals_are_not_unknown_outcomes() -> None:
    """Only connection-type errors leave Stripe's outcome unknown."""
    assert not outcome_unknown(GatewayRateLimitError("slow down"))
    assert not outcome_unknown(GatewayInvalidRequestError("bad"))
    assert not outcome_unknown(CardError("declined"))


def test_missing_object_is_recognisable(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """A 404 resource_missing is an invalid request that is_missing_resource() recognises."""
    http.get(
        f"{API}/v1/payment_intents/pi_gone",
        status=404,
        json=error_body(
            "invalid_request_error",
            "No such payment_intent: 'pi_gone'",
            code="resource_missing",
            param="intent",
        ),
    )
    with pytest.raises(GatewayInvalidRequestError) as caught:
        gateway.retrieve_payment_intent("pi_gone")
    assert is_missing_resource(caught.value)
    assert "Idempotency-Key" not in http.calls[0].request.headers


def test_retries_resend_the_same_idempotency_key(http: responses.RequestsMock) -> None:
    """The SDK's own retries after a 500 reuse the key, so Stripe cannot act twice."""
    gateway = StripeGateway("sk_test_123", max_network_retries=1)
    http.post(
        f"{API}/v1/refunds",
        status=500,
        json=error_body("api_error", "boom"),
        headers={"Stripe-Should-Retry": "true"},
    )
    http.post(
        f"{API}/v1/refunds",
        json={
            "id": "re_1",
            "object": "refund",
            "amount": 100,
            "currency": "usd",
            "status": "succeeded",
        },
    )
    import stripe._http_client as stripe_http

    original = stripe_http.HTTPClient._sleep_time_seconds
    stripe_http.HTTPClient._sleep_time_seconds = lambda self, n: 0  # type: ignore[method-assign]
    try:
        gateway.create_refund(payment_intent_id="pi_1", amount=None, idempotency_key="k-retry")
    finally:
        stripe_http.HTTPClient._sleep_time_seconds = original  # type: ignore[method-assign]
    keys = [c.request.headers["Idempotency-Key"] for c in http.calls]
    assert keys == ["k-retry", "k-retry"]


# -- listings ------------------------------------------------------------------------------------


def test_listing_follows_has_more_with_starting_after(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """A listing pages with starting_after=<last id> until has_more is false."""
    since = datetime(2026, 3, 1, tzinfo=UTC)
    until = since + timedelta(days=1)
    page1 = {
        "object": "list",
        "url": "/v1/transfers",
        "has_more": True,
        "data": [{"id": "tr_3", "object": "transfer"}, {"id": "tr_2", "object": "transfer"}],
    }
    page2 = {
        "object": "list",
        "url": "/v1/transfers",
        "has_more": False,
        "data": [{"id": "tr_1", "object": "transfer"}],
    }
    http.get(f"{API}/v1/transfers", json=page1)
    http.get(f"{API}/v1/transfers", json=page2)
    ids = [t.id for t in gateway.list_transfers(created_gte=since, created_lt=until)]
    assert ids == ["tr_3", "tr_2", "tr_1"]
    first, second = (query(c.request) for c in http.calls)
    window = {
        "created[gte]": str(int(since.timestamp())),
        "created[lt]": str(int(until.timestamp())),
        "limit": "100",
    }
    assert first == window
    assert second == {**window, "starting_after": "tr_2"}


def test_listing_errors_are_mapped(http: responses.RequestsMock, gateway: StripeGateway) -> None:
    """A failing page raises the mapped error, not a Stripe exception."""
    http.get(f"{API}/v1/disputes", status=429, json=error_body("rate_limit", "slow"))
    with pytest.raises(GatewayRateLimitError):
        list(gateway.list_disputes(created_gte=datetime(2026, 1, 1, tzinfo=UTC)))


def test_objects_are_read_into_small_dataclasses(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """A PaymentIntent's amounts, metadata and expanded charge come back as plain fields."""
    http.get(
        f"{API}/v1/payment_intents/pi_1",
        json={
            "id": "pi_1",
            "object": "payment_intent",
            "status": "succeeded",
            "amount": 5000,
            "amount_received": 5000,
            "currency": "gbp",
            "latest_charge": {"id": "ch_1", "object": "charge"},
            "metadata": {"booking_id": "42"},
            "created": 1767225600,
        },
    )
    pi = gateway.retrieve_payment_intent("pi_1")
    assert (pi.status, pi.money, pi.latest_charge) == ("succeeded", Money(5000, "GBP"), "ch_1")
    assert pi.metadata == {"booking_id": "42"}
    assert pi.created == datetime(2026, 1, 1, tzinfo=UTC)
    assert pi.raw["latest_charge"] == {"id": "ch_1", "object": "charge"}


def test_naive_datetimes_are_refused(gateway: StripeGateway) -> None:
    """Listing with a naive datetime is an InvalidRequestError, not a silent local-time guess."""
    with pytest.raises(InvalidRequestError):
        list(gateway.list_charges(created_gte=datetime(2026, 1, 1)))


# -- idempotency keys ----------------------------------------------------------------------------


def test_checkout_keys_are_deterministic_and_distinguish_attempts() -> None:
    """Same booking, amount and attempt give the same key; any of them changing gives another."""
    key = checkout_idempotency_key("42", Money(5000, "GBP"), 0, "abc")
    assert key == "mentorpay:checkout:42:0:5000gbp:abc"
    assert checkout_idempotency_key("42", Money(5000, "GBP"), 0, "abc") == key
    others = {
        checkout_idempotency_key("42", Money(5000, "GBP"), 1, "abc"),
        checkout_idempotency_key("42", Money(5100, "GBP"), 0, "abc"),
        checkout_idempotency_key("43", Money(5000, "GBP"), 0, "abc"),
        checkout_idempotency_key("42", Money(5000, "EUR"), 0, "abc"),
        checkout_idempotency_key("42", Money(5000, "GBP"), 0, "xyz"),
    }
    assert key not in others
    assert len(others) == 5


def test_long_ids_keep_keys_within_stripes_limit() -> None:
    """A 255-character booking id is hashed so the key stays short and keeps its tail."""
    key = checkout_idempotency_key("b" * 255, Money(5000, "GBP"), 3, "fp")
    assert len(key) <= 200
    assert key.endswith(":3:5000gbp:fp")
    assert len(refund_idempotency_key("pi_" + "x" * 250, cumulative_target=10)) <= 200


def test_refund_keys_name_the_cumulative_target_or_the_request() -> None:
    """Refund keys: payment intent plus cumulative total, or the caller's request id."""
    assert refund_idempotency_key("pi_1", cumulative_target=3000) == "mentorpay:refund:pi_1:to:3000"
    assert (
        refund_idempotency_key("pi_1", cumulative_target=3000, request_id="T-7")
        == "mentorpay:refund:pi_1:request:T-7"
    )
    with pytest.raises(InvalidRequestError):
        refund_idempotency_key("pi_1")


# -- FakeGateway ---------------------------------------------------------------------------------


def fake_params(fake: FakeGateway, **overrides: Any) -> CheckoutSessionParams:
    """Parameters valid for the fake's clock (expiry one hour ahead)."""
    return params(
        expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1), **overrides
    )


def test_fake_gateway_is_a_payment_gateway() -> None:
    """FakeGateway and StripeGateway both satisfy the PaymentGateway protocol."""
    assert isinstance(FakeGateway(), PaymentGateway)
    assert isinstance(StripeGateway("sk_test_1"), PaymentGateway)


def test_fake_replays_same_key_and_refuses_other_params() -> None:
    """Same key and params return the same session; other params under it are refused."""
    fake = FakeGateway(checkout_url_template="http://127.0.0.1:8000/fake-checkout/{session_id}")
    p = fake_params(fake)
    first = fake.create_checkout_session(p, idempotency_key="k1")
    again = fake.create_checkout_session(p, idempotency_key="k1")
    assert first == again
    assert first.id.startswith("cs_test_")
    assert first.url == f"http://127.0.0.1:8000/fake-checkout/{first.id}"
    assert len(fake.sessions) == 1
    with pytest.raises(IdempotencyConflictError):
        fake.create_checkout_session(
            fake_params(fake, amount=Money(6000, "GBP")), idempotency_key="k1"
        )
    assert [c.idempotency_key for c in fake.calls_to("create_checkout_session")] == ["k1"] * 3


def test_fake_fail_next_before_and_after_acting() -> None:
    """fail_next refuses (nothing created) or loses the answer (created; the retry returns it)."""
    fake = FakeGateway()
    fake.fail_next(GatewayRateLimitError("slow down"), method="create_checkout_session")
    with pytest.raises(GatewayRateLimitError):
        fake.create_checkout_session(fake_params(fake), idempotency_key="k1")
    assert fake.sessions == []
    fake.fail_next(GatewayConnectionError("lost"), performed=True)
    with pytest.raises(GatewayConnectionError):
        fake.create_checkout_session(fake_params(fake), idempotency_key="k2")
    assert len(fake.sessions) == 1
    replayed = fake.create_checkout_session(fake_params(fake), idempotency_key="k2")
    assert replayed.id == fake.sessions[0]["id"]


def test_fake_payment_refund_and_reversal_follow_stripe_rules() -> None:
    """Completing creates a succeeded intent and charge; refunds and reversals are bounded."""
    fake = FakeGateway()
    session = fake.create_checkout_session(fake_params(fake), idempotency_key="k")
    completed = fake.complete_checkout_session(session.id)
    pi = fake.payment_intent(completed["payment_intent"])
    assert pi["status"] == "succeeded"
    assert pi["metadata"] == {"booking_id": "42", "mentor_id": "3", "mentee_id": "7"}
    with pytest.raises(GatewayInvalidRequestError):
        fake.expire_checkout_session(session.id, idempotency_key="e")
    fake.create_refund(payment_intent_id=pi["id"], amount=Money(2000, "GBP"), idempotency_key="r1")
    assert fake.charge(pi["latest_charge"])["amount_refunded"] == 2000
    with pytest.raises(GatewayInvalidRequestError):
        fake.create_refund(
            payment_intent_id=pi["id"], amount=Money(3001, "GBP"), idempotency_key="r2"
        )
    transfer = fake.create_transfer(
        amount=Money(100, "GBP"), destination="acct_1", idempotency_key="t"
    )
    fake.create_transfer_reversal(transfer.id, idempotency_key="v")
    assert fake.transfer(transfer.id)["reversed"] is True
    with pytest.raises(GatewayInvalidRequestError) as caught:
        fake.retrieve_transfer("tr_unknown")
    assert is_missing_resource(caught.value)
