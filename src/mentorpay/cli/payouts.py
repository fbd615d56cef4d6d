"""``mentorpay payouts ...``: list, request and move payout requests through their states."""

from __future__ import annotations

import argparse

from mentorpay._text_tables import table
from mentorpay.cli._context import facade, print_json
from mentorpay.cli._output import EXIT_OK, Output
from mentorpay.money import Money

__all__ = ["cmd_payouts_action", "cmd_payouts_list", "cmd_payouts_request"]


def cmd_payouts_list(args: argparse.Namespace, out: Output) -> int:
    """Payout requests, newest first."""
    mp = facade(args)
    try:
        payouts = mp.payouts.list(mentor_id=args.mentor, status=args.status, limit=args.limit)
    finally:
        mp.engine.dispose()
    if args.json:
        print_json(out, [p.as_dict() for p in payouts])
        return EXIT_OK
    if not payouts:
        out.line("no payout requests")
        return EXIT_OK
    rows: list[list[object]] = [
        [p.id, p.mentor_id, str(p.amount), p.status, p.method, p.transfer_id or p.reference or ""]
        for p in payouts
    ]
    out.line(table(["id", "mentor", "amount", "status", "method", "transfer/reference"], rows))
    return EXIT_OK


def cmd_payouts_request(args: argparse.Namespace, out: Output) -> int:
    """Reserve part of a mentor's available balance for a payout (an operator's request)."""
    amount = Money.parse(args.amount, args.currency)
    mp = facade(args)
    try:
        view = mp.payouts.request(args.mentor, amount, destination=args.destination)
    finally:
        mp.engine.dispose()
    out.line(f"payout {view.id} ({view.amount} to {view.mentor_id}) is {view.status}")
    return EXIT_OK


def cmd_payouts_action(args: argparse.Namespace, out: Output) -> int:
    """Move one payout request through its state machine (an operator's action)."""
    mp = facade(args)
    try:
        action = args.payouts_command
        if action == "approve":
            view = mp.payouts.approve(args.id, approver=args.approver)
        elif action == "execute":
            view = mp.payouts.execute(args.id)
        elif action == "mark-paid":
            view = mp.payouts.mark_paid(args.id, reference=args.reference)
        elif action == "mark-failed":
            view = mp.payouts.mark_failed(args.id, reason=args.reason)
        elif action == "reverse":
            view = mp.payouts.reverse(args.id, reason=args.reason)
        else:
            view = mp.payouts.cancel(args.id)
    finally:
        mp.engine.dispose()
    out.line(f"payout {view.id} ({view.amount} to {view.mentor_id}) is {view.status}")
    if action == "reverse" and view.status != "reversed":
        out.line("Stripe is reversing its transfer; the transfer.reversed webhook completes it")
    return EXIT_OK
