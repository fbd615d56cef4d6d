"""The operator's page of the examples: charts, inbox health, the payout queue with approve and
execute buttons, the last reconciliation. Framework-neutral: the adapters route to it.

mentorpay computes everything (``mp.dashboard.overview``); this module checks who is asking
and renders HTML. The same helpers serve the mentor's page (:mod:`examples.mentor_pages`).

OPERATOR CHECK, DEMO ONLY: the operators are the user ids in ``MENTORPAY_OPERATORS``
(comma-separated; default ``ops``), and the user is the ``X-Demo-User`` header or, for pages
opened in a browser, the ``mentorpay_demo_user`` cookie that ``/demo/sign-in?user=ops`` sets.
A host replaces both with its own authentication and roles (``flask_login`` plus a role
column, an OAuth2 scope, ...). The cookie is ``SameSite=Strict``, so another site cannot make
a signed-in operator's browser POST the approve or execute forms; a host adds its usual CSRF
tokens on top.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import parse_qs

from examples.charts import money_chart
from examples.common import AuthenticationRequiredError, Example, current_user
from mentorpay import DashboardOverview, InvalidRequestError, NotAuthorizedError, PayoutView

__all__ = [
    "DEMO_USER_COOKIE",
    "OPERATORS_ENV",
    "PAGE_HEAD",
    "clock_html",
    "clock_section",
    "days_query",
    "form_fields",
    "operator_html",
    "page_user",
    "require_operator",
    "safe_next",
    "sign_in_user",
]

#: Read by :func:`examples.common.build_example` into ``Example.operators``.
OPERATORS_ENV: Final = "MENTORPAY_OPERATORS"
#: DEMO ONLY: the cookie naming the signed-in user of pages opened in a browser.
DEMO_USER_COOKIE: Final = "mentorpay_demo_user"
_USER_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")

PAGE_HEAD: Final = (
    "<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
    "<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto}}"
    "td,th{{padding:.2rem .8rem;text-align:left}}form.inline{{display:inline}}"
    ".bad{{color:#b00}}.ok{{color:#070}}</style></head><body>"
)


def page_user(header_value: str | None, cookie_value: str | None) -> str:
    """The signed-in user: the ``X-Demo-User`` header, else the demo cookie; else 401."""
    if header_value and header_value.strip():
        return current_user(header_value)
    if cookie_value and _USER_ID.fullmatch(cookie_value):
        return cookie_value
    raise AuthenticationRequiredError(
        "sign in first: open /demo/sign-in?user=<id> (DEMO ONLY) or send X-Demo-User",
        cookie=DEMO_USER_COOKIE,
    )


def require_operator(user: str, operators: frozenset[str]) -> str:
    """THE OPERATOR CHECK: ``user`` if an operator, else :class:`NotAuthorizedError` (403)."""
    if user not in operators:
        raise NotAuthorizedError(
            "only operators may use the operator dashboard", user_id=user, env=OPERATORS_ENV
        )
    return user


def sign_in_user(value: str | None) -> str:
    """A user id for the demo sign-in (letters, digits, ``_.-``, at most 64); else 400."""
    if not value or not _USER_ID.fullmatch(value):
        raise InvalidRequestError("give ?user=<id> (letters, digits, _ . -)", field="user")
    return value


def safe_next(value: str | None) -> str:
    """Where to go after a form: a path on this site only (never ``//host`` or a URL)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def days_query(value: str | None) -> timedelta:
    """``?days=3`` for the offline clock: 1 to 60 days; else 400."""
    try:
        days = int(value or "1")
    except ValueError:
        days = 0
    if not 1 <= days <= 60:
        raise InvalidRequestError("days must be an integer from 1 to 60", field="days")
    return timedelta(days=days)


def form_fields(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (read capped by the adapter)."""
    try:
        parsed = parse_qs(body.decode("utf-8"), strict_parsing=False, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError("send an HTML form (UTF-8, at most 20 fields)") from None
    return {k: v[0] for k, v in parsed.items()}


def clock_html(now: datetime, upcoming: Sequence[tuple[datetime, str]], next_path: str) -> str:
    """The offline clock: what Stripe does next, and buttons moving the fake clock on."""
    esc = html.escape
    items = "".join(
        f"<li>{esc(due.strftime('%Y-%m-%d %H:%M'))}: {esc(label)}</li>" for due, label in upcoming
    )
    buttons = "".join(
        f"<form class='inline' method='post' "
        f"action='/fake-checkout/advance?days={d}&amp;next={esc(next_path)}'>"
        f"<button id='advance-{d}' type='submit'>+{d} day{'s' if d > 1 else ''}</button></form> "
        for d in (1, 3, 14)
    )
    return (
        "<section id='offline-clock'><h2>Offline clock (not Stripe)</h2>"
        f"<p>Stripe's fake clock: <b id='clock-now'>{esc(now.strftime('%Y-%m-%d %H:%M'))}</b> "
        "UTC. Bank debits, inquiries and disputes happen when it passes their time.</p>"
        f"<ul id='upcoming'>{items or '<li>nothing scheduled</li>'}</ul>{buttons}</section>"
    )


def clock_section(ex: Example, next_path: str) -> str:
    """The offline clock's section of a page; empty with real Stripe."""
    if ex.offline is None:
        return ""
    return clock_html(ex.offline.clock(), ex.offline.upcoming(), next_path)


def _payout_rows(payouts: Sequence[PayoutView], action: str) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr id='payout-{p.id}'><td>{p.id}</td><td>{esc(p.mentor_id)}</td>"
        f"<td class='amount'>{esc(str(p.amount))}</td><td class='status'>{esc(p.status)}</td>"
        f"<td><form class='inline' method='post' action='/operator/payouts/{p.id}/{action}'>"
        f"<button id='{action}-{p.id}' type='submit'>{action.title()}</button></form></td></tr>"
        for p in payouts
    )
    return rows or f"<tr><td colspan='5'>none waiting to {action}</td></tr>"


def operator_html(view: DashboardOverview, *, user: str, clock: str = "") -> str:
    """The operator's page for one overview; ``clock`` is the offline clock's section."""
    esc = html.escape
    charts = "".join(
        f"<h3>{esc(c.currency)}</h3>"
        f"<p class='totals' id='totals-{esc(c.currency)}'>volume {esc(str(c.total('volume')))}, "
        f"commission {esc(str(c.total('commission')))}, refunded "
        f"{esc(str(c.total('refunded')))}, disputed {esc(str(c.total('disputed')))}"
        + (
            f", Stripe fees {esc(str(c.total('stripe_fees')))}, net commission "
            f"{esc(str(c.total('net_commission')))}"
            if c.extra
            else ""
        )
        + "</p>"
        + money_chart(
            f"Volume and commission per day ({c.currency})",
            c.days,
            {"Volume": c.volume, "Commission": c.commission}
            | ({"Net commission": c.extra["net_commission"]} if c.extra else {}),
            chart_id=f"chart-volume-{c.currency}",
        )
        + money_chart(
            f"Refunds, disputes and fees per day ({c.currency})",
            c.days,
            {"Refunded": c.refunded, "Disputed": c.disputed}
            | ({"Stripe fees": c.extra["stripe_fees"]} if c.extra else {}),
            chart_id=f"chart-losses-{c.currency}",
        )
        for c in view.currencies
    )
    inbox = view.inbox
    newest = "".join(
        f"<li>{esc(status)}: "
        + ", ".join(f"<code>{esc(e.event_id)}</code> ({esc(e.type)})" for e in events)
        + "</li>"
        for status, events in inbox.newest.items()
        if events
    )
    review = ", ".join(f"<code>{esc(r.payment_intent_id)}</code>" for r in inbox.review)
    last = view.last_reconciliation
    recon = (
        "<p id='reconciliation'>No reconciliation recorded yet: run "
        "<code>mentorpay reconcile --since ...</code>.</p>"
        if last is None
        else f"<p id='reconciliation' class='{'ok' if last.ok else 'bad'}'>Last run "
        f"{esc(last.finished_at.strftime('%Y-%m-%d %H:%M'))} UTC over "
        f"{esc(last.since.date().isoformat())} .. {esc(last.until.date().isoformat())}: "
        f"{last.discrepancies} difference(s), {last.events_applied} applied.</p>"
    )
    accounts = "".join(
        f"<li>{esc(str(a.get('mentor_id', '?')))}: {esc(str(a.get('reason', '')))}</li>"
        for a in view.accounts_needing_attention
    )
    return (
        PAGE_HEAD.format(title="mentorpay operator")
        + f"<h1>Operator dashboard</h1><p>Signed in as <b id='user'>{esc(user)}</b> "
        f"(operator). {esc(view.since.date().isoformat())} .. "
        f"{esc(view.until.date().isoformat())}, per UTC day.</p>"
        + f"<section id='charts'><h2>Money</h2>{charts or '<p>No payments in the period.</p>'}"
        + "</section><section id='inbox'><h2>Webhook inbox</h2>"
        + f"<p class='{'ok' if inbox.healthy else 'bad'}'>failed <b id='inbox-failed'>"
        f"{inbox.failed}</b>, deferred <b id='inbox-deferred'>{inbox.deferred}</b>, rejected "
        f"<b id='inbox-rejected'>{inbox.rejected}</b>, payments needing review "
        f"<b id='inbox-review'>{inbox.needs_review}</b></p><ul>{newest}</ul>"
        + (f"<p>Under review: {review}</p>" if review else "")
        + "</section><section id='payouts'><h2>Payout queue</h2><table>"
        "<tr><th>Id</th><th>Mentor</th><th>Amount</th><th>Status</th><th></th></tr>"
        + _payout_rows(view.payouts.requested, "approve")
        + _payout_rows(view.payouts.approved, "execute")
        + "</table></section><section><h2>Mentors whose accounts need attention</h2>"
        + f"<ul id='accounts'>{accounts or '<li>none</li>'}</ul></section>"
        + f"<section><h2>Reconciliation</h2>{recon}</section>{clock}</body></html>"
    )
