"""The Flask example (examples/flask_app.py) through Flask's test client: every route, every
error status, and webhooks posted as raw signed bytes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from examples.common import OFFLINE_WEBHOOK_SECRET, Example
from examples.flask_app import create_app
from flask import Flask
from flask.testing import FlaskClient

from mentorpay import ConfigurationError
from mentorpay.testing import (
    SignedEvent,
    booking_metadata,
    checkout_session,
    encode_event,
    make_event,
    payment_intent,
    sign_payload,
)

MENTEE = {"X-Demo-User": "7"}
MENTOR = {"X-Demo-User": "3"}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A SQLite database, in explicit offline mode unless a Stripe key is given."""
    offline = {} if "STRIPE_SECRET_KEY" in extra else {"MENTORPAY_OFFLINE": "1"}
    return {"MENTORPAY_DATABASE_URL": f"sqlite:///{tmp_path / 'examples.db'}", **offline, **extra}


def _example(app: Flask) -> Example:
    example: Example = app.extensions["mentorpay_example"]
    return example


@pytest.fixture
def client(tmp_path: Path) -> Iterator[FlaskClient]:
    """The example in offline mode; its Pay button delivers webhooks through this client."""
    clients: list[FlaskClient] = []

    def deliver(url: str, event: SignedEvent) -> int:
        headers = {"Stripe-Signature": event.signature, "Content-Type": "application/json"}
        return clients[0].post(urlsplit(url).path, data=event.body, headers=headers).status_code

    app = create_app(_env(tmp_path), deliver=deliver)
    clients.append(app.test_client())
    yield clients[0]
    _example(app).mp.engine.dispose()


