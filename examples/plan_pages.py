"""The mentee's plans page of the examples: monthly plans and packages for sale, and the user's
own purchases with their status, credits left and periods. Framework-neutral: the adapters only
route to it (``mount_flask`` / ``mount_fastapi``).

mentorpay does everything about money (``mp.checkout.create_plan_session``, ``mp.plans``); this
module checks who is asking, stands in for the host's booking of a session, and renders HTML.

Routes: ``GET /plans``; ``POST /plans/<plan_id>/checkout`` (to Checkout: the offline page when
offline); ``POST /plans/<purchase_id>/book`` (books a demo session with the plan's mentor and
spends one credit); ``POST /plans/<purchase_id>/cancel`` (at the period's end);
``GET /plans/portal`` (Stripe's billing portal; offline, a local notice instead of a link off
this machine). The user is the demo's ``X-Demo-User`` header or sign-in cookie, as on the
mentor's page; the cookie is ``SameSite=Strict``, so another site cannot make a signed-in
browser POST these forms (a host adds its usual CSRF tokens on top). Only the purchase's mentee
may book with it or cancel it (403 for anyone else).
"""

import html
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urljoin

from examples import common
from examples import operator_pages as pages
from mentorpay import BookingInfo, NotAuthorizedError, PlanInfo, PlanPurchaseView
from mentorpay.testing import FakeGateway

if TYPE_CHECKING:
    from fastapi import FastAPI
    from flask import Flask

__all__ = [
    "PLANS_PATH",
    "book_with_plan",
    "cancel_plan",
    "mount_fastapi",
    "mount_flask",
    "plans_html",
    "portal",
    "portal_notice_html",
    "start_checkout",
]

PLANS_PATH: Final = "/plans"
_PORTAL_PREFIX: Final = "https://billing.stripe.com/"


def _action(purchase_or_plan_id: str, verb: str) -> str:
    return f"{PLANS_PATH}/{quote(purchase_or_plan_id, safe='')}/{verb}"


def _price(plan_price: str, kind: str, interval: str, count: int) -> str:
    if kind != "subscription":
        return plan_price
    return f"{plan_price} per {interval if count == 1 else f'{count} {interval}s'}"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value is not None else "?"


def _for_sale(plans: Sequence[PlanInfo]) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr id='plan-{esc(p.id)}'><td>{esc(p.label)}</td><td>{p.sessions}</td>"
        f"<td>{esc(_price(str(p.price), p.kind, p.interval, p.interval_count))}</td>"
        f"<td><form class='inline' method='post' action='{esc(_action(p.id, 'checkout'))}'>"
        f"<button id='buy-{esc(p.id)}' type='submit'>Buy</button></form></td></tr>"
        for p in plans
        if p.active
    )
    return (
        "<table id='for-sale'><tr><th>Plan</th><th>Sessions</th><th>Price</th><th></th></tr>"
        f"{rows or '<tr><td colspan=4>nothing for sale</td></tr>'}</table>"
    )


def _purchase_row(view: PlanPurchaseView, plans: common.Example) -> str:
    esc = html.escape
    plan = plans.plans.get_plan(view.plan_id)
    name = plan.label if plan is not None else view.plan_id
    periods = "".join(
        f"<li>{esc(_when(p.period_start))} to {esc(_when(p.expires_at))}: {esc(p.status)}, "
        f"{p.left} of {p.credits} left</li>"
        for p in view.periods
    )
    pid = esc(view.id)
    book = (
        f"<form class='inline' method='post' action='{esc(_action(view.id, 'book'))}'>"
        f"<button id='book-{pid}' type='submit'>Book a session</button></form>"
        if view.credits_left > 0
        else ""
    )
    cancel = (
        f"<form class='inline' method='post' action='{esc(_action(view.id, 'cancel'))}'>"
        f"<button id='cancel-{pid}' type='submit'>Cancel at period end</button></form>"
        if view.kind == "subscription"
        and view.status in ("active", "past_due")
        and not view.cancel_at_period_end
        else ""
    )
    status = view.status + (" (ends at period end)" if view.cancel_at_period_end else "")
    return (
        f"<tr id='purchase-{pid}'><td>{esc(name)}</td><td class='status'>{esc(status)}</td>"
        f"<td class='credits'>{view.credits_left}</td><td><ul class='periods'>{periods}</ul></td>"
        f"<td>{book} {cancel}</td></tr>"
    )


def plans_html(ex: common.Example, user: str, *, clock: str = "", notice: str = "") -> str:
    """The plans page of ``user``: what is for sale and their own purchases."""
    esc = html.escape
    mine = [
        v
        for v in ex.mp.plans.list_purchases(mentee_id=user)
        if v.status not in ("creating", "checkout", "abandoned")
    ]
    rows = "".join(_purchase_row(v, ex) for v in mine)
    return (
        pages.PAGE_HEAD.format(title="Mentorship plans")
        + f"<h1>Plans of <span id='user'>{esc(user)}</span></h1>"
        + (f"<p id='notice' role='status'>{esc(notice)}</p>" if notice else "")
        + "<h2>For sale</h2>"
        + _for_sale(ex.plans.all())
        + "<h2>My plans</h2><table id='purchases'><tr><th>Plan</th><th>Status</th>"
        "<th>Credits left</th><th>Periods</th><th></th></tr>"
        + (rows or "<tr><td colspan=5>none yet</td></tr>")
        + "</table>"
        + f"<p><a id='portal' href='{PLANS_PATH}/portal'>Manage billing (Stripe portal)</a></p>"
        + f"{clock}</body></html>"
    )


