"""The gateway's plan calls: StripeGateway's exact requests (intercepted by ``responses``) for
plan checkout, subscription cancel and plan change, billing-portal sessions and the refusal of a
canceled subscription; the FakeGateway's Stripe-like behaviour for the same calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses

from mentorpay.errors import (
    GatewayInvalidRequestError,
    IdempotencyConflictError,
    InvalidRequestError,
)
from mentorpay.gateway import (
    PlanCheckoutParams,
    StripeGateway,
    is_missing_resource,
    plan_cancel_idempotency_key,
    plan_change_idempotency_key,
    plan_checkout_idempotency_key,
    portal_idempotency_key,
)
from mentorpay.gateway._plans import is_subscription_canceled
from mentorpay.money import Money
from mentorpay.testing import FakeGateway
from tests.fixtures.stripe_http import form

API = "https://api.stripe.com"
EXPIRES = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
PERIOD_START = 1_772_366_400  # 2026-03-01T12:00:00Z
PERIOD_END = 1_775_044_800  # 2026-04-01T12:00:00Z


@pytest.fixture
def gateway() -> StripeGateway:
    """A StripeGateway with SDK retries off, so each test sees exactly its requests."""
    return StripeGateway("sk_test_123", max_network_retries=0)


def plan(**overrides: Any) -> PlanCheckoutParams:
    """Plan purchase p-9: mentee 7 buys mentor 3's monthly plan at 120.00 GBP."""
    values: dict[str, Any] = {
        "purchase_id": "p-9",
        "plan_id": "plan-5",
        "kind": "subscription",
        "mentor_id": "3",
        "mentee_id": "7",
        "amount": Money(12000, "GBP"),
        "line_item_name": "Monthly mentoring: 4 sessions",
        "success_url": "https://app.test/plans/ok",
        "cancel_url": "https://app.test/plans/cancel",
        "expires_at": EXPIRES,
    }
    values.update(overrides)
    return PlanCheckoutParams(**values)


def session_json(**extra: Any) -> dict[str, Any]:
    """A checkout.session object as Stripe returns it for a plan."""
    return {
        "id": "cs_test_plan",
        "object": "checkout.session",
        "mode": "subscription",
        "url": "https://checkout.stripe.com/c/pay/cs_test_plan",
        "status": "open",
        "payment_status": "unpaid",
        "payment_intent": None,
        "subscription": None,
        "customer": None,
        "amount_total": 12000,
        "currency": "gbp",
        "expires_at": int(EXPIRES.timestamp()),
        "created": int(EXPIRES.timestamp()) - 3600,
        "metadata": plan().metadata,
        **extra,
    }


def subscription_json(**extra: Any) -> dict[str, Any]:
    """A subscription object in the pinned API version's shape (period on the item)."""
    return {
        "id": "sub_1",
        "object": "subscription",
        "status": "active",
        "customer": "cus_1",
        "cancel_at_period_end": False,
        "cancel_at": None,
        "canceled_at": None,
        "ended_at": None,
        "created": PERIOD_START,
        "metadata": plan().metadata,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_1",
                    "object": "subscription_item",
                    "price": {"id": "price_1", "object": "price", "unit_amount": 12000},
                    "current_period_start": PERIOD_START,
                    "current_period_end": PERIOD_END,
                }
            ],
        },
        **extra,
    }


def old_subscription_json(**extra: Any) -> dict[str, Any]:
    """The same subscription in the 2024-06-20 shape (period on the subscription)."""
    sub = subscription_json(current_period_start=PERIOD_START, current_period_end=PERIOD_END)
    for item in sub["items"]["data"]:
        del item["current_period_start"], item["current_period_end"]
    return {**sub, **extra}


def error_body(type_: str, message: str, **extra: Any) -> dict[str, Any]:
    """A Stripe error response body."""
    return {"error": {"type": type_, "message": message, **extra}}