def _signed(event_type: str, obj: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = encode_event(make_event(event_type, obj))
    return body, {"Stripe-Signature": sign_payload(body, OFFLINE_WEBHOOK_SECRET)}


def _checkout(client: FlaskClient, booking_id: str = "42") -> dict[str, Any]:
    response = client.post(
        "/payments/create-checkout-session", json={"booking_id": booking_id}, headers=MENTEE
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json or {}
    return body


def _press_pay(client: FlaskClient, checkout_url: str) -> str:
    """Press Pay on the offline checkout page; returns where the browser is redirected."""
    response = client.post(urlsplit(checkout_url).path + "/pay")
    assert response.status_code == 303, response.text
    location: str = response.headers["Location"]
    return location


def _pay(client: FlaskClient, booking_id: str = "42") -> str:
    """Checkout as the mentee and press Pay; returns the success URL."""
    return _press_pay(client, _checkout(client, booking_id)["url"])


def _error(response: Any) -> str:
    code: str = response.json["error"]
    return code


def test_index_page_offers_book_and_pay(client: FlaskClient) -> None:
    """GET / is the demo page with the Book and pay button, in offline mode."""
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "id='book'" in response.text and "Offline mode" in response.text


def test_demo_booking_route_creates_a_payable_booking(client: FlaskClient) -> None:
    """POST /demo/bookings adds a fresh booking that its mentee can check out."""
    response = client.post("/demo/bookings")
    assert response.status_code == 201
    booking = response.json or {}
    assert booking["mentee_id"] == "7" and booking["price"] == "50.00 GBP"
    assert _checkout(client, booking["booking_id"])["booking_id"] == booking["booking_id"]


def test_create_checkout_session_returns_an_absolute_local_url(client: FlaskClient) -> None:
    """The checkout JSON points at this host's offline checkout page; a repeat reuses it."""
    first = _checkout(client)
    assert first["url"] == f"http://localhost/fake-checkout/{first['session_id']}"
    assert (first["amount"], first["currency"], first["reused"]) == (5000, "GBP", False)
    again = _checkout(client)
    assert again["session_id"] == first["session_id"] and again["reused"] is True


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b'{"booking_id": "42"}', {}, 401, "authentication_required"),
        (b"not json", MENTEE, 400, "invalid_request"),
        (b'{"booking": "42"}', MENTEE, 400, "invalid_request"),
        (b'{"booking_id": "999"}', MENTEE, 404, "booking_not_found"),
        (b'{"booking_id": "42"}', {"X-Demo-User": "8"}, 403, "not_booking_owner"),
        (b'{"booking_id": "44"}', MENTEE, 409, "booking_not_payable"),
    ],
)
def test_create_checkout_session_errors(
    client: FlaskClient, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    """Each refusal is mentorpay's error as JSON with its HTTP status."""
    response = client.post("/payments/create-checkout-session", data=body, headers=headers)
    assert response.status_code == status
    assert _error(response) == code


def test_integer_booking_id_is_accepted(client: FlaskClient) -> None:
    """Hosts with integer ids may send {"booking_id": 42}."""
    response = client.post(
        "/payments/create-checkout-session", json={"booking_id": 42}, headers=MENTEE
    )
    assert response.status_code == 200 and (response.json or {})["booking_id"] == "42"


def test_offline_click_through_pays_and_shows_the_balance(client: FlaskClient) -> None:
    """Checkout page -> Pay -> webhooks through our own route -> success page with 45.00 GBP."""
    url = _checkout(client)["url"]
    page = client.get(urlsplit(url).path)
    assert page.status_code == 200 and 'id="pay"' in page.text and "50.00 GBP" in page.text
    success = _press_pay(client, url)
    assert success == "http://localhost/success?booking_id=42"
    shown = client.get(urlsplit(success).path, query_string=urlsplit(success).query)
    assert shown.status_code == 200
    assert "45.00 GBP" in shown.text and "id='balance-GBP'" in shown.text
    assert "is complete" in client.get(urlsplit(url).path).text
    assert _example(client.application).mp.ledger.verify().ok


def test_paying_twice_and_paid_bookings_are_409(client: FlaskClient) -> None:
    """A completed checkout cannot be paid again, nor a paid booking checked out again."""
    url = _checkout(client)["url"]
    _press_pay(client, url)
    again = client.post(urlsplit(url).path + "/pay")
    assert again.status_code == 409 and _error(again) == "conflict"
    checkout = client.post(
        "/payments/create-checkout-session", json={"booking_id": "42"}, headers=MENTEE
    )
    assert checkout.status_code == 409 and _error(checkout) == "already_paid"


def test_offline_checkout_unknown_session_is_404(client: FlaskClient) -> None:
    """An unknown session (e.g. after a restart) is a 404 that says to start again."""
    page = client.get("/fake-checkout/cs_test_missing")
    assert page.status_code == 404 and "start a new checkout" in (page.json or {})["message"]
    assert client.post("/fake-checkout/cs_test_missing/pay").status_code == 404


def test_webhook_delivery_failure_is_502(tmp_path: Path) -> None:
    """When the app refuses the offline checkout's webhook, Pay answers 502, not a redirect."""
    app = create_app(_env(tmp_path), deliver=lambda url, event: 400)
    client = app.test_client()
    url = _checkout(client)["url"]
    response = client.post(urlsplit(url).path + "/pay")
    assert response.status_code == 502 and (response.json or {})["webhook_status"] == 400
    _example(app).mp.engine.dispose()


def test_success_page_of_unknown_booking_is_404(client: FlaskClient) -> None:
    """The success page names a booking; an unknown one is a JSON 404."""
    response = client.get("/success", query_string={"booking_id": "999"})
    assert response.status_code == 404 and _error(response) == "booking_not_found"


def test_flask_own_errors_are_json_too(client: FlaskClient) -> None:
    """Unknown routes (404) and wrong methods (405) answer JSON like mentorpay's errors."""
    missing = client.get("/payments/nope")
    assert missing.status_code == 404 and _error(missing) == "not_found"
    wrong = client.get("/payments/webhook")
    assert wrong.status_code == 405 and _error(wrong) == "method_not_allowed"


def test_webhook_raw_bytes_success_sibling_and_duplicate(client: FlaskClient) -> None:
    """Signed bytes (indented, non-ASCII) pass untouched: success, sibling, then duplicate."""
    meta = booking_metadata("42", mentor_id="3", mentee_id="7")
    intent = payment_intent(amount=5000, currency="gbp", metadata=meta, description="Séance")
    event = make_event("payment_intent.succeeded", intent)
    body = json.dumps(event, indent=2, ensure_ascii=False).encode()  # re-encoding breaks the MAC
    headers = {
        "Stripe-Signature": sign_payload(body, OFFLINE_WEBHOOK_SECRET),
        "Content-Type": "application/json",
    }
    first = client.post("/payments/webhook", data=body, headers=headers)
    assert first.status_code == 200
    assert first.json == {
        "status": "success",
        "event_id": event["id"],
        "event_type": "payment_intent.succeeded",
    }
    duplicate = client.post("/payments/webhook", data=body, headers=headers)
    assert duplicate.status_code == 200 and (duplicate.json or {})["status"] == "already_processed"
    session = checkout_session(payment_intent=intent["id"], metadata=meta)
    sibling_body, sibling_headers = _signed("checkout.session.completed", session)
    sibling = client.post("/payments/webhook", data=sibling_body, headers=sibling_headers)
    assert (sibling.json or {})["status"] == "payment_already_processed"
    other_body, other_headers = _signed("customer.created", {"id": "cus_1", "object": "customer"})
    other = client.post("/payments/webhook", data=other_body, headers=other_headers)
    assert (other.json or {})["status"] == "ignored"
    balance = (client.get("/payments/balance", headers=MENTOR).json or {})["balances"][0]
    assert balance["pending"] == 4500


@pytest.mark.parametrize(
    ("body", "signature", "status", "code"),
    [
        (b'{"id": "evt_1"}', None, 400, "webhook_signature_invalid"),
        (b'{"id": "evt_1"}', "t=1,v1=deadbeef", 400, "webhook_signature_invalid"),
        (b"not json at all", "sign", 400, "webhook_payload_invalid"),
        (b"x" * (1024 * 1024 + 1), "sign", 413, "payload_too_large"),
    ],
)
def test_webhook_errors(
    client: FlaskClient, body: bytes, signature: str | None, status: int, code: str
) -> None:
    """Unsigned, forged, unreadable and oversized deliveries get mentorpay's 400/413 JSON."""
    headers = {}
    if signature is not None:
        headers["Stripe-Signature"] = (
            sign_payload(body, OFFLINE_WEBHOOK_SECRET) if signature == "sign" else signature
        )
    response = client.post("/payments/webhook", data=body, headers=headers)
    assert response.status_code == status
    assert _error(response) == code


def test_balance_route(client: FlaskClient) -> None:
    """A mentor sees their own balance; nobody sees another's; signing in is required."""
    assert client.get("/payments/balance", headers=MENTOR).json == {
        "mentor_id": "3",
        "balances": [],
    }
    _pay(client)
    balance = (client.get("/payments/balance", headers=MENTOR).json or {})["balances"]
    assert [(b["currency"], b["pending"], b["total_earned_display"]) for b in balance] == [
        ("GBP", 4500, "45.00 GBP")
    ]
    forbidden = client.get("/payments/balance", query_string={"mentor_id": "3"}, headers=MENTEE)
    assert forbidden.status_code == 403 and _error(forbidden) == "not_authorized"
    assert client.get("/payments/balance").status_code == 401


def test_history_route_roles_and_pagination(client: FlaskClient) -> None:
    """Mentors see the split, mentees do not; limit and cursor page through newest first."""
    _pay(client, "42")
    demo = (client.post("/demo/bookings").json or {})["booking_id"]
    _pay(client, demo)
    mentor = client.get("/payments/history", query_string={"limit": 1}, headers=MENTOR).json
    assert mentor is not None
    assert [i["booking_id"] for i in mentor["items"]] == [demo]
    assert mentor["items"][0]["platform_fee"] == 500 and mentor["next_cursor"]
    rest = client.get(
        "/payments/history",
        query_string={"limit": 1, "cursor": mentor["next_cursor"]},
        headers=MENTOR,
    ).json
    assert rest is not None
    assert [i["booking_id"] for i in rest["items"]] == ["42"] and rest["next_cursor"] is None
    mentee = client.get("/payments/history", query_string={"role": "mentee"}, headers=MENTEE).json
    assert mentee is not None
    assert len(mentee["items"]) == 2 and "platform_fee" not in mentee["items"][0]


@pytest.mark.parametrize(
    ("params", "headers", "status"),
    [
        ({}, {}, 401),
        ({"role": "admin"}, MENTOR, 400),
        ({"limit": "ten"}, MENTOR, 400),
        ({"limit": "0"}, MENTOR, 400),
        ({"cursor": "not-a-cursor"}, MENTOR, 400),
        ({"user_id": "7"}, MENTOR, 403),
    ],
)
def test_history_errors(
    client: FlaskClient, params: dict[str, str], headers: dict[str, str], status: int
) -> None:
    """Bad role, limit or cursor is 400; another user's history 403; no user 401."""
    response = client.get("/payments/history", query_string=params, headers=headers)
    assert response.status_code == status


@pytest.mark.parametrize("path", ["/payments/commission", "/payments/test-commission"])
def test_commission_preview_and_alias(client: FlaskClient, path: str) -> None:
    """100.00 GBP splits 10.00 / 90.00 on both names; GBP is the default currency."""
    expected = {
        "currency": "GBP",
        "rate_bps": 1000,
        "amount": 10000,
        "platform_fee": 1000,
        "mentor_payout": 9000,
        "amount_display": "100.00 GBP",
        "platform_fee_display": "10.00 GBP",
        "mentor_payout_display": "90.00 GBP",
    }
    assert client.get(path, query_string={"amount": "100.00", "currency": "gbp"}).json == expected
    assert client.get(path, query_string={"amount": "100"}).json == expected
    jpy = client.get(path, query_string={"amount": "1000", "currency": "jpy"}).json
    assert (jpy or {})["platform_fee_display"] == "100 JPY"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "invalid_request"),
        ({"amount": "1.001", "currency": "gbp"}, "invalid_amount"),
        ({"amount": "ten"}, "invalid_amount"),
        ({"amount": "10", "currency": "xyz"}, "unknown_currency"),
    ],
)
def test_commission_errors(client: FlaskClient, params: dict[str, str], code: str) -> None:
    """Missing amounts, excess precision and unknown currencies are 400s."""
    response = client.get("/payments/commission", query_string=params)
    assert response.status_code == 400 and _error(response) == code


def test_stripe_mode_turns_the_offline_checkout_off(tmp_path: Path) -> None:
    """With STRIPE_SECRET_KEY set, the offline checkout routes are 404 and / says Stripe."""
    env = _env(tmp_path, STRIPE_SECRET_KEY="sk_test_x", STRIPE_WEBHOOK_SECRET="whsec_real")
    app = create_app(env)
    client = app.test_client()
    assert "Stripe mode" in client.get("/").text
    assert client.get("/fake-checkout/cs_test_1").status_code == 404
    assert client.post("/fake-checkout/cs_test_1/pay").status_code == 404
    _example(app).mp.engine.dispose()


def test_stripe_mode_requires_a_webhook_secret(tmp_path: Path) -> None:
    """A real key without STRIPE_WEBHOOK_SECRET refuses to start (no demo secret with Stripe)."""
    with pytest.raises(ConfigurationError, match="STRIPE_WEBHOOK_SECRET"):
        create_app(_env(tmp_path, STRIPE_SECRET_KEY="sk_test_x"))
