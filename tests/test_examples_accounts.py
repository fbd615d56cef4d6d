"""The mentor's account pages of both examples through their test clients: onboarding on the
offline Connect page (account.updated delivered signed), payout requests, refusals."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from examples.common import Example
from flask.testing import FlaskClient

from mentorpay import Money
from mentorpay.testing import SignedEvent

MENTOR = {"X-Demo-User": "3"}


class Client:
    """One framework's test client behind one interface: post/get returning (status, body)."""

    def __init__(self, kind: str, tmp_path: Path, **env: str) -> None:
        environ = {
            "MENTORPAY_DATABASE_URL": f"sqlite:///{tmp_path / f'{kind}.db'}",
            "MENTORPAY_OFFLINE": "1",
            **env,
        }
        if kind == "flask":
            from examples.flask_app import create_app

            app = create_app(environ, deliver=self._deliver)
            self.example: Example = app.extensions["mentorpay_example"]
            self._client: Any = app.test_client()
        else:
            from examples.fastapi_app import create_app as create_fastapi
            from fastapi.testclient import TestClient

            api = create_fastapi(environ, deliver=self._deliver)
            self.example = api.state.example
            self._client = TestClient(api, follow_redirects=False)

    def _deliver(self, url: str, event: SignedEvent) -> int:
        headers = {"Stripe-Signature": event.signature, "Content-Type": "application/json"}
        return self.request("post", urlsplit(url).path, body=event.body, headers=headers).status

    def request(self, method: str, path: str, *, body: bytes | None = None, **kwargs: Any) -> Reply:
        """One request through the framework's client, as a :class:`Reply`."""
        call: Callable[..., Any] = getattr(self._client, method)
        if body is not None:
            kwargs["data" if isinstance(self._client, FlaskClient) else "content"] = body
        response = call(path, **kwargs)
        headers = {k.lower(): v for k, v in response.headers.items()}
        return Reply(response.status_code, response.text, headers)


@dataclass(frozen=True)
class Reply:
    """What both test clients answer, the same way."""

    status: int
    text: str
    headers: dict[str, str]

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.text)


@pytest.fixture(params=["flask", "fastapi"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    """Each example in offline mode with transfer payouts; webhooks go through its test client."""
    made = Client(request.param, tmp_path, MENTORPAY_PAYOUT_MODE="stripe_transfer")
    yield made
    made.example.mp.engine.dispose()


def fund(ex: Example) -> None:
    """Pay booking 42 through the fake and release it: 45.00 GBP available for mentor 3."""
    mp = ex.mp
    info = mp.checkout.create_session(
        "42", user_id="7", success_url="http://t/ok", cancel_url="http://t/no"
    )
    assert ex.offline is not None
    for event in ex.offline.pay(info.session_id).events:
        assert mp.webhooks.process(event.body, event.signature).http_status == 200
    mp.ledger.release("42")


def test_onboard_on_the_offline_page_then_request_and_execute_a_payout(client: Client) -> None:
    """Onboard link -> offline page -> Complete -> enabled; the payout then transfers."""
    fund(client.example)
    page = client.request("get", "/mentor/account")
    assert page.status == 200 and "not set up" in page.text
    started = client.request("post", "/mentor/account/onboard", headers=MENTOR)
    assert started.status == 200, started.text
    link = started.json()
    assert link["url"].startswith("http") and "/fake-connect/acct_" in link["url"]
    path = urlsplit(link["url"]).path
    onboarding = client.request("get", path)
    assert onboarding.status == 200 and 'id="complete"' in onboarding.text
    done = client.request("post", path + "/complete")
    assert done.status == 303
    assert done.headers["location"].endswith("/mentor/account")
    assert "enabled" in client.request("get", "/mentor/account").text
    again = client.request("post", path + "/complete")
    assert again.status == 409  # a link works once, as Stripe's

    asked = client.request(
        "post",
        "/mentor/account/payouts",
        json={"amount": "40.00", "currency": "gbp"},
        headers=MENTOR,
    )
    assert asked.status == 200, asked.text
    payout = asked.json()
    assert payout["status"] == "requested" and payout["destination"] == link["account_id"]
    mp = client.example.mp
    mp.payouts.approve(payout["id"], approver="ops")
    assert mp.payouts.execute(payout["id"]).transfer_id is not None


def test_payout_before_onboarding_is_refused_with_what_is_due(client: Client) -> None:
    """Requested before onboarding finished: accepted, but execute says what is due (409)."""
    fund(client.example)
    client.request("post", "/mentor/account/onboard", headers=MENTOR)
    asked = client.request(
        "post", "/mentor/account/payouts", json={"amount": "10.00"}, headers=MENTOR
    )
    assert asked.status == 200
    mp = client.example.mp
    payout_id = asked.json()["id"]
    mp.payouts.approve(payout_id, approver="ops")
    from mentorpay import AccountNotReadyError

    with pytest.raises(AccountNotReadyError):
        mp.payouts.execute(payout_id)
    assert mp.ledger.balance("3", "GBP").reserved == Money(1000, "GBP")


def test_the_json_routes_need_a_signed_in_mentor_and_valid_input(client: Client) -> None:
    """No user: 401; a malformed payout body: 400; an unknown onboarding link: 404."""
    assert client.request("post", "/mentor/account/onboard").status == 401
    bad = client.request("post", "/mentor/account/payouts", json={"amount": 40}, headers=MENTOR)
    assert bad.status == 400
    assert client.request("get", "/fake-connect/acct_x/al_nope").status == 404
