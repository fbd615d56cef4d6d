"""The examples' plans pages (examples/plan_pages.py) in Flask and FastAPI alike: buying a
monthly plan and a package on the offline checkout, booking with a credit, cancelling at period
end, the portal offline, the mentor's plan earnings, renewals on the offline clock, and that
nobody else can book with or cancel my plan."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest
from examples import fastapi_app, flask_app
from examples.common import DEMO_MENTOR, Example
from fastapi.testclient import TestClient

from mentorpay.testing import SignedEvent

MENTEE = {"X-Demo-User": "7"}
OTHER = {"X-Demo-User": "8"}
MENTOR = {"X-Demo-User": DEMO_MENTOR}
MONTHLY, PACKAGE = f"monthly-{DEMO_MENTOR}", f"pack5-{DEMO_MENTOR}"


class Response(Protocol):
    """What both test clients answer."""

    status_code: int
    headers: Any
    text: str


class Client(Protocol):
    """What both test clients offer."""

    def get(self, url: str, **kwargs: Any) -> Any: ...
    def post(self, url: str, **kwargs: Any) -> Any: ...


class App:
    """One example app (Flask or FastAPI) offline, its test client and its Example."""

    def __init__(self, client: Client, example: Example) -> None:
        self.client = client
        self.ex = example

    def buy(self, plan_id: str, headers: dict[str, str] = MENTEE) -> str:
        """Buy ``plan_id`` on the offline checkout with the card; the purchase id."""
        response = self.client.post(f"/plans/{plan_id}/checkout", headers=headers)
        assert response.status_code == 303, response.text
        path = urlsplit(response.headers["Location"]).path
        page = self.client.get(path)
        assert page.status_code == 200 and "id='plan'" in page.text
        paid = self.client.post(path + "/pay?scenario=card")
        assert paid.status_code == 303, paid.text
        assert urlsplit(paid.headers["Location"]).path == "/plans"
        user = headers["X-Demo-User"]
        return next(
            v.id
            for v in self.ex.mp.plans.list_purchases(mentee_id=user)
            if v.plan_id == plan_id and v.status in ("active", "paid")
        )

    def page(self, headers: dict[str, str] = MENTEE) -> str:
        """The plans page's HTML."""
        response = self.client.get("/plans", headers=headers)
        assert response.status_code == 200, response.text
        text: str = response.text
        return text


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "MENTORPAY_DATABASE_URL": f"sqlite:///{tmp_path / 'examples.db'}",
        "MENTORPAY_OFFLINE": "1",
    }


