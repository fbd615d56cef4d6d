"""``mentorpay refund`` and ``payments review|resolve``: refunds and payments parked for review."""

from __future__ import annotations

import argparse
import os

from mentorpay.cli._context import facade, host_bookings, print_json
from mentorpay.cli._output import EXIT_OK, Output
from mentorpay.errors import InvalidRequestError
from mentorpay.money import Money

__all__ = ["cmd_payments_resolve", "cmd_payments_review", "cmd_refund"]


def cmd_refund(args: argparse.Namespace, out: Output) -> int:
    """Refund a recorded payment through Stripe (all that remains unless --amount)."""
    mp = facade(args)
    try:
        amount = None
        if args.amount is not None:
            currency = mp.ledger.payment(args.payment_intent).gross.currency
            amount = Money.parse(args.amount, currency)
        result = mp.refunds.refund(
            args.payment_intent, amount, args.reason, request_id=args.request_id
        )
    finally:
        mp.engine.dispose()
    out.line(
        f"refund {result.refund_id} of {result.amount} for {result.payment_intent_id} is "
        f"{result.status}; the ledger follows when Stripe's charge.refunded webhook arrives"
    )
    return EXIT_OK


def cmd_payments_review(args: argparse.Namespace, out: Output) -> int:
    """List payments parked on the suspense account for an operator."""
    mp = facade(args)
    try:
        queue = mp.payments.review_queue(args.limit)
    finally:
        mp.engine.dispose()
    if args.json:
        print_json(
            out,
            [{**p.as_dict(), "review_reason": p.review_reason} for p in queue],
        )
        return EXIT_OK
    if not queue:
        out.line("no payment needs review")
        return EXIT_OK
    for p in queue:
        out.line(f"{p.payment_intent_id}  booking {p.booking_id}  {p.gross}  {p.review_reason}")
    return EXIT_OK


def cmd_payments_resolve(args: argparse.Namespace, out: Output) -> int:
    """Credit the booking's mentor with a reviewed payment, or refund it through Stripe."""
    spec = args.bookings or os.environ.get("MENTORPAY_BOOKINGS")
    if args.action == "credit" and not spec:
        raise InvalidRequestError(
            "crediting needs your application's bookings: pass --bookings MODULE:ATTRIBUTE "
            "(or set MENTORPAY_BOOKINGS) naming your BookingSource"
        )
    mp = facade(args, host_bookings(spec))
    try:
        record = mp.payments.resolve(args.payment_intent, action=args.action)
    finally:
        mp.engine.dispose()
    out.line(f"{record.payment_intent_id} is now {record.status}")
    return EXIT_OK
