"""The examples' fast-acknowledge mode: one setting, webhooks answered `received`, applied soon."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from examples.common import OFFLINE_WEBHOOK_SECRET, build_example
from examples.fastapi_app import create_app as fastapi_app
from examples.flask_app import create_app as flask_app
from fastapi.testclient import TestClient

from mentorpay import ConfigurationError
from mentorpay.testing import (
    SignedEvent,
    booking_metadata,
    encode_event,
    make_event,
    payment_intent,
    sign_payload,
)

MENTEE = {"X-Demo-User": "7"}
MENTOR = {"X-Demo-User": "3"}


def _env(tmp_path: Path) -> dict[str, str]:
    """Offline, on SQLite, in ingest mode."""
    return {
        "MENTORPAY_DATABASE_URL": f"sqlite:///{tmp_path / 'examples.db'}",
        "MENTORPAY_OFFLINE": "1",
        "MENTORPAY_WEBHOOK_MODE": "ingest",
    }


def _eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Whether ``check()`` becomes true within ``seconds`` (the background worker's pace)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def _post(client: Any, path: str, body: bytes, headers: dict[str, str]) -> Any:
    """POST raw bytes with either framework's test client."""
    if isinstance(client, TestClient):
        return client.post(path, content=body, headers=headers)
    return client.post(path, data=body, headers=headers)


def _pending(client: Any) -> int:
    balances = _json(client.get("/payments/balance", headers=MENTOR))["balances"]
    return int(balances[0]["pending"]) if balances else 0


@pytest.mark.parametrize("framework", ["fastapi", "flask"])
def test_ingest_mode_answers_received_and_the_worker_applies(
    tmp_path: Path, framework: str
) -> None:
    """Webhooks are answered `received`, the in-app worker credits them, click-through works."""
    clients: list[Any] = []

    def deliver(url: str, event: SignedEvent) -> int:
        headers = {"Stripe-Signature": event.signature, "Content-Type": "application/json"}
        response = _post(clients[0], urlsplit(url).path, event.body, headers)
        return int(response.status_code)

    if framework == "fastapi":
        client: Any = TestClient(fastapi_app(_env(tmp_path), deliver=deliver))
        example = client.app.state.example
    else:
        app = flask_app(_env(tmp_path), deliver=deliver)
        client, example = app.test_client(), app.extensions["mentorpay_example"]
    clients.append(client)
    try:
        meta = booking_metadata("42", mentor_id="3", mentee_id="7")
        intent = payment_intent(amount=5000, currency="gbp", metadata=meta)
        body = encode_event(make_event("payment_intent.succeeded", intent))
        headers = {"Stripe-Signature": sign_payload(body, OFFLINE_WEBHOOK_SECRET)}
        first = _post(client, "/payments/webhook", body, headers)
        assert first.status_code == 200 and _json(first)["status"] == "received"
        assert _eventually(lambda: _pending(client) == 4500)
        again = _post(client, "/payments/webhook", body, headers)
        assert _json(again)["status"] == "already_processed"
        bad = _post(client, "/payments/webhook", body, {"Stripe-Signature": "t=1"})
        assert bad.status_code == 400
        # The Pay button of the offline checkout goes through the same route.
        checkout = client.post(
            "/payments/create-checkout-session",
            json={"booking_id": example.new_demo_booking().id},
            headers=MENTEE,
        )
        pay = client.post(urlsplit(_json(checkout)["url"]).path + "/pay")
        assert pay.status_code in (200, 303)
        assert _eventually(lambda: _pending(client) == 9000)
        assert example.mp.ledger.verify().ok
    finally:
        example.mp.engine.dispose()


def _json(response: Any) -> dict[str, Any]:
    """The JSON body of a Flask or Starlette test response."""
    body = response.json() if callable(response.json) else response.json
    assert isinstance(body, dict)
    return body


def test_an_unknown_webhook_mode_refuses_to_start(tmp_path: Path) -> None:
    """MENTORPAY_WEBHOOK_MODE must be process or ingest: a typo never starts the app."""
    env = {**_env(tmp_path), "MENTORPAY_WEBHOOK_MODE": "fast"}
    with pytest.raises(ConfigurationError, match="MENTORPAY_WEBHOOK_MODE"):
        build_example(env)
