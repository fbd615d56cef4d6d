"""``mentorpay stats`` and ``reconcile``: a period's metrics, and Stripe against the ledger."""

from __future__ import annotations

import argparse

from mentorpay._text_tables import table
from mentorpay.cli._context import facade, parse_when, print_json
from mentorpay.cli._output import EXIT_OK, EXIT_PROBLEMS, Output

__all__ = ["cmd_reconcile", "cmd_stats"]


def cmd_reconcile(args: argparse.Namespace, out: Output) -> int:
    """Compare Stripe's record of a period with the ledger."""
    mp = facade(args)
    try:
        until = parse_when(args.until) if args.until else None
        report = mp.reconcile(
            parse_when(args.since), until, apply=args.apply, progress=out.progress
        )
    finally:
        mp.engine.dispose()
    if args.json:
        print_json(out, report.as_dict())
    else:
        out.line(report.render())
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def _percent(bps: int) -> str:
    """Basis points as a percentage with two decimals, in integer arithmetic."""
    return f"{bps // 100}.{bps % 100:02d}%"


def cmd_stats(args: argparse.Namespace, out: Output) -> int:
    """Payment metrics of a period, per currency."""
    mp = facade(args)
    try:
        until = parse_when(args.until) if args.until else None
        report = mp.stats(parse_when(args.since), until)
    finally:
        mp.engine.dispose()
    if args.json:
        print_json(out, report.as_dict())
        return EXIT_OK
    rows: list[list[object]] = [
        [
            c.currency,
            c.payments,
            str(c.gross).split()[0],
            str(c.net_commission).split()[0],
            str(c.refunded).split()[0],
            _percent(c.refund_rate_bps),
            c.disputes_open,
            c.disputes_lost,
        ]
        for c in report.currencies
    ]
    headers = ["currency", "payments", "gross", "commission", "refunded", "refund rate"]
    out.line(table([*headers, "disputes open", "disputes lost"], rows) if rows else "no payments")
    for c in report.currencies:
        out.line(
            f"net earnings {c.currency}: commission {c.gross_commission}, kept "
            f"{c.net_commission}, Stripe fees {c.fees}, net {c.net_earnings}"
        )
    funnel = report.checkout
    out.line(
        f"checkout: {funnel.created} sessions, {funnel.completed} paid, {funnel.expired} expired"
        f" (conversion {_percent(funnel.conversion_bps)})"
    )
    out.line(
        f"operations: {report.stale_deferred} deferred event(s) older than 7 days"
        f" (mentorpay events list --stale), {report.outbox_pending} effect(s) pending in the"
        " outbox (mentorpay outbox run)"
    )
    return EXIT_OK
