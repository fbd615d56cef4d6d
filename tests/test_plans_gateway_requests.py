"""``mp.checkout.create_plan_session`` and ``mp.plans`` through a real StripeGateway: the exact
requests Stripe receives (intercepted by ``responses``: nothing reaches the network), their
Idempotency-Keys, reuse of an open session, and a retry after a lost answer replaying the same
request. Expected bodies are written out from Stripe's API reference, not from mentorpay."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import requests
import responses
from sqlalchemy import Engine

from mentorpay import MentorPay, MentorpayConfig
from mentorpay.errors import GatewayError
from mentorpay.gateway import StripeGateway
from mentorpay.testing import (
    FakeClock,
    InMemoryBookings,
    InMemoryPlans,
    encode_event,
    make_event,
    sign_payload,
    subscription,
)
from tests.fixtures.stripe_http import form
from tests.plan_kit import CANCEL, MONTHLY, MONTHLY_PLUS, PACKAGE, SECRET, START, SUCCESS

API = "https://api.stripe.com"
EXPIRES = int((START + timedelta(hours=1)).timestamp())  # the default checkout_expiry


def world(engine: Engine) -> tuple[MentorPay, FakeClock]:
    """A MentorPay selling the kit's plans through a real StripeGateway (no SDK retries)."""
    clock = FakeClock(START)
    mp = MentorPay(
        MentorpayConfig(webhook_secrets=[SECRET]),
        engine,
        bookings=InMemoryBookings([]),
        gateway=StripeGateway("sk_test_123", max_network_retries=0),
        clock=clock,
        plans=InMemoryPlans([MONTHLY, MONTHLY_PLUS, PACKAGE]),
    )
    mp.create_schema()
    return mp, clock


def session_json(metadata: dict[str, str], **extra: Any) -> dict[str, Any]:
    """Stripe's answer: an open subscription-mode session."""
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
        "amount_total": 8000,
        "currency": "gbp",
        "expires_at": EXPIRES,
        "created": EXPIRES - 3600,
        "metadata": metadata,
        **extra,
    }


def echo_session(request: Any) -> tuple[int, dict[str, str], str]:
    """Stripe creates the session with the metadata it was sent."""
    sent = form(request)
    meta = {k[len("metadata[") : -1]: v for k, v in sent.items() if k.startswith("metadata[")}
    return 200, {}, json.dumps(session_json(meta))


def expected_checkout(purchase: str) -> dict[str, str]:
    """The subscription-mode session Stripe must be asked for, field by field."""
    meta = {"plan_purchase_id": purchase, "plan_id": "monthly", "mentor_id": "m1",
            "mentee_id": "e1"}  # fmt: skip
    return {
        "mode": "subscription",
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "gbp",
        "line_items[0][price_data][unit_amount]": "8000",
        "line_items[0][price_data][product_data][name]": "4 mentoring sessions per month",
        "line_items[0][price_data][recurring][interval]": "month",
        "line_items[0][price_data][recurring][interval_count]": "1",
        "success_url": SUCCESS,
        "cancel_url": CANCEL,
        "client_reference_id": "e1",
        "expires_at": str(EXPIRES),
        **{f"metadata[{k}]": v for k, v in meta.items()},
        **{f"subscription_data[metadata][{k}]": v for k, v in meta.items()},
    }