@pytest.fixture(params=["flask", "fastapi"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    """Each example app offline; the offline checkout delivers webhooks through its client."""
    clients: list[Any] = []

    def deliver(url: str, event: SignedEvent) -> int:
        headers = {"Stripe-Signature": event.signature, "Content-Type": "application/json"}
        body = {"content" if request.param == "fastapi" else "data": event.body}
        return int(clients[0].post(urlsplit(url).path, headers=headers, **body).status_code)

    if request.param == "flask":
        flask = flask_app.create_app(_env(tmp_path), deliver=deliver)
        clients.append(flask.test_client())
        example: Example = flask.extensions["mentorpay_example"]
        yield App(clients[0], example)
        example.mp.engine.dispose()
    else:
        fast = fastapi_app.create_app(_env(tmp_path), deliver=deliver)
        with TestClient(fast, follow_redirects=False) as client:
            clients.append(client)
            yield App(client, fast.state.example)
        fast.state.example.mp.engine.dispose()


def test_the_plans_page_lists_plans_for_sale(app: App) -> None:
    """Both demo plans are for sale, with buy buttons and the monthly price per month."""
    page = app.page()
    assert f"id='buy-{MONTHLY}'" in page and f"id='buy-{PACKAGE}'" in page
    assert "per month" in page and "none yet" in page


def test_the_plans_page_needs_a_user(app: App) -> None:
    """Anonymous: 401, and no checkout is started."""
    assert app.client.get("/plans").status_code == 401
    assert app.client.post(f"/plans/{MONTHLY}/checkout").status_code == 401


def test_buying_a_monthly_plan_shows_its_credits(app: App) -> None:
    """The monthly plan bought offline is active with 4 credits and one period."""
    purchase = app.buy(MONTHLY)
    page = app.page()
    assert f"id='purchase-{purchase}'" in page
    row = page.split(f"id='purchase-{purchase}'")[1].split("</tr>")[0]
    assert "<td class='credits'>4</td>" in row and "active" in row
    assert row.count("<li>") == 1


def test_booking_with_a_plan_spends_a_credit(app: App) -> None:
    """Book a session with the package: one credit spent, the booking paid with it."""
    purchase = app.buy(PACKAGE)
    response = app.client.post(f"/plans/{purchase}/book", headers=MENTEE)
    assert response.status_code == 303, response.text
    assert app.ex.mp.plans.get(purchase).credits_left == 4
    assert "<td class='credits'>4</td>" in app.page()


def test_another_user_cannot_book_with_or_cancel_my_plan(app: App) -> None:
    """Another user gets 403 on book and cancel; my credits and status are untouched."""
    purchase = app.buy(MONTHLY)
    assert app.client.post(f"/plans/{purchase}/book", headers=OTHER).status_code == 403
    assert app.client.post(f"/plans/{purchase}/cancel", headers=OTHER).status_code == 403
    assert app.client.post(f"/plans/{purchase}/book").status_code == 401
    view = app.ex.mp.plans.get(purchase)
    assert (view.credits_left, view.cancel_at_period_end) == (4, False)
    assert f"purchase-{purchase}" not in app.page(OTHER)


def test_cancelling_ends_the_plan_at_period_end(app: App) -> None:
    """Cancel: the plan stays active until the period's end, with its credits."""
    purchase = app.buy(MONTHLY)
    response = app.client.post(f"/plans/{purchase}/cancel", headers=MENTEE)
    assert response.status_code == 303, response.text
    view = app.ex.mp.plans.get(purchase)
    assert (view.status, view.cancel_at_period_end, view.credits_left) == ("active", True, 4)
    assert "ends at period end" in app.page()


def test_the_portal_offline_is_a_local_notice(app: App) -> None:
    """Offline, the portal route shows a local page instead of leaving for billing.stripe.com."""
    app.buy(MONTHLY)
    response = app.client.get("/plans/portal", headers=MENTEE)
    assert response.status_code == 200 and "portal-offline" in response.text
    assert app.client.get("/plans/portal", headers=OTHER).status_code == 404


def test_the_mentor_page_shows_plan_earnings(app: App) -> None:
    """The mentor's page lists the plan sold with its share, already in the pending balance."""
    purchase = app.buy(MONTHLY)
    response = app.client.get("/mentor", headers=MENTOR)
    assert response.status_code == 200
    assert f"id='sold-{purchase}'" in response.text
    assert "72.00" in response.text  # 80.00 less the 10% commission, pending


def test_the_offline_clock_renews_and_expires(app: App) -> None:
    """Advancing the clock a month renews the plan and lapses the first period's credits."""
    purchase = app.buy(MONTHLY)
    app.client.post(f"/plans/{purchase}/book", headers=MENTEE)
    for _ in range(31):
        response = app.client.post("/fake-checkout/advance?days=1&next=/plans")
        assert response.status_code == 303, response.text
    view = app.ex.mp.plans.get(purchase)
    assert len(view.periods) == 2
    assert view.credits_left == 4  # the first period's 3 unused credits lapsed
    assert view.periods[0].status == "expired" or view.periods[1].status == "expired"
    assert app.ex.mp.ledger.verify(full=True).ok


def test_the_page_escapes_what_it_shows(app: App) -> None:
    """A user id with markup characters is refused by the demo sign-in or escaped."""
    response = app.client.get("/plans", headers={"X-Demo-User": "<b>x</b>"})
    assert "<b>x</b>" not in response.text
