"""The operator and mentor pages of both examples, through their test clients: the operator
check (401 / 403), charts rendered on the server with no external URL, approve and execute
buttons, a mentor's payout request, and the offline clock driving a bank debit."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest
from examples.common import Example

from mentorpay.testing import SignedEvent

OPS = {"X-Demo-User": "ops"}
MENTOR = {"X-Demo-User": "3"}
MENTEE = {"X-Demo-User": "7"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# Namespace names identify XML vocabularies; nothing fetches them.
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


class Response(Protocol):
    """What both test clients answer."""

    status_code: int
    text: str
    headers: Any


class Client(Protocol):
    """Flask's and Starlette's test clients, as these tests use them."""

    def get(self, url: str, **kwargs: Any) -> Any: ...
    def post(self, url: str, **kwargs: Any) -> Any: ...


def _flask(env: dict[str, str]) -> tuple[Client, Example]:
    from examples.flask_app import create_app

    clients: list[Any] = []

    def deliver(url: str, event: SignedEvent) -> int:
        headers = {"Stripe-Signature": event.signature, "Content-Type": "application/json"}
        return int(
            clients[0].post(urlsplit(url).path, data=event.body, headers=headers).status_code
        )

    app = create_app(env, deliver=deliver)
    clients.append(app.test_client())
    return clients[0], app.extensions["mentorpay_example"]


def _fastapi(env: dict[str, str]) -> tuple[Client, Example]:
    from examples.fastapi_app import create_app
    from fastapi.testclient import TestClient

    clients: list[Any] = []

    def deliver(url: str, event: SignedEvent) -> int:
        headers = {"Stripe-Signature": event.signature, "Content-Type": "application/json"}
        return int(
            clients[0].post(urlsplit(url).path, content=event.body, headers=headers).status_code
        )

    app = create_app(env, deliver=deliver)
    clients.append(TestClient(app, follow_redirects=False))
    return clients[0], app.state.example


@pytest.fixture(params=["flask", "fastapi"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Client, Example]]:
    """One example in offline mode, webhooks delivered through its own test client."""
    env = {"MENTORPAY_DATABASE_URL": f"sqlite:///{tmp_path / 'pages.db'}", "MENTORPAY_OFFLINE": "1"}
    client, ex = (_flask if request.param == "flask" else _fastapi)(env)
    yield client, ex
    ex.mp.engine.dispose()


def _post_form(
    client: Client, url: str, data: str = "", headers: dict[str, str] | None = None
) -> Any:
    body = data.encode()
    if hasattr(client, "application"):  # Flask
        return client.post(url, data=body, headers={**FORM, **(headers or {})})
    return client.post(url, content=body, headers={**FORM, **(headers or {})})


def _json(response: Any) -> Any:
    """The JSON body (a property on Flask's responses, a method on Starlette's)."""
    return response.json() if callable(response.json) else response.json


def _pay(client: Client, scenario: str = "card") -> str:
    """Book with mentee 7 and press one scenario's button on the offline checkout page."""
    booking = _json(client.post("/demo/bookings"))
    checkout = client.post(
        "/payments/create-checkout-session",
        json={"booking_id": booking["booking_id"]},
        headers=MENTEE,
    )
    path = urlsplit(_json(checkout)["url"]).path
    page = client.get(path)
    button = "pay" if scenario == "card" else f"pay-{scenario}"
    assert page.status_code == 200 and f'id="{button}"' in page.text
    done = client.post(f"{path}/pay?scenario={scenario}")
    assert done.status_code == 303, done.text
    return str(booking["booking_id"])


def test_operator_pages_need_an_operator(site: tuple[Client, Example]) -> None:
    """Nobody signed in is 401; a mentor on the operator page or its buttons is 403."""
    client, _ = site
    assert client.get("/operator").status_code == 401
    assert client.get("/operator", headers=MENTOR).status_code == 403
    assert _post_form(client, "/operator/payouts/1/approve", headers=MENTOR).status_code == 403
    assert _post_form(client, "/operator/payouts/1/execute", headers=MENTOR).status_code == 403
    assert client.get("/operator", headers=OPS).status_code == 200