def start_checkout(ex: common.Example, plan_id: str, user: str, base_url: str) -> str:
    """Checkout of ``plan_id`` for ``user``; the absolute URL to send the browser to."""
    back = urljoin(base_url, PLANS_PATH)
    info = ex.mp.checkout.create_plan_session(
        plan_id, user_id=user, success_url=back, cancel_url=back
    )
    return urljoin(base_url, info.url)


def _own(ex: common.Example, purchase_id: str, user: str) -> PlanPurchaseView:
    view = ex.mp.plans.get(purchase_id)
    if view.mentee_id != user:
        raise NotAuthorizedError(
            "only the mentee who bought a plan may use it", plan_purchase_id=view.id
        )
    return view


def book_with_plan(ex: common.Example, purchase_id: str, user: str) -> str:
    """The host books a session with the plan's mentor (tomorrow) and pays it with one of
    ``user``'s credits; the booking's id. 403 unless ``user`` bought the plan."""
    view = _own(ex, purchase_id, user)
    booking = BookingInfo(
        id=f"plan-{uuid.uuid4().hex[:12]}",
        mentee_id=user,
        mentor_id=view.mentor_id,
        price=None,  # paid with a credit
        status="confirmed",
        starts_at=datetime.now(UTC) + timedelta(hours=30),
    )
    ex.bookings.add(booking)
    ex.mp.plans.consume(view.id, booking.id)
    return booking.id


def cancel_plan(ex: common.Example, purchase_id: str, user: str) -> None:
    """Cancel ``user``'s subscription at the end of its period (403 for anyone else)."""
    ex.mp.plans.cancel(purchase_id, user_id=user, at_period_end=True)


def portal(ex: common.Example, user: str, base_url: str) -> str | None:
    """The billing portal's URL for ``user``; None offline (the fake's URL would leave this
    machine for a page that does not exist: show :func:`portal_notice_html` instead)."""
    url = ex.mp.plans.portal_url(user, urljoin(base_url, PLANS_PATH))
    if isinstance(ex.mp.gateway, FakeGateway) and url.startswith(_PORTAL_PREFIX):
        return None
    return url


def portal_notice_html() -> str:
    """Offline: what Stripe's billing portal would offer, and the way back."""
    return (
        pages.PAGE_HEAD.format(title="Billing portal (offline)")
        + "<h1>Billing portal</h1><p id='portal-offline'>Offline mode: with Stripe this opens "
        "Stripe's billing portal (card, invoices, cancellation). Nothing to do here.</p>"
        + f"<p><a href='{PLANS_PATH}'>Back to my plans</a></p></body></html>"
    )


def mount_flask(app: "Flask", ex: common.Example, user: Callable[[], str]) -> None:
    """Add the routes to a Flask app (``user``: the page's signed-in user)."""
    from flask import redirect, request  # noqa: PLC0415 - each app loads only its own framework

    @app.get(PLANS_PATH)
    def plans_page() -> str:
        return plans_html(ex, user(), clock=pages.clock_section(ex, PLANS_PATH))

    @app.get(PLANS_PATH + "/portal")
    def plans_portal() -> Any:
        url = portal(ex, user(), request.url_root)
        return portal_notice_html() if url is None else redirect(url, code=303)

    @app.post(PLANS_PATH + "/<plan_id>/checkout")
    def plans_checkout(plan_id: str) -> Any:
        return redirect(start_checkout(ex, plan_id, user(), request.url_root), code=303)

    @app.post(PLANS_PATH + "/<purchase_id>/book")
    def plans_book(purchase_id: str) -> Any:
        book_with_plan(ex, purchase_id, user())
        return redirect(PLANS_PATH, code=303)

    @app.post(PLANS_PATH + "/<purchase_id>/cancel")
    def plans_cancel(purchase_id: str) -> Any:
        cancel_plan(ex, purchase_id, user())
        return redirect(PLANS_PATH, code=303)


def mount_fastapi(app: "FastAPI", ex: common.Example, user: Any) -> None:
    """Add the routes to a FastAPI app (``user``: its page-user dependency annotation)."""
    from fastapi import Request  # noqa: PLC0415 - each app loads only its own framework
    from fastapi.responses import HTMLResponse, RedirectResponse  # noqa: PLC0415

    @app.get(PLANS_PATH, response_class=HTMLResponse)
    def plans_page(signed_in: user) -> HTMLResponse:
        clock = pages.clock_section(ex, PLANS_PATH)
        return HTMLResponse(plans_html(ex, signed_in, clock=clock))

    @app.get(PLANS_PATH + "/portal", response_model=None)
    def plans_portal(request: Request, signed_in: user) -> HTMLResponse | RedirectResponse:
        url = portal(ex, signed_in, str(request.base_url))
        if url is None:
            return HTMLResponse(portal_notice_html())
        return RedirectResponse(url, status_code=303)

    @app.post(PLANS_PATH + "/{plan_id}/checkout")
    def plans_checkout(request: Request, plan_id: str, signed_in: user) -> RedirectResponse:
        url = start_checkout(ex, plan_id, signed_in, str(request.base_url))
        return RedirectResponse(url, status_code=303)

    @app.post(PLANS_PATH + "/{purchase_id}/book")
    def plans_book(purchase_id: str, signed_in: user) -> RedirectResponse:
        book_with_plan(ex, purchase_id, signed_in)
        return RedirectResponse(PLANS_PATH, status_code=303)

    @app.post(PLANS_PATH + "/{purchase_id}/cancel")
    def plans_cancel(purchase_id: str, signed_in: user) -> RedirectResponse:
        cancel_plan(ex, purchase_id, signed_in)
        return RedirectResponse(PLANS_PATH, status_code=303)
