"""``mentorpay balance``, ``ledger verify`` and ``release-due``: reading and releasing balances."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

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
    """Check balances against the journal (incremental, or all of it with --full); exit 2
    when anything disagrees."""
    db = engine(args)
    try:
        report = LedgerService(db).verify(full=args.full, progress=_progress(args, out))
    finally:
        db.dispose()
    if report.ok:
        scope = (
            f" (incremental: {report.entries_read} new entries read; --full rereads them all)"
            if report.incremental
            else ""
        )
        out.line(
            f"ledger OK{scope}: {report.transactions} transactions,"
            f" {report.balances} balances agree"
        )
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
        released = mp.ledger.release_due_count(now, progress=_progress(args, out))
    finally:
        mp.engine.dispose()
    out.line(f"released {released} payment(s)")
    return EXIT_OK


def _progress(args: argparse.Namespace, out: Output) -> Callable[[int, int, str], None]:
    """The command's bar: on a terminal always (``Output.progress``), elsewhere only with
    ``--progress`` (stderr, so stdout stays parseable)."""
    if not args.progress or out.err.isatty():
        return out.progress
    bars: dict[str, Any] = {}

    def forced(done: int, total: int, label: str) -> None:
        bar = bars.get(label)
        if bar is None:
            from tqdm import tqdm  # noqa: PLC0415  (kept off the CLI's start-up path)

            bar = bars[label] = tqdm(total=total, desc=label, file=out.err, mininterval=0.5)
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            del bars[label]

    return forced
