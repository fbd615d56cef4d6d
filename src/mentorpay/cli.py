"""The ``mentorpay`` command: demo, database, balances, webhook inbox, payouts, reconciliation.

Errors are one readable line on stderr and a non-zero exit code, never a traceback. Commands
that need the whole library build :class:`~mentorpay.app.MentorPay` from the environment
(``MENTORPAY_DATABASE_URL``, ``STRIPE_SECRET_KEY``); none of them verifies webhook signatures,
so ``STRIPE_WEBHOOK_SECRET`` is optional here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO, cast

from mentorpay._tables import BALANCE_HEADERS, balance_rows, table
from mentorpay._version import __version__
from mentorpay.app import MentorPay
from mentorpay.config import DEFAULT_DATABASE_URL, MentorpayConfig
from mentorpay.db import make_engine, pooler_from_env
from mentorpay.demo import run_demo
from mentorpay.errors import ConfigurationError, InvalidRequestError, MentorpayError
from mentorpay.gateway import PaymentGateway
from mentorpay.ledger import LedgerService
from mentorpay.migrations import upgrade
from mentorpay.testing import InMemoryBookings

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

    def progress(self, done: int, total: int, label: str) -> None:
        """A one-line progress bar on stderr, redrawn in place (only on a terminal)."""
        if not getattr(self.err, "isatty", lambda: False)():
            return
        width = 30
        filled = width * done // total if total else width
        end = "\n" if done >= total else ""
        bar = "#" * filled + "-" * (width - filled)
        print(f"\r{label} [{bar}] {done}/{total}", end=end, file=self.err, flush=True)


class _NoGateway:
    """Stands in when STRIPE_SECRET_KEY is unset: any Stripe call is a clear setup error."""

    def __getattr__(self, name: str) -> NoReturn:
        raise ConfigurationError(f"STRIPE_SECRET_KEY is not set: cannot call Stripe ({name})")


def _facade(args: argparse.Namespace) -> MentorPay:
    env = dict(os.environ)
    env.setdefault("STRIPE_WEBHOOK_SECRET", "whsec_cli_never_verifies_signatures")
    if getattr(args, "url", None):
        env["MENTORPAY_DATABASE_URL"] = args.url
    config = MentorpayConfig.from_env(env)
    gateway = None if config.stripe_secret_key else cast(PaymentGateway, _NoGateway())
    return MentorPay(
        config,
        make_engine(config.database_url, pooler=config.pooler),
        bookings=InMemoryBookings(),
        gateway=gateway,
    )


def _parse_when(value: str) -> datetime:
    """An ISO date or datetime; naive values are UTC."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(f"not an ISO date or datetime: {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _print_json(out: Output, value: Any) -> None:
    out.line(json.dumps(value, indent=2, sort_keys=True))


def _database_url(args: argparse.Namespace) -> str:
    url: str = args.url or os.environ.get("MENTORPAY_DATABASE_URL") or DEFAULT_DATABASE_URL
    return url


def cmd_db_upgrade(args: argparse.Namespace, out: Output) -> int:
    """Apply mentorpay's migrations."""
    url = _database_url(args)
    engine = make_engine(url, pooler=pooler_from_env(os.environ))
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    out.line(f"mentorpay schema is up to date ({engine.url.render_as_string(hide_password=True)})")
    return EXIT_OK


def cmd_balance(args: argparse.Namespace, out: Output) -> int:
    """Print one mentor's balances."""
    engine = make_engine(_database_url(args), pooler=pooler_from_env(os.environ))
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
    engine = make_engine(_database_url(args), pooler=pooler_from_env(os.environ))
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
    return run_demo(path, out.line, fresh=not args.keep, progress=out.progress)


def cmd_events_list(args: argparse.Namespace, out: Output) -> int:
    """The webhook inbox, newest first."""
    mp = _facade(args)
    try:
        events = mp.webhooks.list_events(status=args.status, limit=args.limit)
    finally:
        mp.engine.dispose()
    if args.json:
        _print_json(out, [e.as_dict() for e in events])
        return EXIT_OK
    if not events:
        out.line("no stored events" + (f" with status {args.status}" if args.status else ""))
        return EXIT_OK
    rows: list[list[object]] = [
        [e.event_id, e.type, e.status, e.attempts, (e.last_error or "")[:60]] for e in events
    ]
    out.line(table(["event", "type", "status", "attempts", "last error"], rows))
    return EXIT_OK


def cmd_events_replay(args: argparse.Namespace, out: Output) -> int:
    """Run stored events through the same path again."""
    mp = _facade(args)
    try:
        if args.id:
            result = mp.webhooks.replay(args.id)
            out.line(f"{result.event_id}: {result.status}")
            return EXIT_OK
        failed = [e.event_id for e in mp.webhooks.list_events(status="failed", limit=10_000)]
        failed.reverse()  # oldest first, as Stripe would have delivered them
        still_failing = 0
        for done, event_id in enumerate(failed, start=1):
            try:
                mp.webhooks.replay(event_id)
            except MentorpayError:
                still_failing += 1
            out.progress(done, len(failed), "replaying")
        out.line(f"replayed {len(failed)} failed event(s); {still_failing} still failing")
        return EXIT_PROBLEMS if still_failing else EXIT_OK
    finally:
        mp.engine.dispose()


def cmd_payouts_list(args: argparse.Namespace, out: Output) -> int:
    """Payout requests, newest first."""
    mp = _facade(args)
    try:
        payouts = mp.payouts.list(mentor_id=args.mentor, status=args.status, limit=args.limit)
    finally:
        mp.engine.dispose()
    if args.json:
        _print_json(out, [p.as_dict() for p in payouts])
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


def cmd_payouts_action(args: argparse.Namespace, out: Output) -> int:
    """Move one payout request through its state machine (an operator's action)."""
    mp = _facade(args)
    try:
        if args.payouts_command == "approve":
            view = mp.payouts.approve(args.id, approver=args.approver)
        elif args.payouts_command == "execute":
            view = mp.payouts.execute(args.id)
        elif args.payouts_command == "mark-paid":
            view = mp.payouts.mark_paid(args.id, reference=args.reference)
        else:
            view = mp.payouts.cancel(args.id)
    finally:
        mp.engine.dispose()
    out.line(f"payout {view.id} ({view.amount} to {view.mentor_id}) is {view.status}")
    return EXIT_OK


def cmd_release_due(args: argparse.Namespace, out: Output) -> int:
    """Release every payment whose hold period has elapsed (run it from cron)."""
    mp = _facade(args)
    try:
        released = mp.ledger.release_due(_parse_when(args.now) if args.now else None)
    finally:
        mp.engine.dispose()
    out.line(f"released {len(released)} payment(s)")
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace, out: Output) -> int:
    """Compare Stripe's record of a period with the ledger."""
    mp = _facade(args)
    try:
        until = _parse_when(args.until) if args.until else None
        report = mp.reconcile(_parse_when(args.since), until, apply=args.apply)
    finally:
        mp.engine.dispose()
    if args.json:
        _print_json(out, report.as_dict())
    else:
        out.line(report.render())
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def _percent(bps: int) -> str:
    """Basis points as a percentage with two decimals, in integer arithmetic."""
    return f"{bps // 100}.{bps % 100:02d}%"


