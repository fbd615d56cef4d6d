"""``mentorpay plans list|show|expire``: mentees' plan purchases, their periods and credits, and
the daily job that lapses unused credits (releasing the rest of each period's mentor share).

None of these needs the host's plans (a :class:`~mentorpay.PlanSource` serves checkout only):
they read and move what the database already holds.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from mentorpay._text_tables import table
from mentorpay.cli._context import facade, parse_when, print_json
from mentorpay.cli._output import EXIT_OK, Output
from mentorpay.plans.views import PlanPeriodView, PlanPurchaseView

__all__ = ["cmd_plans_expire", "cmd_plans_list", "cmd_plans_show"]


def _when(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _period_dict(p: PlanPeriodView) -> dict[str, Any]:
    return {
        "id": p.id,
        "status": p.status,
        "invoice_id": p.invoice_id,
        "payment_intent_id": p.payment_intent_id,
        "plan_id": p.plan_id,
        "amount": p.amount.amount,
        "currency": p.amount.currency,
        "credits": p.credits,
        "used": p.used,
        "left": p.left,
        "period_start": _when(p.period_start) or None,
        "period_end": _when(p.period_end) or None,
        "expires_at": _when(p.expires_at) or None,
        "mentor_payout": p.mentor_payout.amount,
    }


def _purchase_dict(v: PlanPurchaseView) -> dict[str, Any]:
    return {
        "id": v.id,
        "kind": v.kind,
        "plan_id": v.plan_id,
        "mentor_id": v.mentor_id,
        "mentee_id": v.mentee_id,
        "price": v.price.amount,
        "currency": v.price.currency,
        "sessions": v.sessions,
        "status": v.status,
        "subscription_id": v.subscription_id,
        "customer_id": v.customer_id,
        "cancel_at_period_end": v.cancel_at_period_end,
        "current_period_end": _when(v.current_period_end) or None,
        "canceled_at": _when(v.canceled_at) or None,
        "pending_plan_id": v.pending_plan_id,
        "created_at": _when(v.created_at),
        "credits_left": v.credits_left,
        "periods": [_period_dict(p) for p in v.periods],
    }


def cmd_plans_list(args: argparse.Namespace, out: Output) -> int:
    """Plan purchases (a mentee's, a mentor's, or all), newest first."""
    mp = facade(args)
    try:
        views = mp.plans.list_purchases(
            mentee_id=args.mentee, mentor_id=args.mentor, limit=args.limit
        )
    finally:
        mp.engine.dispose()
    if args.json:
        print_json(out, [_purchase_dict(v) for v in views])
        return EXIT_OK
    if not views:
        out.line("no plan purchases")
        return EXIT_OK
    rows: list[list[object]] = [
        [
            v.id,
            v.kind,
            v.plan_id,
            v.mentee_id,
            v.mentor_id,
            str(v.price),
            v.status,
            len(v.periods),
            v.credits_left,
        ]
        for v in views
    ]
    headers = ["id", "kind", "plan", "mentee", "mentor", "price", "status", "periods", "credits"]
    out.line(table(headers, rows))
    return EXIT_OK


def cmd_plans_show(args: argparse.Namespace, out: Output) -> int:
    """One purchase (by mentorpay's id or Stripe's subscription id) and its periods."""
    mp = facade(args)
    try:
        view = mp.plans.get(args.id)
    finally:
        mp.engine.dispose()
    if args.json:
        print_json(out, _purchase_dict(view))
        return EXIT_OK
    ending = " (cancels at period end)" if view.cancel_at_period_end else ""
    out.line(
        f"plan purchase {view.id}: {view.kind} {view.plan_id}, {view.price}, {view.status}{ending}"
    )
    out.line(f"mentee {view.mentee_id}, mentor {view.mentor_id}, {view.sessions} sessions")
    if view.subscription_id:
        out.line(f"subscription {view.subscription_id}, customer {view.customer_id or '-'}")
    out.line(f"credits left: {view.credits_left}")
    if not view.periods:
        out.line("no paid period yet")
        return EXIT_OK
    rows: list[list[object]] = [
        [
            p.id,
            p.status,
            str(p.amount),
            p.credits,
            p.used,
            p.left,
            _when(p.period_start)[:10],
            _when(p.expires_at)[:16],
            str(p.mentor_payout),
        ]
        for p in view.periods
    ]
    headers = [
        "period",
        "status",
        "amount",
        "credits",
        "used",
        "left",
        "start",
        "expires",
        "mentor_share",
    ]
    out.line(table(headers, rows))
    return EXIT_OK


def cmd_plans_expire(args: argparse.Namespace, out: Output) -> int:
    """Lapse the credits of every period past its end and release the rest of its share
    (run it daily)."""
    now = parse_when(args.now) if args.now else None
    mp = facade(args)
    try:
        lapsed = mp.plans.expire_due(now)
    finally:
        mp.engine.dispose()
    if args.json:
        print_json(out, {"expired_periods": lapsed})
    else:
        out.line(f"{lapsed} plan period(s) expired")
    return EXIT_OK
