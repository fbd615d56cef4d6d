"""The Stripe Connect requests of StripeGateway, intercepted by ``responses``: exact bodies,
idempotency keys and paths of account creation, account links and login links; and their keys."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import responses

from mentorpay.errors import GatewayConnectionError
from mentorpay.gateway import (
    PaymentGateway,
    StripeGateway,
    account_idempotency_key,
    account_link_idempotency_key,
    login_link_idempotency_key,
)
from mentorpay.testing import FakeGateway
from tests.test_gateway import form, query

API = "https://api.stripe.com"


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """Every HTTP request must be matched; nothing reaches the network."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def gateway() -> StripeGateway:
    """A StripeGateway with SDK retries off, so each test sees exactly its requests."""
    return StripeGateway("sk_test_123", max_network_retries=0)


def account_json(**extra: object) -> dict[str, object]:
    """An Express account as Stripe returns it right after creation."""
    return {
        "id": "acct_1Mentor3",
        "object": "account",
        "type": "express",
        "charges_enabled": False,
        "payouts_enabled": False,
        "details_submitted": False,
        "metadata": {"mentor_id": "3"},
        "requirements": {
            "currently_due": ["business_type", "external_account"],
            "past_due": [],
            "disabled_reason": "requirements.past_due",
        },
        "created": 1764547200,
        **extra,
    }


def test_keys_are_deterministic_and_readable() -> None:
    """The account key names the mentor only; link keys name the account and the second."""
    assert account_idempotency_key("3") == "mentorpay:account:3"
    assert account_idempotency_key("3") == account_idempotency_key("3")
    long_key = account_idempotency_key("m" * 300)
    assert len(long_key) < 255 and long_key.startswith("mentorpay:account:sha256-")
    assert account_link_idempotency_key("acct_1", 1764547200) == (
        "mentorpay:account-link:acct_1:1764547200"
    )
    assert login_link_idempotency_key("acct_1", 7) == "mentorpay:login-link:acct_1:7"


def test_create_account_body_and_key(http: responses.RequestsMock, gateway: StripeGateway) -> None:
    """Account creation POSTs type=express and metadata[mentor_id] under the mentor's key."""
    http.post(f"{API}/v1/accounts", json=account_json())
    account = gateway.create_account(mentor_id="3", idempotency_key=account_idempotency_key("3"))
    request = http.calls[0].request
    assert form(request) == {"type": "express", "metadata[mentor_id]": "3"}
    assert request.headers["Idempotency-Key"] == "mentorpay:account:3"
    assert "Stripe-Account" not in request.headers
    assert account.id == "acct_1Mentor3"
    assert (account.charges_enabled, account.payouts_enabled) == (False, False)
    assert account.currently_due == ("business_type", "external_account")
    assert account.disabled_reason == "requirements.past_due"


def test_create_account_with_country(http: responses.RequestsMock, gateway: StripeGateway) -> None:
    """A country, when given, is sent as is."""
    http.post(f"{API}/v1/accounts", json=account_json(country="FR"))
    gateway.create_account(mentor_id="3", idempotency_key="k", country="FR")
    assert form(http.calls[0].request) == {
        "type": "express",
        "metadata[mentor_id]": "3",
        "country": "FR",
    }


def test_account_link_body_and_key(http: responses.RequestsMock, gateway: StripeGateway) -> None:
    """An onboarding link POSTs account, refresh_url, return_url, type under its own key."""
    http.post(
        f"{API}/v1/account_links",
        json={
            "object": "account_link",
            "created": 1764547200,
            "expires_at": 1764547500,
            "url": "https://connect.stripe.com/setup/e/acct_1Mentor3/abc",
        },
    )
    key = account_link_idempotency_key("acct_1Mentor3", 1764547200)
    link = gateway.create_account_link(
        "acct_1Mentor3",
        refresh_url="https://app.test/accounts/refresh",
        return_url="https://app.test/accounts/return",
        idempotency_key=key,
    )
    request = http.calls[0].request
    assert form(request) == {
        "account": "acct_1Mentor3",
        "refresh_url": "https://app.test/accounts/refresh",
        "return_url": "https://app.test/accounts/return",
        "type": "account_onboarding",
    }
    assert request.headers["Idempotency-Key"] == "mentorpay:account-link:acct_1Mentor3:1764547200"
    assert link.url == "https://connect.stripe.com/setup/e/acct_1Mentor3/abc"
    assert link.expires_at == datetime(2025, 12, 1, 0, 5, tzinfo=UTC)


def test_login_link_body_and_key(http: responses.RequestsMock, gateway: StripeGateway) -> None:
    """A dashboard link is an empty POST to /v1/accounts/{id}/login_links under its key."""
    http.post(
        f"{API}/v1/accounts/acct_1Mentor3/login_links",
        json={
            "object": "login_link",
            "created": 1764547200,
            "url": "https://connect.stripe.com/express/acct_1Mentor3/xyz",
        },
    )
    key = login_link_idempotency_key("acct_1Mentor3", 1764547200)
    link = gateway.create_login_link("acct_1Mentor3", idempotency_key=key)
    request = http.calls[0].request
    assert form(request) == {}
    assert request.headers["Idempotency-Key"] == "mentorpay:login-link:acct_1Mentor3:1764547200"
    assert link.url.endswith("/xyz") and link.expires_at is None


def test_retrieve_account_is_a_get_without_key(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """Reading an account is a GET with no idempotency key."""
    http.get(f"{API}/v1/accounts/acct_1Mentor3", json=account_json(charges_enabled=True))
    account = gateway.retrieve_account("acct_1Mentor3")
    assert query(http.calls[0].request) == {}
    assert "Idempotency-Key" not in http.calls[0].request.headers
    assert account.charges_enabled is True and account.payouts_enabled is False


def test_a_lost_answer_is_retried_with_the_same_key(http: responses.RequestsMock) -> None:
    """The SDK's own retry after a 500 resends the same body under the same key."""
    gateway = StripeGateway("sk_test_123", max_network_retries=1)
    http.post(f"{API}/v1/accounts", status=500, json={"error": {"type": "api_error"}})
    http.post(f"{API}/v1/accounts", json=account_json())
    gateway.create_account(mentor_id="3", idempotency_key="mentorpay:account:3")
    keys = [c.request.headers["Idempotency-Key"] for c in http.calls]
    assert keys == ["mentorpay:account:3", "mentorpay:account:3"]
    assert form(http.calls[0].request) == form(http.calls[1].request)


def test_a_lost_answer_surfaces_as_outcome_unknown(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """Without SDK retries a 500 is a GatewayConnectionError (the caller retries the key)."""
    http.post(f"{API}/v1/accounts", status=500, json={"error": {"type": "api_error"}})
    with pytest.raises(GatewayConnectionError):
        gateway.create_account(mentor_id="3", idempotency_key="mentorpay:account:3")


def test_both_gateways_implement_the_connect_protocol() -> None:
    """StripeGateway and FakeGateway both satisfy the grown PaymentGateway protocol."""
    assert isinstance(StripeGateway("sk_test_1"), PaymentGateway)
    fake = FakeGateway()
    assert isinstance(fake, PaymentGateway)
    first = fake.create_account(mentor_id="3", idempotency_key="k")
    assert fake.create_account(mentor_id="3", idempotency_key="k") == first
    assert len(fake.accounts) == 1
