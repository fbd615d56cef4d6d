"""The mentor's page of the examples: balances, earnings per day as a chart, a payout request
form and their payout requests. Framework-neutral: the adapters route to it.

mentorpay computes everything (``mp.dashboard.earnings``, ``mp.payouts.request``); this module
renders HTML and parses the form. The page shows the signed-in user's own figures only (see
:mod:`examples.operator_pages` for the demo sign-in).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from examples.charts import money_chart
from examples.operator_pages import PAGE_HEAD
from mentorpay import InvalidRequestError, MentorEarnings, Money, PlanPurchaseView

__all__ = ["mentor_html", "payout_amount"]


def payout_amount(fields: dict[str, str]) -> Money:
    """The payout form's ``amount`` (e.g. ``20.00``) and ``currency`` as Money; else 400."""
    amount, currency = fields.get("amount", "").strip(), fields.get("currency", "").strip()
    if not amount or not currency:
        raise InvalidRequestError("give an amount and a currency", field="amount")
    return Money.parse(amount, currency)


def _earned(view: PlanPurchaseView) -> Money:
    return sum((p.mentor_payout for p in view.periods), Money.zero(view.price.currency))


def _plans_sold(plans: Sequence[PlanPurchaseView]) -> str:
    """The mentor's plans sold and their share of each paid period (already in the balances:
    a plan's period is a ledger payment like a booking)."""
    esc = html.escape
    rows = "".join(
        f"<tr id='sold-{esc(v.id)}'><td>{esc(v.plan_id)}</td><td>{esc(v.mentee_id)}</td>"
        f"<td class='status'>{esc(v.status)}</td><td class='periods'>{len(v.periods)}</td>"
        f"<td class='earned'>{esc(str(_earned(v)))}</td></tr>"
        for v in plans
        if v.periods
    )
    return (
        "<h2>Plan earnings</h2><table id='plans-sold'><tr><th>Plan</th><th>Mentee</th>"
        "<th>Status</th><th>Paid periods</th><th>Earned</th></tr>"
        f"{rows or '<tr><td colspan=5>no plan sold yet</td></tr>'}</table>"
    )


def mentor_html(
    page: MentorEarnings,
    *,
    clock: str = "",
    notice: str = "",
    plans: Sequence[PlanPurchaseView] = (),
) -> str:
    """The mentor's page; ``clock`` is the offline clock's section, ``notice`` a message,
    ``plans`` the mentor's plans sold."""
    esc = html.escape
    rows = "".join(
        f"<tr id='balance-{esc(b.currency)}'><td>{esc(b.currency)}</td>"
        f"<td class='pending'>{esc(str(b.pending))}</td>"
        f"<td class='available'>{esc(str(b.available))}</td>"
        f"<td class='reserved'>{esc(str(b.reserved))}</td>"
        f"<td class='withdrawn'>{esc(str(b.withdrawn))}</td></tr>"
        for b in page.balances
    )
    charts = "".join(
        money_chart(
            f"Earnings per day ({currency})",
            page.days,
            {"Earned": values},
            chart_id=f"chart-earned-{currency}",
            kind="line",
        )
        for currency, values in page.earned.items()
    )
    options = "".join(
        f"<option value='{esc(b.currency)}'>{esc(b.currency)}</option>" for b in page.balances
    )
    form = (
        "<form id='payout-form' method='post' action='/mentor/payouts'>"
        "<label>Amount <input id='payout-amount' name='amount' inputmode='decimal' "
        "placeholder='20.00' required></label> "
        f"<select id='payout-currency' name='currency'>{options}</select> "
        "<button id='request-payout' type='submit'>Request payout</button></form>"
        if page.balances
        else "<p>Nothing earned yet.</p>"
    )
    payouts = "".join(
        f"<tr id='payout-{p.id}'><td>{p.id}</td><td class='amount'>{esc(str(p.amount))}</td>"
        f"<td class='status'>{esc(p.status)}</td></tr>"
        for p in page.payouts
    )
    return (
        PAGE_HEAD.format(title="My earnings")
        + f"<h1>Earnings of mentor <span id='user'>{esc(page.mentor_id)}</span></h1>"
        + (f"<p id='notice' role='status'>{esc(notice)}</p>" if notice else "")
        + "<table id='balances'><tr><th>Currency</th><th>Pending</th><th>Available</th>"
        f"<th>Requested</th><th>Paid out</th></tr>{rows}</table>"
        + f"<section id='charts'>{charts}</section>"
        + f"<h2>Request a payout</h2>{form}"
        + "<h2>My payouts</h2><table id='payouts'><tr><th>Id</th><th>Amount</th>"
        f"<th>Status</th></tr>{payouts or '<tr><td colspan=3>none yet</td></tr>'}</table>"
        + _plans_sold(plans)
        + f"{clock}</body></html>"
    )
