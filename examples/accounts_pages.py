"""The mentor's side of the examples: set up payouts (Stripe Connect onboarding) and ask for one.

No payments logic: mentorpay decides (``mp.accounts``, ``mp.payouts``); this module parses the
requests, renders a page, and mounts the routes on either framework:

``GET /mentor/account``
    The demo mentor's page: onboarding state and what Stripe still needs, balance, a "Set up
    payouts" button and a payout request form (both call the JSON routes below as the mentor).
``POST /mentor/account/onboard``
    ``mp.accounts.onboard(user, ...)``: ``{"url": ...}`` of a fresh onboarding link.
``POST /mentor/account/payouts``
    ``{"amount": "40.00", "currency": "gbp"}`` -> ``mp.payouts.request(user, ...)``.
``GET /fake-connect/{account_id}/{nonce}``, ``POST .../complete``
    Offline mode only: :class:`mentorpay.testing.OfflineConnect`, standing in for Stripe's
    hosted onboarding (it enables the fake account and delivers the signed account.updated).
"""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at run time,
# and those name the adapter's dependencies passed in to mount_fastapi.
import html
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urljoin

from examples import common
from mentorpay import AccountStatus, BalanceView, InvalidRequestError, NotFoundError
from mentorpay.testing import FakeGateway, OfflineConnect

if TYPE_CHECKING:
    from fastapi import FastAPI
    from flask import Flask

__all__ = [
    "ACCOUNT_PAGE_PATH",
    "account_page_html",
    "mount_fastapi",
    "mount_flask",
    "offline_connect",
    "onboard",
    "request_payout",
]

ACCOUNT_PAGE_PATH: Final = "/mentor/account"

_HEAD: Final = (
    "<!doctype html><html><head><meta charset='utf-8'><title>Your payouts</title>"
    "<style>body{font-family:sans-serif;max-width:36rem;margin:3rem auto}"
    "button{font-size:1.2rem;padding:.6rem 1.4rem}</style></head><body>"
)


def offline_connect(ex: common.Example) -> OfflineConnect:
    """The offline onboarding page of this example, or NotFoundError (404) with real Stripe."""
    gateway = ex.mp.gateway
    if ex.offline is None or not isinstance(gateway, FakeGateway):
        raise NotFoundError("the offline onboarding is off because STRIPE_SECRET_KEY is set")
    return OfflineConnect(gateway, ex.mp.config.webhook_secrets[0].get_secret_value())


def onboard(ex: common.Example, user: str, base_url: str) -> dict[str, Any]:
    """A fresh onboarding link for the signed-in mentor (``url`` absolute on this host)."""
    page = urljoin(base_url, ACCOUNT_PAGE_PATH)
    link = ex.mp.accounts.onboard(user, refresh_url=page + "?refresh=1", return_url=page)
    body = link.as_dict()
    body["url"] = urljoin(base_url, link.url)
    return body


def request_payout(ex: common.Example, user: str, raw: bytes) -> dict[str, Any]:
    """``{"amount": "40.00", "currency": "gbp"}`` -> a payout request of the signed-in mentor."""
    try:
        data: Any = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("amount"), str):
        raise InvalidRequestError('send JSON like {"amount": "40.00", "currency": "gbp"}')
    amount = common.money_query(data["amount"], data.get("currency"))
    return ex.mp.payouts.request(user, amount).as_dict()


def complete_action(account_id: str, nonce: str) -> str:
    """The offline onboarding page's form target."""
    return f"/fake-connect/{quote(account_id, safe='')}/{quote(nonce, safe='')}/complete"


# A plain navigation cannot send the demo's X-Demo-User header, so the buttons call the JSON
# routes with it, as the index page does for checkout.
_JS = """
const user = {"%s": "%s"};
const error = document.getElementById("error");
document.getElementById("onboard").onclick = async () => {
  const r = await fetch("/mentor/account/onboard", {method: "POST", headers: user});
  const body = await r.json();
  if (r.ok) { location.href = body.url; } else { error.textContent = body.message; }
};
document.getElementById("request-payout").onclick = async () => {
  const r = await fetch("/mentor/account/payouts", {
    method: "POST", headers: {...user, "Content-Type": "application/json"},
    body: JSON.stringify({amount: document.getElementById("amount").value, currency: "gbp"}),
  });
  const body = await r.json();
  const out = document.getElementById("payout-status");
  if (r.ok) { out.textContent = "Payout " + body.id + " " + body.status; }
  else { error.textContent = body.message; }
};
"""


