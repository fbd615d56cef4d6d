"""The FastAPI example (examples/fastapi_app.py) through FastAPI's test client: every route,
every error status, and webhooks posted as raw signed bytes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from examples.common import OFFLINE_WEBHOOK_SECRET, Example
from examples.fastapi_app import create_app
from fastapi.testclient import TestClient

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


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The example in offline mode; its Pay button delivers webhooks through this client."""
    clients: list[TestClient] = []

    def deliver(url: str, event: SignedEvent) -> int:
        headers = {"Stripe-Signature": event.signature, "Content-Type": "application/json"}
        response = clients[0].post(urlsplit(url).path, content=event.body, headers=headers)
        status: int = response.status_code
        return status

    app = create_app(_env(tmp_path), deliver=deliver)
    with TestClient(app) as test_client:
        clients.append(test_client)
        yield test_client
    _example(test_client).mp.engine.dispose()


def _example(client: TestClient) -> Example:
    example: Example = client.app.state.example  # type: ignore[attr-defined]
    return example


def _signed(event_type: str, obj: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = encode_event(make_event(event_type, obj))
    return body, {"Stripe-Signature": sign_payload(body, OFFLINE_WEBHOOK_SECRET)}


def _checkout(client: TestClient, booking_id: str = "42") -> dict[str, Any]:
    response = client.post(
        "/payments/create-checkout-session", json={"booking_id": booking_id}, headers=MENTEE
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _press_pay(client: TestClient, checkout_url: str) -> str:
    """Press Pay on the offline checkout page; returns where the browser is redirected."""
    response = client.post(urlsplit(checkout_url).path + "/pay", follow_redirects=False)
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    return location


def _pay(client: TestClient, booking_id: str = "42") -> str:
    """Checkout as the mentee and press Pay; returns the success URL."""
    return _press_pay(client, _checkout(client, booking_id)["url"])


def test_index_page_offers_book_and_pay(client: TestClient) -> None:
    """GET / is the demo page with the Book and pay button, in offline mode."""
    response = client.get("/")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "id='book'" in response.text and "Offline mode" in response.text


def test_demo_booking_route_creates_a_payable_booking(client: TestClient) -> None:
    """POST /demo/bookings adds a fresh booking that its mentee can check out."""
    response = client.post("/demo/bookings")
    assert response.status_code == 201
    booking = response.json()
    assert booking["mentee_id"] == "7" and booking["price"] == "50.00 GBP"
    assert _checkout(client, booking["booking_id"])["booking_id"] == booking["booking_id"]


def test_create_checkout_session_returns_an_absolute_local_url(client: TestClient) -> None:
    """The checkout JSON points at this host's offline checkout page; a repeat reuses it."""
    first = _checkout(client)
    assert first["url"] == f"http://testserver/fake-checkout/{first['session_id']}"
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
    client: TestClient, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    """Each refusal is mentorpay's error as JSON with its HTTP status."""
    response = client.post("/payments/create-checkout-session", content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == code


def test_integer_booking_id_is_accepted(client: TestClient) -> None:
    """Hosts with integer ids may send {"booking_id": 42}."""
    response = client.post(
        "/payments/create-checkout-session", json={"booking_id": 42}, headers=MENTEE
    )
    assert response.status_code == 200 and response.json()["booking_id"] == "42"


def test_offline_click_through_pays_and_shows_the_balance(client: TestClient) -> None:
    """Checkout page -> Pay -> webhooks through our own route -> success page with 45.00 GBP."""
    url = _checkout(client)["url"]
    page = client.get(urlsplit(url).path)
    assert page.status_code == 200 and 'id="pay"' in page.text and "50.00 GBP" in page.text
    success = _press_pay(client, url)
    assert success == "http://testserver/success?booking_id=42"
    shown = client.get(urlsplit(success).path + "?" + urlsplit(success).query)
    assert shown.status_code == 200
    assert "45.00 GBP" in shown.text and "id='balance-GBP'" in shown.text
    assert "is complete" in client.get(urlsplit(url).path).text
    assert _example(client).mp.ledger.verify().ok


def test_paying_twice_and_paid_bookings_are_409(client: TestClient) -> None:
    """A completed checkout cannot be paid again, nor a paid booking checked out again."""
    url = _checkout(client)["url"]
    _press_pay(client, url)
    again = client.post(urlsplit(url).path + "/pay", follow_redirects=False)
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    checkout = client.post(
        "/payments/create-checkout-session", json={"booking_id": "42"}, headers=MENTEE
    )
    assert checkout.status_code == 409 and checkout.json()["error"] == "already_paid"


def test_offline_checkout_unknown_session_is_404(client: TestClient) -> None:
    """An unknown session (e.g. after a restart) is a 404 that says to start again."""
    page = client.get("/fake-checkout/cs_test_missing")
    assert page.status_code == 404 and "start a new checkout" in page.json()["message"]
    assert client.post("/fake-checkout/cs_test_missing/pay").status_code == 404


def test_webhook_delivery_failure_is_502(tmp_path: Path) -> None:
    """When the app refuses the offline checkout's webhook, Pay answers 502, not a redirect."""
    with TestClient(create_app(_env(tmp_path), deliver=lambda url, event: 400)) as client:
        url = _checkout(client)["url"]
        response = client.post(urlsplit(url).path + "/pay", follow_redirects=False)
        assert response.status_code == 502
        assert response.json()["webhook_status"] == 400
        _example(client).mp.engine.dispose()


def test_pay_refuses_to_send_webhooks_off_this_machine(tmp_path: Path) -> None:
    """Behind a foreign Host header, Pay refuses (500) before spending the checkout session."""
    with TestClient(create_app(_env(tmp_path))) as client:  # real sender; host "testserver"
        url = _checkout(client)["url"]
        response = client.post(urlsplit(url).path + "/pay", follow_redirects=False)
        assert response.status_code == 500 and response.json()["error"] == "configuration_error"
        assert 'id="pay"' in client.get(urlsplit(url).path).text  # still open, still payable
        _example(client).mp.engine.dispose()


def test_success_page_of_unknown_booking_is_404(client: TestClient) -> None:
    """The success page names a booking; an unknown one is a JSON 404."""
    response = client.get("/success", params={"booking_id": "999"})
    assert response.status_code == 404 and response.json()["error"] == "booking_not_found"


def test_webhook_raw_bytes_success_sibling_and_duplicate(client: TestClient) -> None:
    """Signed bytes (indented, non-ASCII) pass untouched: success, sibling, then duplicate."""
    meta = booking_metadata("42", mentor_id="3", mentee_id="7")
    intent = payment_intent(amount=5000, currency="gbp", metadata=meta, description="Séance")
    event = make_event("payment_intent.succeeded", intent)
    body = json.dumps(event, indent=2, ensure_ascii=False).encode()  # re-encoding breaks the MAC
    headers = {
        "Stripe-Signature": sign_payload(body, OFFLINE_WEBHOOK_SECRET),
        "Content-Type": "application/json",
    }
    first = client.post("/payments/webhook", content=body, headers=headers)
    assert first.status_code == 200
    assert first.json() == {
        "status": "success",
        "event_id": event["id"],
        "event_type": "payment_intent.succeeded",
    }
    duplicate = client.post("/payments/webhook", content=body, headers=headers)
    assert duplicate.status_code == 200 and duplicate.json()["status"] == "already_processed"
    session = checkout_session(payment_intent=intent["id"], metadata=meta)
    sibling_body, sibling_headers = _signed("checkout.session.completed", session)
    sibling = client.post("/payments/webhook", content=sibling_body, headers=sibling_headers)
    assert sibling.json()["status"] == "payment_already_processed"
    other_body, other_headers = _signed("customer.created", {"id": "cus_1", "object": "customer"})
    assert (
        client.post("/payments/webhook", content=other_body, headers=other_headers).json()["status"]
        == "ignored"
    )
    balance = client.get("/payments/balance", headers=MENTOR).json()["balances"][0]
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
    client: TestClient, body: bytes, signature: str | None, status: int, code: str
) -> None:
    """Unsigned, forged, unreadable and oversized deliveries get mentorpay's 400/413 JSON."""
    headers = {}
    if signature is not None:
        headers["Stripe-Signature"] = (
            sign_payload(body, OFFLINE_WEBHOOK_SECRET) if signature == "sign" else signature
        )
    response = client.post("/payments/webhook", content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == code


def test_balance_route(client: TestClient) -> None:
    """A mentor sees their own balance; nobody sees another's; signing in is required."""
    assert client.get("/payments/balance", headers=MENTOR).json() == {
        "mentor_id": "3",
        "balances": [],
    }
    _pay(client)
    balance = client.get("/payments/balance", headers=MENTOR).json()["balances"]
    assert [(b["currency"], b["pending"], b["total_earned_display"]) for b in balance] == [
        ("GBP", 4500, "45.00 GBP")
    ]
    forbidden = client.get("/payments/balance", params={"mentor_id": "3"}, headers=MENTEE)
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "not_authorized"
    assert client.get("/payments/balance").status_code == 401


def test_history_route_roles_and_pagination(client: TestClient) -> None:
    """Mentors see the split, mentees do not; limit and cursor page through newest first."""
    _pay(client, "42")
    demo = client.post("/demo/bookings").json()["booking_id"]
    _pay(client, demo)
    mentor = client.get("/payments/history", params={"limit": 1}, headers=MENTOR).json()
    assert [i["booking_id"] for i in mentor["items"]] == [demo]
    assert mentor["items"][0]["platform_fee"] == 500 and mentor["next_cursor"]
    rest = client.get(
        "/payments/history", params={"limit": 1, "cursor": mentor["next_cursor"]}, headers=MENTOR
    ).json()
    assert [i["booking_id"] for i in rest["items"]] == ["42"] and rest["next_cursor"] is None
    mentee = client.get("/payments/history", params={"role": "mentee"}, headers=MENTEE).json()
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
    client: TestClient, params: dict[str, str], headers: dict[str, str], status: int
) -> None:
    """Bad role, limit or cursor is 400; another user's history 403; no user 401."""
    assert client.get("/payments/history", params=params, headers=headers).status_code == status


@pytest.mark.parametrize("path", ["/payments/commission", "/payments/test-commission"])
def test_commission_preview_and_alias(client: TestClient, path: str) -> None:
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
    assert client.get(path, params={"amount": "100.00", "currency": "gbp"}).json() == expected
    assert client.get(path, params={"amount": "100"}).json() == expected
    assert (
        client.get(path, params={"amount": "1000", "currency": "jpy"}).json()[
            "platform_fee_display"
        ]
        == "100 JPY"
    )


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "invalid_request"),
        ({"amount": "1.001", "currency": "gbp"}, "invalid_amount"),
        ({"amount": "ten"}, "invalid_amount"),
        ({"amount": "10", "currency": "xyz"}, "unknown_currency"),
    ],
)
def test_commission_errors(client: TestClient, params: dict[str, str], code: str) -> None:
    """Missing amounts, excess precision and unknown currencies are 400s."""
    response = client.get("/payments/commission", params=params)
    assert response.status_code == 400 and response.json()["error"] == code


def test_stripe_mode_turns_the_offline_checkout_off(tmp_path: Path) -> None:
    """With STRIPE_SECRET_KEY set, the offline checkout routes are 404 and / says Stripe."""
    env = _env(tmp_path, STRIPE_SECRET_KEY="sk_test_x", STRIPE_WEBHOOK_SECRET="whsec_real")
    with TestClient(create_app(env)) as client:
        assert "Stripe mode" in client.get("/").text
        assert client.get("/fake-checkout/cs_test_1").status_code == 404
        assert client.post("/fake-checkout/cs_test_1/pay").status_code == 404
        _example(client).mp.engine.dispose()


def test_stripe_mode_requires_a_webhook_secret(tmp_path: Path) -> None:
    """A real key without STRIPE_WEBHOOK_SECRET refuses to start (no demo secret with Stripe)."""
    with pytest.raises(ConfigurationError, match="STRIPE_WEBHOOK_SECRET"):
        create_app(_env(tmp_path, STRIPE_SECRET_KEY="sk_test_x"))
