"""The offline checkout's plan sessions: how the page describes a plan, and what paying one does.

A package session is paid like a booking (its events flow through
:func:`~mentorpay.testing._scenarios.play`). A subscription-mode session is paid through
:class:`~mentorpay.testing.FakeBilling` on the same gateway and clock: the session completes,
the subscription is created and its first invoice paid; its renewals come with the clock
(:meth:`OfflineCheckout.advance <mentorpay.testing.OfflineCheckout.advance>`). Only the
working card is offered for subscriptions: Stripe's other scenarios (a bank debit, a dispute)
do not apply to a subscription's first invoice the way the fake plays them for bookings.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from mentorpay.errors import InvalidRequestError
from mentorpay.gateway.protocol import PlanCheckoutParams
from mentorpay.plans.info import PlanSource
from mentorpay.testing._fake_renewals import BillingEvents, FakeBilling
from mentorpay.testing._gateway import FakeGateway
from mentorpay.testing._scenarios import SCENARIOS, Scenario

__all__ = ["plan_description_html", "plan_scenarios", "subscribe", "subscription_steps"]


def plan_scenarios(params: PlanCheckoutParams | None) -> dict[Scenario, str]:
    """The buttons the page offers: every scenario, or the working card for a subscription."""
    if params is not None and params.kind == "subscription":
        return {"card": SCENARIOS["card"]}
    return dict(SCENARIOS)


def plan_description_html(params: PlanCheckoutParams, plans: PlanSource | None) -> str:
    """What the mentee buys: the line item's name, its sessions (when the host's plans are
    known) and the price, "per month" (or the plan's interval) for a subscription."""
    esc = html.escape
    amount = str(params.amount)
    if params.kind == "subscription":
        unit = params.interval
        every = unit if params.interval_count == 1 else f"{params.interval_count} {unit}s"
        amount += f" per {every}"
    plan = plans.get_plan(params.plan_id) if plans is not None else None
    sessions = (
        f" (<span id='plan-sessions'>{plan.sessions}</span> sessions)" if plan is not None else ""
    )
    return (
        f"<p>Plan <b id='plan'>{esc(params.line_item_name)}</b>{sessions} with mentor "
        f"{esc(params.mentor_id)}: <b id='amount'>{esc(amount)}</b></p>"
    )


def subscribe(billing: FakeBilling, session_id: str, scenario: Scenario) -> BillingEvents:
    """Pay a subscription-mode session with ``scenario`` (the working card only; else 400)."""
    if scenario != "card":
        raise InvalidRequestError(
            f"the offline checkout pays a subscription with the working card only, not "
            f"{scenario!r}: choose the card scenario",
            field="scenario",
            session_id=session_id,
        )
    return billing.subscribe(session_id)


def subscription_steps(gateway: FakeGateway) -> list[tuple[datetime, str]]:
    """``(due, label)`` of each live subscription's next renewal (or end, when it cancels at
    its period's end), for the page's list of what Stripe does next."""
    steps: list[tuple[datetime, str]] = []
    for sub in gateway.subscriptions:
        if sub["status"] == "canceled":
            continue
        end = datetime.fromtimestamp(sub["items"]["data"][0]["current_period_end"], UTC)
        verb = "ends" if sub["cancel_at_period_end"] else "renews"
        steps.append((end, f"subscription {sub['id']} {verb}"))
    return steps