def account_page_html(
    mentor_id: str, status: AccountStatus | None, balances: list[BalanceView]
) -> str:
    """The mentor's page: onboarding state, what is due, balance, and the two buttons."""
    esc = html.escape
    state = status.state if status is not None else "not set up"
    due = ", ".join(status.currently_due) if status is not None else ""
    balance = "".join(
        f"<li class='available' id='available-{esc(v.currency)}'>{esc(str(v.available))}</li>"
        for v in balances
    )
    return (
        _HEAD
        + f"<h1>Mentor {esc(mentor_id)}: payouts</h1>"
        + "<p><small>DEMO: this page acts as mentor "
        + f"{esc(common.DEMO_MENTOR)}.</small></p>"
        + f"<p>Stripe account: <b id='account-state'>{esc(state)}</b></p>"
        + (f"<p>Stripe still needs: <span id='due'>{esc(due)}</span></p>" if due else "")
        + "<button id='onboard' type='button'>Set up payouts</button>"
        + f"<h2>Available</h2><ul id='balance'>{balance or '<li>nothing yet</li>'}</ul>"
        + "<input id='amount' value='40.00' aria-label='amount'> GBP "
        + "<button id='request-payout' type='button'>Request payout</button>"
        + "<p id='payout-status' role='status'></p><p id='error' role='alert'></p>"
        + f"<script>{_JS % (common.DEMO_USER_HEADER, esc(mentor_id))}</script></body></html>"
    )


def _page(ex: common.Example) -> str:
    mentor = common.DEMO_MENTOR
    return account_page_html(mentor, ex.mp.accounts.status(mentor), ex.mp.balances(mentor))


def mount_flask(
    app: "Flask", ex: common.Example, user: Callable[[], str], body: Callable[[int], bytes]
) -> None:
    """Add the routes to a Flask app (``user``: the signed-in user; ``body``: capped body)."""
    # Imported here: each app loads only its own framework.
    from flask import redirect, request  # noqa: PLC0415

    limit = ex.mp.config.max_payload_bytes

    @app.get(ACCOUNT_PAGE_PATH)
    def mentor_account() -> str:
        return _page(ex)

    @app.post(ACCOUNT_PAGE_PATH + "/onboard")
    def mentor_onboard() -> dict[str, Any]:
        return onboard(ex, user(), request.url_root)

    @app.post(ACCOUNT_PAGE_PATH + "/payouts")
    def mentor_payout() -> dict[str, Any]:
        return request_payout(ex, user(), body(limit))

    @app.get("/fake-connect/<account_id>/<nonce>")
    def fake_connect(account_id: str, nonce: str) -> str:
        action = complete_action(account_id, nonce)
        return offline_connect(ex).page_html(account_id, nonce, action)

    @app.post("/fake-connect/<account_id>/<nonce>/complete")
    def fake_connect_complete(account_id: str, nonce: str) -> Any:
        hook = common.webhook_url(request.url_root)
        done = offline_connect(ex).complete_and_deliver(account_id, nonce, hook, ex.deliver)
        return redirect(done.return_url, code=303)


def mount_fastapi(app: "FastAPI", ex: common.Example, user: Any, body: Any) -> None:
    """Add the routes to a FastAPI app (``user``/``body``: its dependency annotations)."""
    from fastapi import Request  # noqa: PLC0415 - each app loads only its own framework
    from fastapi.responses import HTMLResponse, RedirectResponse  # noqa: PLC0415

    @app.get(ACCOUNT_PAGE_PATH, response_class=HTMLResponse)
    def mentor_account() -> HTMLResponse:
        return HTMLResponse(_page(ex))

    @app.post(ACCOUNT_PAGE_PATH + "/onboard")
    def mentor_onboard(request: Request, signed_in: user) -> dict[str, Any]:
        return onboard(ex, signed_in, str(request.base_url))

    @app.post(ACCOUNT_PAGE_PATH + "/payouts")
    def mentor_payout(signed_in: user, raw: body) -> dict[str, Any]:
        return request_payout(ex, signed_in, raw)

    @app.get("/fake-connect/{account_id}/{nonce}", response_class=HTMLResponse)
    def fake_connect(account_id: str, nonce: str) -> HTMLResponse:
        action = complete_action(account_id, nonce)
        return HTMLResponse(offline_connect(ex).page_html(account_id, nonce, action))

    @app.post("/fake-connect/{account_id}/{nonce}/complete")
    def fake_connect_complete(request: Request, account_id: str, nonce: str) -> RedirectResponse:
        # Plain def (threadpool): the loop stays free to serve the webhook this POSTs to us.
        hook = common.webhook_url(str(request.base_url))
        done = offline_connect(ex).complete_and_deliver(account_id, nonce, hook, ex.deliver)
        return RedirectResponse(done.return_url, status_code=303)
