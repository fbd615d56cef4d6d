"""Stripe's address is configurable, and errors are read by HTTP status first: any body (HTML
from a proxy, plain text, nothing) maps to the right class and outcome."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import responses
from sqlalchemy import Engine

from mentorpay.app import MentorPay
from mentorpay.config import MentorpayConfig
from mentorpay.errors import (
    ConfigurationError,
    GatewayConnectionError,
    GatewayError,
    GatewayInvalidRequestError,
    GatewayRateLimitError,
    IdempotencyConflictError,
)
from mentorpay.gateway import StripeGateway, outcome_unknown
from mentorpay.money import Money
from mentorpay.testing import InMemoryBookings
from tests.test_checkout import API, stripe_setup

MOCK = "http://127.0.0.1:12111"
HTML_403 = "<html><body><h1>403 Forbidden</h1>Request blocked by egress proxy</body></html>"


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """Every HTTP request must be matched; nothing reaches the network."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def test_api_base_from_config_reaches_that_address(http: responses.RequestsMock) -> None:
    """config.stripe_api_base (e.g. stripe-mock) is where StripeGateway.from_config calls."""
    config = MentorpayConfig(
        webhook_secrets=["whsec_x"], stripe_secret_key="sk_test_1", stripe_api_base=MOCK
    )
    http.get(f"{MOCK}/v1/payment_intents/pi_1", json={"id": "pi_1", "object": "payment_intent"})
    intent = StripeGateway.from_config(config, max_network_retries=0).retrieve_payment_intent(
        "pi_1"
    )
    assert intent.id == "pi_1"


def test_api_base_from_env_is_used_by_the_facade(
    http: responses.RequestsMock, tmp_path: Path
) -> None:
    """STRIPE_API_BASE is read by from_env, and MentorPay's own gateway uses it."""
    env = {
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
        "STRIPE_SECRET_KEY": "sk_test_1",
        "STRIPE_API_BASE": MOCK + "/",
        "MENTORPAY_DATABASE_URL": f"sqlite:///{tmp_path / 'mp.db'}",
    }
    mp = MentorPay.from_env(bookings=InMemoryBookings(), environ=env)
    try:
        assert mp.config.stripe_api_base == MOCK
        http.get(f"{MOCK}/v1/charges/ch_1", json={"id": "ch_1", "object": "charge"})
        assert mp.gateway.retrieve_charge("ch_1").id == "ch_1"
    finally:
        mp.engine.dispose()


@pytest.mark.parametrize("bad", ["127.0.0.1:12111", "ftp://stripe.test", "https://", " "])
def test_api_base_must_be_an_http_url(bad: str) -> None:
    """A base that is not an http(s) URL is a ConfigurationError at construction."""
    with pytest.raises(ConfigurationError, match="stripe_api_base"):
        MentorpayConfig(webhook_secrets=["whsec_x"], stripe_api_base=bad)


STATUS_CASES = [
    pytest.param(400, "Bad Request", GatewayInvalidRequestError, False, id="400-text"),
    pytest.param(401, "<html>401</html>", GatewayError, False, id="401-html"),
    pytest.param(402, "", GatewayError, False, id="402-empty"),
    pytest.param(403, HTML_403, GatewayInvalidRequestError, False, id="403-proxy-html"),
    pytest.param(404, "404 page not found", GatewayInvalidRequestError, False, id="404-text"),
    pytest.param(409, "<html>conflict</html>", IdempotencyConflictError, False, id="409-html"),
    pytest.param(422, '{"unexpected": true}', GatewayInvalidRequestError, False, id="422-json"),
    pytest.param(429, "Too Many Requests", GatewayRateLimitError, False, id="429-text"),
    pytest.param(500, "<html>oops</html>", GatewayConnectionError, True, id="500-html"),
    pytest.param(502, "Bad Gateway", GatewayConnectionError, True, id="502-text"),
    pytest.param(503, "", GatewayConnectionError, True, id="503-empty"),
]


@pytest.mark.parametrize(("status", "body", "expected", "unknown"), STATUS_CASES)
def test_non_json_error_bodies_are_mapped_by_status(
    http: responses.RequestsMock,
    *,
    status: int,
    body: str,
    expected: type[GatewayError],
    unknown: bool,
) -> None:
    """Any 4xx is a known-outcome refusal (409, 429 typed), any 5xx unknown, whatever the body."""
    gateway = StripeGateway("sk_test_1", max_network_retries=0)
    http.post(f"{API}/v1/refunds", status=status, body=body, content_type="text/html")
    with pytest.raises(GatewayError) as caught:
        gateway.create_refund(
            payment_intent_id="pi_1", amount=Money(100, "GBP"), idempotency_key="k"
        )
    error = caught.value
    assert isinstance(error, expected)
    assert outcome_unknown(error) is unknown
    assert error.details["stripe_status"] == status
    assert ("may or may not" in error.message) is unknown
    assert len(error.message) < 600  # a proxy's whole page is not pasted into the message


def test_no_answer_at_all_is_an_unknown_outcome(http: responses.RequestsMock) -> None:
    """A dropped connection (no status) stays an unknown outcome."""
    gateway = StripeGateway("sk_test_1", max_network_retries=0)
    http.post(f"{API}/v1/transfers", body=requests.ConnectionError("reset"))
    with pytest.raises(GatewayConnectionError) as caught:
        gateway.create_transfer(amount=Money(1, "USD"), destination="acct_1", idempotency_key="k")
    assert outcome_unknown(caught.value)


def test_checkout_does_not_replay_after_a_proxy_refusal(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """A proxy's HTML 403 leaves no claim to replay; the next attempt is a fresh request."""
    setup = stripe_setup(engine)
    http.post(f"{API}/v1/checkout/sessions", status=403, body=HTML_403, content_type="text/html")
    with pytest.raises(GatewayInvalidRequestError, match="HTTP 403"):
        setup.create()
    assert setup.rows() == []
    http.post(
        f"{API}/v1/checkout/sessions",
        json={
            "id": "cs_test_2",
            "object": "checkout.session",
            "url": "https://checkout.stripe.com/c/pay/cs_test_2",
            "status": "open",
            "expires_at": int(setup.clock.now.timestamp()) + 3600,
        },
    )
    assert setup.create().session_id == "cs_test_2"
    (row,) = setup.rows()
    assert row.status == "open"