PLAN_METADATA = {
    "metadata[plan_purchase_id]": "p-9",
    "metadata[plan_id]": "plan-5",
    "metadata[mentor_id]": "3",
    "metadata[mentee_id]": "7",
}
COMMON = {
    "line_items[0][quantity]": "1",
    "success_url": "https://app.test/plans/ok",
    "cancel_url": "https://app.test/plans/cancel",
    "client_reference_id": "7",
    "expires_at": str(int(EXPIRES.timestamp())),
    **PLAN_METADATA,
}


def sub_meta(prefix: str, metadata: dict[str, str]) -> dict[str, str]:
    """The plan metadata form keys nested under ``prefix[metadata]``."""
    return {f"{prefix}[metadata]{k.removeprefix('metadata')}": v for k, v in metadata.items()}


# -- StripeGateway: checkout ---------------------------------------------------------------------


def test_subscription_session_with_inline_price(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """A subscription plan is a subscription-mode session with a recurring inline price."""
    http.post(f"{API}/v1/checkout/sessions", json=session_json())
    key = plan_checkout_idempotency_key("p-9", 0)
    session = gateway.create_plan_checkout_session(plan(), idempotency_key=key)
    request = http.calls[0].request
    assert form(request) == {
        "mode": "subscription",
        "line_items[0][price_data][currency]": "gbp",
        "line_items[0][price_data][unit_amount]": "12000",
        "line_items[0][price_data][product_data][name]": "Monthly mentoring: 4 sessions",
        "line_items[0][price_data][recurring][interval]": "month",
        "line_items[0][price_data][recurring][interval_count]": "1",
        **COMMON,
        **sub_meta("subscription_data", PLAN_METADATA),
    }
    assert request.headers["Idempotency-Key"] == "mentorpay:plan-checkout:p-9:0"
    assert "Stripe-Account" not in request.headers
    assert session.id == "cs_test_plan"
    assert session.mode == "subscription"
    assert session.url == "https://checkout.stripe.com/c/pay/cs_test_plan"
    assert session.metadata["plan_purchase_id"] == "p-9"


def test_subscription_session_with_stripe_price_customer_and_destination(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """A Stripe Price replaces price_data; a customer is reused; Connect adds the percent fee."""
    http.post(f"{API}/v1/checkout/sessions", json=session_json(customer="cus_1"))
    params = plan(
        stripe_price_id="price_monthly",
        customer_id="cus_1",
        destination="acct_mentor3",
        application_fee_percent="12.50",
        interval="week",
        interval_count=2,
    )
    session = gateway.create_plan_checkout_session(params, idempotency_key="k-sub")
    metadata = {**PLAN_METADATA, "metadata[mentor_account]": "acct_mentor3"}
    assert form(http.calls[0].request) == {
        "mode": "subscription",
        "line_items[0][price]": "price_monthly",
        **COMMON,
        "metadata[mentor_account]": "acct_mentor3",
        "customer": "cus_1",
        **sub_meta("subscription_data", metadata),
        "subscription_data[transfer_data][destination]": "acct_mentor3",
        "subscription_data[application_fee_percent]": "12.50",
    }
    assert http.calls[0].request.headers["Idempotency-Key"] == "k-sub"
    assert session.customer_id == "cus_1"


def test_package_session_is_payment_mode(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """A package is a payment-mode session, its metadata on the payment intent, no recurring."""
    http.post(f"{API}/v1/checkout/sessions", json=session_json(mode="payment"))
    session = gateway.create_plan_checkout_session(
        plan(kind="package", amount=Money(40000, "GBP"), line_item_name="10 sessions"),
        idempotency_key="k-pkg",
    )
    assert form(http.calls[0].request) == {
        "mode": "payment",
        "line_items[0][price_data][currency]": "gbp",
        "line_items[0][price_data][unit_amount]": "40000",
        "line_items[0][price_data][product_data][name]": "10 sessions",
        **COMMON,
        **sub_meta("payment_intent_data", PLAN_METADATA),
    }
    assert session.mode == "payment"


def test_package_session_with_destination_takes_exact_fee(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """A Connect package carries the exact application_fee_amount and the destination."""
    http.post(f"{API}/v1/checkout/sessions", json=session_json(mode="payment"))
    params = plan(
        kind="package",
        amount=Money(40000, "EUR"),
        line_item_name="10 sessions",
        destination="acct_mentor3",
        application_fee=Money(4000, "EUR"),
    )
    gateway.create_plan_checkout_session(params, idempotency_key="k-pkg")
    metadata = {**PLAN_METADATA, "metadata[mentor_account]": "acct_mentor3"}
    assert form(http.calls[0].request) == {
        "mode": "payment",
        "line_items[0][price_data][currency]": "eur",
        "line_items[0][price_data][unit_amount]": "40000",
        "line_items[0][price_data][product_data][name]": "10 sessions",
        **COMMON,
        "metadata[mentor_account]": "acct_mentor3",
        **sub_meta("payment_intent_data", metadata),
        "payment_intent_data[transfer_data][destination]": "acct_mentor3",
        "payment_intent_data[application_fee_amount]": "4000",
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {"application_fee": Money(100, "GBP")},
        {"kind": "package", "application_fee_percent": "10"},
        {"application_fee_percent": "10.005"},
        {"application_fee_percent": "101"},
        {"application_fee_percent": "-1"},
        {"interval_count": 0},
        {"expires_at": datetime(2026, 3, 1, 13, 0)},
    ],
)
def test_plan_commission_in_the_wrong_form_is_refused_before_stripe(
    http: responses.RequestsMock, gateway: StripeGateway, overrides: dict[str, Any]
) -> None:
    """A fee Stripe would drop or misread, or a naive expiry, never reaches Stripe."""
    with pytest.raises(InvalidRequestError):
        gateway.create_plan_checkout_session(plan(**overrides), idempotency_key="k")
    assert len(http.calls) == 0


# -- StripeGateway: subscriptions ----------------------------------------------------------------


def test_cancel_at_period_end_posts_the_flag(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """Cancelling at period end is a POST of cancel_at_period_end=true with its key."""
    http.post(
        f"{API}/v1/subscriptions/sub_1",
        json=subscription_json(cancel_at_period_end=True, cancel_at=PERIOD_END),
    )
    key = plan_cancel_idempotency_key("sub_1", at_period_end=True)
    sub = gateway.cancel_subscription("sub_1", at_period_end=True, idempotency_key=key)
    request = http.calls[0].request
    assert request.method == "POST"
    assert form(request) == {"cancel_at_period_end": "true"}
    assert request.headers["Idempotency-Key"] == "mentorpay:plan-cancel:sub_1:period-end"
    assert sub.cancel_at_period_end is True
    assert sub.status == "active"
    assert sub.item_id == "si_1"


def test_cancel_now_deletes_with_the_key(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """Cancelling now is a DELETE without a body; the SDK sends the key (Stripe ignores it)."""
    http.delete(
        f"{API}/v1/subscriptions/sub_1",
        json=old_subscription_json(
            status="canceled", canceled_at=PERIOD_START + 60, ended_at=PERIOD_START + 60
        ),
    )
    key = plan_cancel_idempotency_key("sub_1", at_period_end=False)
    sub = gateway.cancel_subscription("sub_1", at_period_end=False, idempotency_key=key)
    request = http.calls[0].request
    assert request.method == "DELETE"
    assert request.url == f"{API}/v1/subscriptions/sub_1"
    assert not request.body
    assert request.headers["Idempotency-Key"] == "mentorpay:plan-cancel:sub_1:now"
    assert sub.status == "canceled"
    assert sub.canceled_at == datetime.fromtimestamp(PERIOD_START + 60, UTC)


def test_cancel_of_a_canceled_subscription_says_it_is_canceled(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """Stripe's 404 for a canceled subscription's DELETE is told apart by one read."""
    http.delete(
        f"{API}/v1/subscriptions/sub_1",
        status=404,
        json=error_body(
            "invalid_request_error", "No such subscription: 'sub_1'", code="resource_missing"
        ),
    )
    http.get(f"{API}/v1/subscriptions/sub_1", json=subscription_json(status="canceled"))
    with pytest.raises(GatewayInvalidRequestError) as caught:
        gateway.cancel_subscription("sub_1", at_period_end=False, idempotency_key="k")
    assert is_subscription_canceled(caught.value)
    assert caught.value.details["stripe_code"] == "resource_missing"
    assert caught.value.details["stripe_status"] == 404
    assert "already canceled" in str(caught.value)
    assert "Idempotency-Key" not in http.calls[1].request.headers


def test_update_of_a_canceled_subscription_says_it_is_canceled(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """Stripe's 400 for updating a canceled subscription is told apart the same way."""
    http.post(
        f"{API}/v1/subscriptions/sub_1",
        status=400,
        json=error_body(
            "invalid_request_error",
            "A canceled subscription can only update its cancellation_details and metadata.",
        ),
    )
    http.get(f"{API}/v1/subscriptions/sub_1", json=old_subscription_json(status="canceled"))
    with pytest.raises(GatewayInvalidRequestError) as caught:
        gateway.cancel_subscription("sub_1", at_period_end=True, idempotency_key="k")
    assert is_subscription_canceled(caught.value)
    assert caught.value.details["stripe_status"] == 400


def test_cancel_of_a_missing_subscription_stays_missing(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """A subscription that does not exist is resource_missing, not 'already canceled'."""
    missing = error_body(
        "invalid_request_error", "No such subscription: 'sub_x'", code="resource_missing"
    )
    http.delete(f"{API}/v1/subscriptions/sub_x", status=404, json=missing)
    http.get(f"{API}/v1/subscriptions/sub_x", status=404, json=missing)
    with pytest.raises(GatewayInvalidRequestError) as caught:
        gateway.cancel_subscription("sub_x", at_period_end=False, idempotency_key="k")
    assert is_missing_resource(caught.value)
    assert not is_subscription_canceled(caught.value)


def test_refusal_of_an_active_subscription_is_passed_on(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """A 400 on a live subscription is Stripe's refusal as it came, after the one read."""
    http.post(
        f"{API}/v1/subscriptions/sub_1",
        status=400,
        json=error_body("invalid_request_error", "Invalid boolean", param="cancel_at_period_end"),
    )
    http.get(f"{API}/v1/subscriptions/sub_1", json=subscription_json())
    with pytest.raises(GatewayInvalidRequestError) as caught:
        gateway.cancel_subscription("sub_1", at_period_end=True, idempotency_key="k")
    assert not is_subscription_canceled(caught.value)
    assert caught.value.details["param"] == "cancel_at_period_end"


def test_plan_change_creates_the_price_then_swaps_the_item(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """An inline plan change creates its Price (keyed) and swaps the item, without proration."""
    http.post(f"{API}/v1/prices", json={"id": "price_new", "object": "price"})
    http.post(f"{API}/v1/subscriptions/sub_1", json=subscription_json())
    params = plan(plan_id="plan-6", amount=Money(15000, "GBP"), line_item_name="6 sessions")
    key = plan_change_idempotency_key("sub_1", "plan-6", 1)
    sub = gateway.change_subscription_plan(
        "sub_1", item_id="si_1", params=params, idempotency_key=key
    )
    price, update = (c.request for c in http.calls)
    assert form(price) == {
        "currency": "gbp",
        "unit_amount": "15000",
        "recurring[interval]": "month",
        "recurring[interval_count]": "1",
        "product_data[name]": "6 sessions",
        "metadata[plan_id]": "plan-6",
    }
    assert price.headers["Idempotency-Key"] == "mentorpay:plan-change:sub_1:1:plan-6:price"
    assert form(update) == {
        "items[0][id]": "si_1",
        "items[0][price]": "price_new",
        "proration_behavior": "none",
        "metadata[plan_purchase_id]": "p-9",
        "metadata[plan_id]": "plan-6",
        "metadata[mentor_id]": "3",
        "metadata[mentee_id]": "7",
        "metadata[mentor_account]": "",
    }
    assert update.headers["Idempotency-Key"] == "mentorpay:plan-change:sub_1:1:plan-6"
    assert sub.id == "sub_1"


def test_plan_change_to_a_stripe_price_with_connect(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """A Stripe Price is used as it is; the new plan's percent and destination are sent."""
    http.post(f"{API}/v1/subscriptions/sub_1", json=subscription_json())
    params = plan(
        stripe_price_id="price_gold", destination="acct_mentor3", application_fee_percent="15"
    )
    gateway.change_subscription_plan("sub_1", item_id="si_1", params=params, idempotency_key="k")
    assert form(http.calls[0].request) == {
        "items[0][id]": "si_1",
        "items[0][price]": "price_gold",
        "proration_behavior": "none",
        **PLAN_METADATA,
        "metadata[mentor_account]": "acct_mentor3",
        "application_fee_percent": "15",
        "transfer_data[destination]": "acct_mentor3",
    }


def test_plan_change_to_a_package_is_refused(gateway: StripeGateway) -> None:
    """A subscription item cannot take a one-off package price."""
    with pytest.raises(InvalidRequestError):
        gateway.change_subscription_plan(
            "sub_1", item_id="si_1", params=plan(kind="package"), idempotency_key="k"
        )


def test_portal_session_returns_its_url(
    http: responses.RequestsMock, gateway: StripeGateway
) -> None:
    """A portal session is a keyed POST of customer and return_url; its url comes back."""
    url = "https://billing.stripe.com/p/session/test_abc"
    http.post(
        f"{API}/v1/billing_portal/sessions",
        json={"id": "bps_1", "object": "billing_portal.session", "url": url},
    )
    key = portal_idempotency_key("cus_1", 1_772_366_400)
    got = gateway.create_billing_portal_session(
        "cus_1", return_url="https://app.test/account", idempotency_key=key
    )
    request = http.calls[0].request
    assert form(request) == {"customer": "cus_1", "return_url": "https://app.test/account"}
    assert request.headers["Idempotency-Key"] == "mentorpay:portal:cus_1:1772366400"
    assert got == url


# -- idempotency keys ----------------------------------------------------------------------------


def test_plan_keys_are_deterministic_and_distinct() -> None:
    """Each plan key is a function of its inputs, and different inputs give different keys."""
    keys = [
        plan_checkout_idempotency_key("p-9", 0),
        plan_checkout_idempotency_key("p-9", 1),
        plan_cancel_idempotency_key("sub_1", at_period_end=True),
        plan_cancel_idempotency_key("sub_1", at_period_end=False),
        plan_change_idempotency_key("sub_1", "plan-6", 1),
        plan_change_idempotency_key("sub_1", "plan-6", 2),
        plan_change_idempotency_key("sub_1", "plan-7", 1),
        portal_idempotency_key("cus_1", 100),
        portal_idempotency_key("cus_1", 101),
    ]
    assert len(set(keys)) == len(keys)
    assert plan_checkout_idempotency_key("p-9", 0) == keys[0]
    assert plan_change_idempotency_key("sub_1", "plan-6", 1) == keys[4]


def test_plan_keys_stay_within_stripes_limit_with_long_ids() -> None:
    """255-character ids still give keys Stripe accepts, with room for a prefix and ':price'."""
    long = "x" * 255
    keys = [
        plan_checkout_idempotency_key(long, 3),
        plan_cancel_idempotency_key("sub_" + long, at_period_end=True),
        plan_change_idempotency_key("sub_" + long, long, 2),
        portal_idempotency_key("cus_" + long, 1_772_366_400),
    ]
    assert all(len(k) <= 200 for k in keys)
    assert len(set(keys)) == len(keys)


# -- FakeGateway ---------------------------------------------------------------------------------


def fake_plan(**overrides: Any) -> PlanCheckoutParams:
    """Plan parameters valid for the fake's clock (expiry one hour ahead)."""
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    return plan(**{"expires_at": expires, **overrides})


def test_fake_plan_session_replays_and_refuses_other_params() -> None:
    """The fake's plan session is open, in the offline URL form; keys replay or conflict."""
    fake = FakeGateway(checkout_url_template="http://127.0.0.1:8000/fake-checkout/{session_id}")
    p = fake_plan()
    first = fake.create_plan_checkout_session(p, idempotency_key="k1")
    assert fake.create_plan_checkout_session(p, idempotency_key="k1") == first
    assert first.url == f"http://127.0.0.1:8000/fake-checkout/{first.id}"
    assert (first.mode, first.status, first.metadata) == ("subscription", "open", p.metadata)
    assert first.raw["client_reference_id"] == "7"
    assert len(fake.sessions) == 1
    with pytest.raises(IdempotencyConflictError):
        fake.create_plan_checkout_session(fake_plan(plan_id="other"), idempotency_key="k1")
    calls = fake.calls_to("create_plan_checkout_session")
    assert [c.idempotency_key for c in calls] == ["k1"] * 3
    assert calls[0].args == {"params": p}


def test_fake_plan_session_validates_like_stripe() -> None:
    """The fake refuses what Stripe (or the gateway) refuses, and stores nothing under the key."""
    fake = FakeGateway()
    for bad in (
        fake_plan(amount=Money(0, "GBP")),
        fake_plan(expires_at=datetime.now(UTC) + timedelta(hours=30)),
        fake_plan(kind="package", application_fee=Money(50000, "GBP")),
        fake_plan(destination="mentor3"),
        fake_plan(application_fee=Money(100, "GBP")),
    ):
        with pytest.raises((GatewayInvalidRequestError, InvalidRequestError)):
            fake.create_plan_checkout_session(bad, idempotency_key="k")
    assert fake.sessions == []
    assert fake.create_plan_checkout_session(fake_plan(), idempotency_key="k").status == "open"


def test_fake_pays_a_package_session_but_not_a_subscription_one() -> None:
    """A package session pays into a plan-tagged intent; a subscription one is refused."""
    fake = FakeGateway()
    package = fake_plan(
        kind="package",
        amount=Money(40000, "GBP"),
        destination="acct_m3",
        application_fee=Money(4000, "GBP"),
    )
    session = fake.create_plan_checkout_session(package, idempotency_key="k-pkg")
    assert session.mode == "payment"
    done = fake.complete_checkout_session(session.id)
    pi = fake.payment_intent(done["payment_intent"])
    assert (pi["amount"], pi["application_fee_amount"]) == (40000, 4000)
    assert pi["metadata"] == package.metadata
    sub_session = fake.create_plan_checkout_session(fake_plan(), idempotency_key="k-sub")
    with pytest.raises(GatewayInvalidRequestError, match="sells a plan"):
        fake.complete_checkout_session(sub_session.id)


def test_fake_subscription_cancel_at_period_end_then_now() -> None:
    """Cancel at period end flags it (keys replay); cancel now ends it; a third is refused."""
    fake = FakeGateway()
    stored = fake.add_subscription(
        "sub_1",
        customer_id="cus_1",
        item_id="si_1",
        metadata=plan().metadata,
        amount=Money(12000, "GBP"),
    )
    assert stored["items"]["data"][0]["price"]["unit_amount"] == 12000
    assert fake.retrieve_subscription("sub_1").item_id == "si_1"
    later = fake.cancel_subscription("sub_1", at_period_end=True, idempotency_key="c1")
    assert later.cancel_at_period_end is True and later.status == "active"
    assert (
        fake.subscription("sub_1")["cancel_at"] == stored["items"]["data"][0]["current_period_end"]
    )
    assert fake.cancel_subscription("sub_1", at_period_end=True, idempotency_key="c1") == later
    with pytest.raises(IdempotencyConflictError):
        fake.cancel_subscription("sub_1", at_period_end=False, idempotency_key="c1")
    now = fake.cancel_subscription("sub_1", at_period_end=False, idempotency_key="c2")
    assert now.status == "canceled"
    assert now.canceled_at is not None
    assert fake.subscription("sub_1")["ended_at"] is not None
    with pytest.raises(GatewayInvalidRequestError) as caught:
        fake.cancel_subscription("sub_1", at_period_end=False, idempotency_key="c3")
    assert is_subscription_canceled(caught.value)
    assert caught.value.details["stripe_status"] == 404
    with pytest.raises(GatewayInvalidRequestError) as caught:
        fake.cancel_subscription("sub_1", at_period_end=True, idempotency_key="c4")
    assert is_subscription_canceled(caught.value)
    assert caught.value.details["stripe_status"] == 400


def test_fake_refuses_unknown_subscriptions_and_items() -> None:
    """Unknown subscription or item ids are resource_missing, as from Stripe."""
    fake = FakeGateway()
    fake.add_subscription("sub_1", customer_id="cus_1", item_id="si_1", amount=Money(1, "GBP"))
    with pytest.raises(GatewayInvalidRequestError) as caught:
        fake.cancel_subscription("sub_x", at_period_end=False, idempotency_key="k1")
    assert is_missing_resource(caught.value)
    assert not is_subscription_canceled(caught.value)
    with pytest.raises(GatewayInvalidRequestError) as caught:
        fake.change_subscription_plan(
            "sub_1", item_id="si_x", params=fake_plan(), idempotency_key="k2"
        )
    assert is_missing_resource(caught.value)


def test_fake_plan_change_swaps_price_and_metadata() -> None:
    """A plan change puts the new price, metadata and commission on the subscription."""
    fake = FakeGateway()
    fake.add_subscription(
        "sub_1",
        customer_id="cus_1",
        item_id="si_1",
        metadata={**plan().metadata, "mentor_account": "acct_old", "host_note": "kept"},
        amount=Money(12000, "GBP"),
    )
    params = fake_plan(plan_id="plan-6", amount=Money(15000, "GBP"), application_fee_percent="15")
    sub = fake.change_subscription_plan(
        "sub_1", item_id="si_1", params=params, idempotency_key="ch1"
    )
    stored = fake.subscription("sub_1")
    price = stored["items"]["data"][0]["price"]
    assert (price["unit_amount"], price["recurring"]["interval"]) == (15000, "month")
    assert stored["metadata"] == {**params.metadata, "host_note": "kept"}
    assert stored["application_fee_percent"] == 15.0
    assert sub.item_id == "si_1"
    again = fake.change_subscription_plan(
        "sub_1", item_id="si_1", params=params, idempotency_key="ch1"
    )
    assert again == sub
    fake.cancel_subscription("sub_1", at_period_end=False, idempotency_key="c")
    with pytest.raises(GatewayInvalidRequestError) as caught:
        fake.change_subscription_plan("sub_1", item_id="si_1", params=params, idempotency_key="ch2")
    assert is_subscription_canceled(caught.value)


def test_fake_portal_session_url_and_replay() -> None:
    """The fake's portal URL looks like Stripe's; the same key replays it; calls are recorded."""
    fake = FakeGateway()
    url = fake.create_billing_portal_session(
        "cus_1", return_url="https://app.test/a", idempotency_key="p1"
    )
    assert url.startswith("https://billing.stripe.com/p/session/test_")
    again = fake.create_billing_portal_session(
        "cus_1", return_url="https://app.test/a", idempotency_key="p1"
    )
    assert again == url
    with pytest.raises(IdempotencyConflictError):
        fake.create_billing_portal_session(
            "cus_1", return_url="https://app.test/b", idempotency_key="p1"
        )
    with pytest.raises(GatewayInvalidRequestError):
        fake.create_billing_portal_session(
            "nobody", return_url="https://app.test/a", idempotency_key="p2"
        )
    assert fake.calls_to("create_billing_portal_session")[0].args == {
        "customer_id": "cus_1",
        "return_url": "https://app.test/a",
    }