def test_plan_checkout_sends_the_exact_session_once_and_reuses_it(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """One keyed POST /v1/checkout/sessions with the plan's terms; a second call reuses it."""
    mp, _ = world(engine)
    http.add_callback(responses.POST, f"{API}/v1/checkout/sessions", callback=echo_session)
    info = mp.checkout.create_plan_session(
        "monthly", user_id="e1", success_url=SUCCESS, cancel_url=CANCEL
    )
    request = http.calls[0].request
    assert form(request) == expected_checkout(info.plan_purchase_id)
    key = f"mentorpay:plan-checkout:{info.plan_purchase_id}:1"
    assert request.headers["Idempotency-Key"] == key
    assert (info.session_id, info.reused) == ("cs_test_plan", False)
    again = mp.checkout.create_plan_session(
        "monthly", user_id="e1", success_url=SUCCESS, cancel_url=CANCEL
    )
    assert (again.session_id, again.plan_purchase_id, again.reused) == (
        "cs_test_plan",
        info.plan_purchase_id,
        True,
    )
    assert len(http.calls) == 1


def test_a_lost_answer_is_retried_with_the_same_key_and_body(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """A timeout on the first call, then the retry sends the same key and the same body."""
    mp, _ = world(engine)
    url = f"{API}/v1/checkout/sessions"
    http.post(url, body=requests.ConnectionError("read timed out"))
    with pytest.raises(GatewayError):
        mp.checkout.create_plan_session(
            "monthly", user_id="e1", success_url=SUCCESS, cancel_url=CANCEL
        )
    http.add_callback(responses.POST, url, callback=echo_session)
    info = mp.checkout.create_plan_session(
        "monthly", user_id="e1", success_url=SUCCESS, cancel_url=CANCEL
    )
    first, second = (c.request for c in http.calls)
    assert form(first) == form(second) == expected_checkout(info.plan_purchase_id)
    key = f"mentorpay:plan-checkout:{info.plan_purchase_id}:1"
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == key
    assert info.session_id == "cs_test_plan"


def linked(engine: Engine, http: responses.RequestsMock) -> tuple[MentorPay, FakeClock, str]:
    """A purchase whose checkout completed and whose subscription sub_1 (item si_1, customer
    cus_1) Stripe reported, through signed events."""
    mp, clock = world(engine)
    http.add_callback(responses.POST, f"{API}/v1/checkout/sessions", callback=echo_session)
    info = mp.checkout.create_plan_session(
        "monthly", user_id="e1", success_url=SUCCESS, cancel_url=CANCEL
    )
    meta = {"plan_purchase_id": info.plan_purchase_id, "plan_id": "monthly",
            "mentor_id": "m1", "mentee_id": "e1"}  # fmt: skip
    completed = session_json(meta, status="complete", payment_status="paid",
                             subscription="sub_1", customer="cus_1")  # fmt: skip
    start = int(START.timestamp())
    sub = sub_answer(metadata=meta)
    for event_type, obj in [("checkout.session.completed", completed),
                            ("customer.subscription.created", sub)]:  # fmt: skip
        body = encode_event(make_event(event_type, obj, created=start))
        assert mp.webhooks.process(body, sign_payload(body, SECRET)).status == "success"
    view = mp.plans.get(info.plan_purchase_id)
    assert (view.subscription_id, view.customer_id) == ("sub_1", "cus_1")
    return mp, clock, info.plan_purchase_id


def sub_answer(**extra: Any) -> dict[str, Any]:
    """Stripe's subscription answer (pinned shape)."""
    start = int(START.timestamp())
    return subscription(id="sub_1", customer="cus_1", amount=8000, currency="gbp",
                        period_start=start, period_end=start + 30 * 86400, item_id="si_1",
                        **extra)  # fmt: skip


def test_cancel_at_period_end_then_now_send_the_exact_requests(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """mp.plans.cancel: POST cancel_at_period_end=true, then DELETE, each with its own key."""
    mp, _, purchase = linked(engine, http)
    http.post(f"{API}/v1/subscriptions/sub_1", json=sub_answer(cancel_at_period_end=True))
    view = mp.plans.cancel(purchase, user_id="e1")
    assert view.cancel_at_period_end and view.status == "active"
    post = http.calls[1].request
    assert (post.method, post.url) == ("POST", f"{API}/v1/subscriptions/sub_1")
    assert form(post) == {"cancel_at_period_end": "true"}
    assert post.headers["Idempotency-Key"] == "mentorpay:plan-cancel:sub_1:period-end"
    # Asked again: nothing sent (already set to cancel at period end).
    mp.plans.cancel(purchase, user_id="e1")
    assert len(http.calls) == 2
    http.delete(f"{API}/v1/subscriptions/sub_1", json=sub_answer(status="canceled"))
    now = mp.plans.cancel(purchase, user_id="e1", at_period_end=False)
    assert now.status == "canceled"
    delete = http.calls[2].request
    assert (delete.method, delete.url, delete.body) == ("DELETE", f"{API}/v1/subscriptions/sub_1",
                                                         None)  # fmt: skip
    assert delete.headers["Idempotency-Key"] == "mentorpay:plan-cancel:sub_1:now"


def test_portal_url_sends_the_exact_request(engine: Engine, http: responses.RequestsMock) -> None:
    """mp.plans.portal_url: POST /v1/billing_portal/sessions with the mentee's customer."""
    mp, clock, _ = linked(engine, http)
    url = "https://billing.stripe.com/p/session/test_abc"
    http.post(f"{API}/v1/billing_portal/sessions",
              json={"id": "bps_1", "object": "billing_portal.session", "url": url})  # fmt: skip
    assert mp.plans.portal_url("e1", "https://app.example/account") == url
    request = http.calls[1].request
    assert form(request) == {"customer": "cus_1", "return_url": "https://app.example/account"}
    issued = int(clock().timestamp())
    assert request.headers["Idempotency-Key"] == f"mentorpay:portal:cus_1:{issued}"


def test_plan_change_creates_the_price_then_updates_the_subscription(
    engine: Engine, http: responses.RequestsMock
) -> None:
    """mp.plans.change: a keyed POST /v1/prices, then the item swapped without proration."""
    mp, _, purchase = linked(engine, http)
    http.post(f"{API}/v1/prices", json={"id": "price_plus", "object": "price"})
    http.post(f"{API}/v1/subscriptions/sub_1", json=sub_answer())
    view = mp.plans.change(purchase, "monthly-plus", user_id="e1")
    assert view.pending_plan_id == "monthly-plus"
    price, update = (c.request for c in http.calls[1:])
    assert (price.method, price.url) == ("POST", f"{API}/v1/prices")
    assert form(price) == {
        "currency": "gbp",
        "unit_amount": "14000",
        "recurring[interval]": "month",
        "recurring[interval_count]": "1",
        "product_data[name]": "8 mentoring sessions per month",
        "metadata[plan_id]": "monthly-plus",
    }
    assert price.headers["Idempotency-Key"] == "mentorpay:plan-change:sub_1:1:monthly-plus:price"
    assert (update.method, update.url) == ("POST", f"{API}/v1/subscriptions/sub_1")
    assert form(update) == {
        "items[0][id]": "si_1",
        "items[0][price]": "price_plus",
        "proration_behavior": "none",
        "metadata[plan_purchase_id]": purchase,
        "metadata[plan_id]": "monthly-plus",
        "metadata[mentor_id]": "m1",
        "metadata[mentee_id]": "e1",
        "metadata[mentor_account]": "",
    }
    assert update.headers["Idempotency-Key"] == "mentorpay:plan-change:sub_1:1:monthly-plus"
    # The same change asked again (a double click) replays the same keyed requests, which
    # Stripe answers from its idempotency cache: no second price, no second change.
    http.post(f"{API}/v1/prices", json={"id": "price_plus", "object": "price"})
    http.post(f"{API}/v1/subscriptions/sub_1", json=sub_answer())
    mp.plans.change(purchase, "monthly-plus", user_id="e1")
    replay = [c.request for c in http.calls[3:]]
    assert [form(r) for r in replay] == [form(price), form(update)]
    assert [r.headers["Idempotency-Key"] for r in replay] == [
        price.headers["Idempotency-Key"],
        update.headers["Idempotency-Key"],
    ]