def test_operator_page_shows_charts_without_external_urls(site: tuple[Client, Example]) -> None:
    """The page carries server-rendered SVG charts and totals and no URL outside the app."""
    client, _ = site
    _pay(client)
    page = client.get("/operator", headers=OPS).text
    assert 'id="chart-volume-GBP"' in page and 'id="chart-losses-GBP"' in page
    assert "volume 50.00 GBP, commission 5.00 GBP" in page
    assert "<script" not in page
    urls = set(re.findall(r"(?:https?:)?//[^\s\"'<>)]+", page)) - NAMESPACES
    assert urls == set()
    assert "No reconciliation recorded yet" in page


def test_mentor_requests_and_operator_approves_and_executes(site: tuple[Client, Example]) -> None:
    """After the hold the mentor requests 20.00; the operator approves, then executes it."""
    client, ex = site
    _pay(client)
    assert _post_form(client, "/fake-checkout/advance?days=14&next=/mentor").status_code == 303
    mentor_page = client.get("/mentor", headers=MENTOR).text
    assert "45.00 GBP" in mentor_page and 'id="chart-earned-GBP"' in mentor_page
    asked = _post_form(client, "/mentor/payouts", "amount=20.00&currency=gbp", headers=MENTOR)
    assert asked.status_code == 303 and asked.headers["Location"].endswith("/mentor")
    (payout,) = ex.mp.payouts.list(status="requested")
    assert f"id='approve-{payout.id}'" in client.get("/operator", headers=OPS).text
    _post_form(client, f"/operator/payouts/{payout.id}/approve", headers=OPS)
    assert ex.mp.payouts.get(payout.id).status == "approved"
    assert ex.mp.payouts.get(payout.id).approved_by == "ops"
    assert f"id='execute-{payout.id}'" in client.get("/operator", headers=OPS).text
    _post_form(client, f"/operator/payouts/{payout.id}/execute", headers=OPS)
    assert ex.mp.payouts.get(payout.id).status == "processing"
    assert ex.mp.ledger.balance("3", "GBP").available.amount == 2500
    assert ex.mp.ledger.verify().ok


def test_bad_payout_form_and_sign_in(site: tuple[Client, Example]) -> None:
    """A payout form without amount is 400; sign-in refuses odd ids and off-site redirects."""
    client, _ = site
    assert _post_form(client, "/mentor/payouts", "currency=gbp", headers=MENTOR).status_code == 400
    assert client.get("/demo/sign-in?user=a%20b").status_code == 400
    answer = client.get("/demo/sign-in?user=ops&next=//evil.example/x")
    assert answer.status_code == 303 and answer.headers["Location"] in ("/", "http://localhost/")
    assert client.get("/operator").status_code == 200  # the cookie signs the browser in


def test_bank_debit_settles_when_the_offline_clock_moves(site: tuple[Client, Example]) -> None:
    """A bank debit is pending until +3 days on the offline clock, then the mentor is paid."""
    client, ex = site
    _pay(client, "bank_debit")
    assert ex.mp.ledger.balances("3") == []
    assert "the bank debit succeeds" in client.get("/operator", headers=OPS).text
    _post_form(client, "/fake-checkout/advance?days=3&next=/operator")
    assert ex.mp.ledger.balance("3", "GBP").pending.amount == 4500


def test_declined_card_returns_to_the_checkout_page(site: tuple[Client, Example]) -> None:
    """The declined card's button sends the browser back to the page, which says so."""
    client, ex = site
    booking = _json(client.post("/demo/bookings"))
    checkout = client.post(
        "/payments/create-checkout-session",
        json={"booking_id": booking["booking_id"]},
        headers=MENTEE,
    )
    path = urlsplit(_json(checkout)["url"]).path
    done = client.post(f"{path}/pay?scenario=card_declined")
    assert done.status_code == 303
    assert done.headers["Location"].endswith(f"{path}?declined=1")
    assert "Your card was declined" in client.get(f"{path}?declined=1").text
    assert client.post(f"{path}/pay?scenario=card_stolen").status_code == 400
    assert ex.mp.ledger.balances("3") == []