def cmd_stats(args: argparse.Namespace, out: Output) -> int:
    """Payment metrics of a period, per currency."""
    mp = _facade(args)
    try:
        until = _parse_when(args.until) if args.until else None
        report = mp.stats(_parse_when(args.since), until)
    finally:
        mp.engine.dispose()
    if args.json:
        _print_json(out, report.as_dict())
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
    funnel = report.checkout
    out.line(
        f"checkout: {funnel.created} sessions, {funnel.completed} paid, {funnel.expired} expired"
        f" (conversion {_percent(funnel.conversion_bps)})"
    )
    return EXIT_OK


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

    events = sub.add_parser("events", help="the webhook inbox")
    events_sub = events.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    ev_list = events_sub.add_parser("list", help="list stored webhook events")
    ev_list.add_argument("--status", choices=["processed", "ignored", "deferred", "failed"])
    ev_list.add_argument("--limit", type=int, default=50)
    ev_list.add_argument("--json", action="store_true")
    ev_list.add_argument("--url", help=url_help)
    ev_list.set_defaults(func=cmd_events_list)
    replay = events_sub.add_parser("replay", help="run stored events through the handlers again")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--failed", action="store_true", help="every failed event")
    which.add_argument("--id", help="one event id (evt_...)")
    replay.add_argument("--url", help=url_help)
    replay.set_defaults(func=cmd_events_replay)

    payouts = sub.add_parser("payouts", help="payout requests")
    payouts_sub = payouts.add_subparsers(dest="payouts_command", required=True, metavar="ACTION")
    po_list = payouts_sub.add_parser("list", help="list payout requests")
    po_list.add_argument("--mentor")
    po_list.add_argument(
        "--status",
        choices=["requested", "approved", "processing", "paid", "failed", "cancelled", "reversed"],
    )
    po_list.add_argument("--limit", type=int, default=100)
    po_list.add_argument("--json", action="store_true")
    po_list.add_argument("--url", help=url_help)
    po_list.set_defaults(func=cmd_payouts_list)
    approve = payouts_sub.add_parser("approve", help="approve a requested payout")
    approve.add_argument("id", type=int)
    approve.add_argument("--approver", required=True, help="who approves (not the mentor)")
    execute = payouts_sub.add_parser("execute", help="send an approved payout's Stripe transfer")
    execute.add_argument("id", type=int)
    paid = payouts_sub.add_parser("mark-paid", help="manual mode: record the bank transfer")
    paid.add_argument("id", type=int)
    paid.add_argument("--reference", required=True, help="the bank transfer's reference")
    cancel = payouts_sub.add_parser("cancel", help="cancel a payout not yet sent")
    cancel.add_argument("id", type=int)
    for action in (approve, execute, paid, cancel):
        action.add_argument("--url", help=url_help)
        action.set_defaults(func=cmd_payouts_action)

    due = sub.add_parser("release-due", help="make payments past their hold period available")
    due.add_argument("--now", help="ISO datetime to use instead of the current time")
    due.add_argument("--url", help=url_help)
    due.set_defaults(func=cmd_release_due)

    stats = sub.add_parser("stats", help="payment metrics of a period")
    stats.add_argument("--since", required=True, help="ISO date or datetime (UTC if naive)")
    stats.add_argument("--until", help="ISO date or datetime (default: now)")
    stats.add_argument("--json", action="store_true")
    stats.add_argument("--url", help=url_help)
    stats.set_defaults(func=cmd_stats)

    rec = sub.add_parser("reconcile", help="compare Stripe with the ledger for a period")
    rec.add_argument("--since", required=True, help="ISO date or datetime (UTC if naive)")
    rec.add_argument("--until", help="ISO date or datetime (default: now)")
    rec.add_argument("--apply", action="store_true", help="record facts the ledger lacks")
    rec.add_argument("--json", action="store_true")
    rec.add_argument("--url", help=url_help)
    rec.set_defaults(func=cmd_reconcile)
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
