"""``mentorpay balance``, ``ledger verify`` and ``release-due``: reading and releasing balances."""

from __future__ import annotations

import argparse

from mentorpay._text_tables import BALANCE_HEADERS, balance_rows, table
from mentorpay.cli._context import engine, facade, parse_when
from mentorpay.cli._output import EXIT_OK, EXIT_PROBLEMS, Output
from mentorpay.ledger import LedgerService
from mentorpay.money import normalize_currency

__all__ = ["cmd_balance", "cmd_ledger_verify", "cmd_release_due"]


def cmd_balance(args: argparse.Namespace, out: Output) -> int:
    """Print one mentor's balances, or the one currency asked for."""
    currency = normalize_currency(args.currency) if args.currency else None
    db = engine(args)
    try:
        views = LedgerService(db).balances(args.mentor)
    finally:
        db.dispose()
    if not views:
        out.line(f"mentor {args.mentor} has no balance yet")
        return EXIT_OK
    if currency is not None:
        chosen = [v for v in views if v.currency == currency]
        if not chosen:
            held = ", ".join(v.currency for v in views)
            out.line(f"mentor {args.mentor} has no {currency} balance (balances in {held})")
            return EXIT_OK
        views = chosen
    out.line(table(BALANCE_HEADERS, balance_rows(views)))
    return EXIT_OK


def cmd_ledger_verify(args: argparse.Namespace, out: Output) -> int:
    """Recompute balances from the journal; exit 2 when anything disagrees."""
    db = engine(args)
    try:
        report = LedgerService(db).verify()
    finally:
        db.dispose()
    if report.ok:
        out.line(f"ledger OK: {report.transactions} transactions, {report.balances} balances agree")
        return EXIT_OK
    out.line(f"ledger has {len(report.problems)} problem(s):")
    for problem in report.problems:
        out.line(f"  - {problem}")
    return EXIT_PROBLEMS


def cmd_release_due(args: argparse.Namespace, out: Output) -> int:
    """Release every payment whose hold period has elapsed (run it from cron)."""
    mp = facade(args)
    try:
        now = parse_when(args.now) if args.now else None
        released = mp.ledger.release_due(now, progress=out.progress)
    finally:
        mp.engine.dispose()
    out.line(f"released {len(released)} payment(s)")
    return EXIT_OK
