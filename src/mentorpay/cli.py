"""The ``mentorpay`` command: demo, database upgrade, balances, ledger verification.

Errors are one readable line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from mentorpay._tables import BALANCE_HEADERS, balance_rows, table
from mentorpay._version import __version__
from mentorpay.config import DEFAULT_DATABASE_URL
from mentorpay.db import make_engine
from mentorpay.demo import run_demo
from mentorpay.errors import MentorpayError
from mentorpay.ledger import LedgerService
from mentorpay.migrations import upgrade

__all__ = ["main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PROBLEMS = 2


class Output:
    """Where the command prints; tests pass their own streams."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def line(self, text: str = "") -> None:
        print(text, file=self.out)

    def error(self, text: str) -> None:
        print(f"mentorpay: error: {text}", file=self.err)


def _database_url(args: argparse.Namespace) -> str:
    url: str = args.url or os.environ.get("MENTORPAY_DATABASE_URL") or DEFAULT_DATABASE_URL
    return url


def cmd_db_upgrade(args: argparse.Namespace, out: Output) -> int:
    """Apply mentorpay's migrations."""
    url = _database_url(args)
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    out.line(f"mentorpay schema is up to date ({engine.url.render_as_string(hide_password=True)})")
    return EXIT_OK


def cmd_balance(args: argparse.Namespace, out: Output) -> int:
    """Print one mentor's balances."""
    engine = make_engine(_database_url(args))
    try:
        ledger = LedgerService(engine)
        views = (
            [ledger.balance(args.mentor, args.currency)]
            if args.currency
            else ledger.balances(args.mentor)
        )
    finally:
        engine.dispose()
    if not views:
        out.line(f"mentor {args.mentor} has no balance yet")
        return EXIT_OK
    out.line(table(BALANCE_HEADERS, balance_rows(views)))
    return EXIT_OK


def cmd_ledger_verify(args: argparse.Namespace, out: Output) -> int:
    """Recompute balances from the journal; exit 2 when anything disagrees."""
    engine = make_engine(_database_url(args))
    try:
        report = LedgerService(engine).verify()
    finally:
        engine.dispose()
    if report.ok:
        out.line(f"ledger OK: {report.transactions} transactions, {report.balances} balances agree")
        return EXIT_OK
    out.line(f"ledger has {len(report.problems)} problem(s):")
    for problem in report.problems:
        out.line(f"  - {problem}")
    return EXIT_PROBLEMS


def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    """Walk bookings through payment, refunds, a dispute, release and payout."""
    path = Path(args.database)
    return run_demo(path, out.line, fresh=not args.keep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mentorpay", description="mentorpay: marketplace payments core for Stripe."
    )
    parser.add_argument("--version", action="version", version=f"mentorpay {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the end-to-end demo on a local SQLite file")
    demo.add_argument("--database", default="mentorpay-demo.db", help="SQLite file to use")
    demo.add_argument("--keep", action="store_true", help="keep an existing demo database")
    demo.set_defaults(func=cmd_demo)

    url_help = "database URL (default: $MENTORPAY_DATABASE_URL or a local SQLite file)"
    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = db_sub.add_parser("upgrade", help="apply mentorpay's migrations")
    up.add_argument("--url", help=url_help)
    up.set_defaults(func=cmd_db_upgrade)

    bal = sub.add_parser("balance", help="show a mentor's balances")
    bal.add_argument("mentor")
    bal.add_argument("--currency")
    bal.add_argument("--url", help=url_help)
    bal.set_defaults(func=cmd_balance)

    ledger = sub.add_parser("ledger", help="ledger tools")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    verify = ledger_sub.add_parser("verify", help="recompute balances from the journal")
    verify.add_argument("--url", help=url_help)
    verify.set_defaults(func=cmd_ledger_verify)
    return parser


def main(argv: Sequence[str] | None = None, *, out: Output | None = None) -> int:
    """Entry point of the ``mentorpay`` command; returns the exit code."""
    output = out or Output()
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace, Output], int] = args.func
    try:
        return func(args, output)
    except MentorpayError as exc:
        output.error(exc.message)
        return EXIT_ERROR
    except KeyboardInterrupt:
        output.error("interrupted")
        return 130
    except Exception as exc:  # a CLI prints one line, never a traceback
        first_line = (str(exc).strip().splitlines() or [""])[0]
        output.error(f"{type(exc).__name__}: {first_line}")
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
