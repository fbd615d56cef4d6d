"""The ``mentorpay`` command: demo, database, balances, webhook inbox, payouts, refunds,
reconciliation.

Every command, the demo included, works on one database: ``--url``, else
``$MENTORPAY_DATABASE_URL``, else ``sqlite:///mentorpay.db`` in the current directory. Errors
are one readable line on stderr and a non-zero exit code, never a traceback; a database
without mentorpay's tables says to run ``mentorpay db upgrade``. Long work (replay,
reconciliation, releases, the demo) draws a progress bar on stderr when it is a terminal.

Commands that need the whole library build :class:`~mentorpay.app.MentorPay` from the
environment (``MENTORPAY_DATABASE_URL``, ``STRIPE_SECRET_KEY``, ``STRIPE_API_BASE``); none of
them verifies webhook signatures, so ``STRIPE_WEBHOOK_SECRET`` is optional here. Nothing here
imports :mod:`mentorpay.testing`: only the demo, which plays Stripe's part with the test kit's
fake gateway, loads it, inside its own command.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO, cast

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from tqdm import tqdm

from mentorpay._tables import BALANCE_HEADERS, balance_rows, table
from mentorpay._version import __version__
from mentorpay.app import MentorPay
from mentorpay.bookings import BookingInfo, BookingSource
from mentorpay.config import DEFAULT_DATABASE_URL, MentorpayConfig, hide_password
from mentorpay.db import make_engine, pooler_from_env
from mentorpay.errors import ConfigurationError, InvalidRequestError, MentorpayError
from mentorpay.gateway import REFUND_REASONS, PaymentGateway
from mentorpay.inbox import parse_duration
from mentorpay.ledger import LedgerService
from mentorpay.migrations import VERSION_TABLE, alembic_config, upgrade
from mentorpay.money import Money, normalize_currency
from mentorpay.outbox import Outbox
from mentorpay.webhooks import INBOX_STATUSES

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PROBLEMS = 2

#: The demo's first checkout event: a SQLite file holding it was written by the demo.
_DEMO_MARKER_EVENT = "evt_demo_cs_42"
_UPGRADE_HINT = "run `mentorpay db upgrade` (with the same --url) first"


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


class Output:
    """Where the command prints; tests pass their own streams."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._bars: dict[str, tqdm[Any]] = {}

    def line(self, text: str = "") -> None:
        print(text, file=self.out)

    def error(self, text: str) -> None:
        self.close()  # the message starts on its own line, after any bar
        print(f"mentorpay: error: {text}", file=self.err)

    def warn(self, text: str) -> None:
        print(f"mentorpay: warning: {text}", file=self.err)

    def progress(self, done: int, total: int, label: str) -> None:
        """Advance the progress bar named ``label`` (tqdm, on stderr, only on a terminal, so
        pipes and logs get no control characters); it closes when ``done`` reaches
        ``total``."""
        if not _isatty(self.err):
            return
        bar = self._bars.get(label)
        if bar is None:
            # shutil falls back to 80 columns where a pseudo-terminal reports 0 (tqdm would
            # then draw an empty line).
            width = shutil.get_terminal_size().columns
            bar = tqdm(
                total=total, desc=label, file=self.err, ncols=width, leave=True, mininterval=0.2
            )
            self._bars[label] = bar
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            del self._bars[label]

    def close(self) -> None:
        """Close bars left open (an error stopped the work)."""
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


class _NoGateway:
    """Stands in when STRIPE_SECRET_KEY is unset: any Stripe call is a clear setup error."""

    def __getattr__(self, name: str) -> NoReturn:
        raise ConfigurationError(f"STRIPE_SECRET_KEY is not set: cannot call Stripe ({name})")


class _NoBookings:
    """The CLI has no host application behind it: it knows no booking (checkout is not a CLI
    command; refunds, payouts and webhooks do not ask for bookings)."""

    def get_booking(self, booking_id: str) -> BookingInfo | None:
        del booking_id
        return None


# -- database -----------------------------------------------------------------------------------


def _database_url(args: argparse.Namespace) -> str:
    url: str = (
        getattr(args, "url", None)
        or os.environ.get("MENTORPAY_DATABASE_URL")
        or DEFAULT_DATABASE_URL
    )
    return url


def _require_schema(engine: Engine) -> None:
    """Refuse, with the fix, a database without mentorpay's tables or behind the code."""
    shown = hide_password(engine.url.render_as_string(hide_password=False))
    tables = set(inspect(engine).get_table_names())
    if VERSION_TABLE not in tables:
        if "mentorpay_payments" in tables:
            return  # made by create_all (tests, create_schema()): no revision to compare
        raise ConfigurationError(f"{shown} has no mentorpay tables: {_UPGRADE_HINT}")
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        current = set(context.get_current_heads())
    heads = set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())
    if current != heads:
        at = ", ".join(sorted(current)) or "none"
        raise ConfigurationError(
            f"{shown} has mentorpay's schema at revision {at}, this version needs "
            f"{', '.join(sorted(heads))}: {_UPGRADE_HINT}"
        )


def _engine(args: argparse.Namespace) -> Engine:
    """The command's database, checked to hold mentorpay's current schema."""
    engine = make_engine(_database_url(args), pooler=pooler_from_env(os.environ))
    try:
        _require_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _import_host_object(spec: str, option: str, wanted: tuple[type, ...]) -> Any:
    """The host's object named ``module:attribute`` (or returned by it, if it is a factory)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InvalidRequestError(f"{option} must be module:attribute, not {spec!r}")
    if os.getcwd() not in sys.path:
        # Like `flask --app`: the host's modules are importable from where the command runs.
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigurationError(f"{module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if callable(target) and not isinstance(target, wanted):
        target = target()
    if not isinstance(target, wanted):
        names = " or ".join(t.__name__ for t in wanted)
        raise ConfigurationError(f"{spec} is not a {names}")
    return target


def _host_bookings(spec: str | None) -> BookingSource:
    """The host's BookingSource from ``module:attribute`` (an instance or a factory)."""
    if not spec:
        return _NoBookings()
    source: BookingSource = _import_host_object(spec, "--bookings", (BookingSource,))
    return source


def _facade(args: argparse.Namespace, bookings: BookingSource | None = None) -> MentorPay:
    env = dict(os.environ)
    env.setdefault("STRIPE_WEBHOOK_SECRET", "whsec_cli_never_verifies_signatures")
    env["MENTORPAY_DATABASE_URL"] = _database_url(args)
    config = MentorpayConfig.from_env(env)
    gateway = None if config.stripe_secret_key else cast(PaymentGateway, _NoGateway())
    return MentorPay(config, _engine(args), bookings=bookings or _NoBookings(), gateway=gateway)


def _missing_table(exc: BaseException) -> bool:
    """A driver error saying a table is missing (a schema older than the code)."""
    if not isinstance(exc, DBAPIError):
        return False
    text = str(exc.orig)
    return (
        "no such table" in text
        or type(exc.orig).__name__ == "UndefinedTable"
        or ("relation" in text and "does not exist" in text)
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


# -- commands -----------------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace, out: Output) -> int:
    """Apply mentorpay's migrations."""
    engine = make_engine(_database_url(args), pooler=pooler_from_env(os.environ))
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    out.line(f"mentorpay schema is up to date ({engine.url.render_as_string(hide_password=True)})")
    return EXIT_OK


def cmd_balance(args: argparse.Namespace, out: Output) -> int:
    """Print one mentor's balances, or the one currency asked for."""
    currency = normalize_currency(args.currency) if args.currency else None
    engine = _engine(args)
    try:
        views = LedgerService(engine).balances(args.mentor)
    finally:
        engine.dispose()
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
    engine = _engine(args)
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


def _demo_path(url: str) -> Path:
    """The SQLite file a demo URL names; anything else is refused."""
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigurationError(f"not a database URL: {hide_password(url)}") from None
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database or database == ":memory:":
        raise ConfigurationError(
            f"the demo runs on a SQLite file, not {hide_password(url)}: pass "
            f"--url sqlite:///mentorpay.db (or unset MENTORPAY_DATABASE_URL)"
        )
    return Path(database)


def _check_demo_file(path: Path) -> None:
    """Starting fresh deletes the file: allow it only for a file the demo wrote, or one that
    holds nothing but an empty mentorpay schema."""
    if not path.exists() or path.stat().st_size == 0:
        return
    refusal = ConfigurationError(
        f"{path} holds data that is not the demo's: refusing to overwrite it; pick another "
        "file with --url sqlite:///demo.db (or run on it anyway with --keep)"
    )
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            tables = {
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if not all(name.startswith(("mentorpay_", "sqlite_")) for name in tables):
                raise refusal
            if "mentorpay_webhook_events" not in tables:
                return  # no inbox: no event and no payment was ever recorded here
            marker = conn.execute(
                "SELECT 1 FROM mentorpay_webhook_events WHERE event_id = ?", (_DEMO_MARKER_EVENT,)
            ).fetchone()
            (events,) = conn.execute("SELECT count(*) FROM mentorpay_webhook_events").fetchone()
            (payments,) = (
                conn.execute("SELECT count(*) FROM mentorpay_payments").fetchone()
                if "mentorpay_payments" in tables
                else (0,)
            )
    except sqlite3.DatabaseError:
        raise refusal from None
    if marker is None and (events or payments):
        raise refusal


def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    """Walk bookings through payment, refunds, a dispute, release and payout."""
    # Imported here: the demo plays Stripe with the test kit's FakeGateway and signed events,
    # and no other command may load mentorpay.testing.
    from mentorpay.demo import run_demo  # noqa: PLC0415

    if args.database:
        out.warn("--database is deprecated; use --url sqlite:///FILE")
        url = f"sqlite:///{args.database}"
    else:
        url = _database_url(args)
    path = _demo_path(url)
    if not args.keep:
        _check_demo_file(path)
    return run_demo(path, out.line, fresh=not args.keep, progress=out.progress)


def cmd_events_list(args: argparse.Namespace, out: Output) -> int:
    """The webhook inbox, newest first (``--stale``: old deferred events, oldest first)."""
    mp = _facade(args)
    try:
        if args.stale:
            events = mp.inbox.stale(parse_duration(args.older_than), limit=args.limit)
        else:
            events = mp.webhooks.list_events(
                status=args.status, limit=args.limit, event_type=args.type
            )
    finally:
        mp.engine.dispose()
    if args.json:
        _print_json(out, [e.as_dict() for e in events])
        return EXIT_OK
    if not events:
        if args.stale:
            out.line(f"no deferred events older than {args.older_than}")
            return EXIT_OK
        what = [f"with status {args.status}"] if args.status else []
        what += [f"of type {args.type}"] if args.type else []
        out.line(" ".join(["no stored events", *what]))
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


def cmd_payouts_request(args: argparse.Namespace, out: Output) -> int:
    """Reserve part of a mentor's available balance for a payout (an operator's request)."""
    amount = Money.parse(args.amount, args.currency)
    mp = _facade(args)
    try:
        view = mp.payouts.request(args.mentor, amount, destination=args.destination)
    finally:
        mp.engine.dispose()
    out.line(f"payout {view.id} ({view.amount} to {view.mentor_id}) is {view.status}")
    return EXIT_OK


def cmd_payouts_action(args: argparse.Namespace, out: Output) -> int:
    """Move one payout request through its state machine (an operator's action)."""
    mp = _facade(args)
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


def cmd_refund(args: argparse.Namespace, out: Output) -> int:
    """Refund a recorded payment through Stripe (all that remains unless --amount)."""
    mp = _facade(args)
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
    mp = _facade(args)
    try:
        queue = mp.payments.review_queue(args.limit)
    finally:
        mp.engine.dispose()
    if args.json:
        _print_json(
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
    mp = _facade(args, _host_bookings(spec))
    try:
        record = mp.payments.resolve(args.payment_intent, action=args.action)
    finally:
        mp.engine.dispose()
    out.line(f"{record.payment_intent_id} is now {record.status}")
    return EXIT_OK


def cmd_release_due(args: argparse.Namespace, out: Output) -> int:
    """Release every payment whose hold period has elapsed (run it from cron)."""
    mp = _facade(args)
    try:
        now = _parse_when(args.now) if args.now else None
        released = mp.ledger.release_due(now, progress=out.progress)
    finally:
        mp.engine.dispose()
    out.line(f"released {len(released)} payment(s)")
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace, out: Output) -> int:
    """Compare Stripe's record of a period with the ledger."""
    mp = _facade(args)
    try:
        until = _parse_when(args.until) if args.until else None
        report = mp.reconcile(
            _parse_when(args.since), until, apply=args.apply, progress=out.progress
        )
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
    out.line(
        f"operations: {report.stale_deferred} deferred event(s) older than 7 days"
        f" (mentorpay events list --stale), {report.outbox_pending} effect(s) pending in the"
        " outbox (mentorpay outbox run)"
    )
    return EXIT_OK


# -- operations: inbox retention and the outbox -------------------------------------------------


def cmd_events_prune(args: argparse.Namespace, out: Output) -> int:
    """Drop the payloads of old processed/ignored events (dry run unless --apply)."""
    mp = _facade(args)
    try:
        report = mp.inbox.prune(
            parse_duration(args.older_than),
            apply=args.apply,
            progress=lambda done, total: out.progress(done, total, "pruning"),
        )
    finally:
        mp.engine.dispose()
    if args.json:
        _print_json(out, report.as_dict())
        return EXIT_OK
    verb = "pruned" if report.applied else "would prune"
    out.line(
        f"{verb} {report.events} event payload(s) ({report.payload_chars} characters) processed"
        f" before {report.cutoff.isoformat()}; {report.outbox} delivered outbox row(s),"
        f" {report.sent_messages} sent-message record(s)"
    )
    if not report.applied:
        out.line("dry run: nothing changed; pass --apply to prune")
    return EXIT_OK


def _load_app(spec: str) -> Outbox:
    """``module:attribute``: the host's MentorPay (or a callable returning it) or an Outbox."""
    target = _import_host_object(spec, "--app", (MentorPay, Outbox))
    return target.outbox if isinstance(target, MentorPay) else cast(Outbox, target)


def cmd_outbox_run(args: argparse.Namespace, out: Output) -> int:
    """Deliver pending effects through the host's callbacks (from --app)."""
    if not args.app:
        mp = _facade(args)
        try:
            stats = mp.outbox.stats()
        finally:
            mp.engine.dispose()
        if args.json:
            _print_json(out, stats.as_dict())
        else:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(stats.pending_by_kind.items()))
            out.line(f"{stats.pending} effect(s) pending" + (f" ({kinds})" if kinds else ""))
        if stats.pending:
            out.error(
                "nothing delivered: the callbacks live in your application; pass "
                "--app module:attribute naming its MentorPay (or a function returning it)"
            )
            return EXIT_PROBLEMS
        return EXIT_OK
    outbox = _load_app(args.app)
    report = outbox.deliver_pending(limit=args.limit)
    if args.json:
        _print_json(out, report.as_dict())
    else:
        out.line(
            f"delivered {report.delivered} effect(s), {report.failed} failed;"
            f" {report.pending} pending"
        )
    return EXIT_PROBLEMS if report.failed else EXIT_OK


# -- the parser -----------------------------------------------------------------------------------

Handler = Callable[[argparse.Namespace, Output], int]

URL_HELP = "database URL (default: $MENTORPAY_DATABASE_URL, else sqlite:///mentorpay.db)"
JSON_HELP = "print JSON instead of a table"
SINCE_HELP = "start of the period: ISO date or datetime (UTC if naive)"
UNTIL_HELP = "end of the period: ISO date or datetime (default: now)"
PAYOUT_STATUSES = ["requested", "approved", "processing", "paid", "failed", "cancelled", "reversed"]
ENVIRONMENT = """environment:
  MENTORPAY_DATABASE_URL  the database when --url is not given (default sqlite:///mentorpay.db)
  STRIPE_SECRET_KEY       needed by commands that call Stripe (refund, execute, reconcile)
  STRIPE_API_BASE         reach Stripe's API elsewhere (stripe-mock, an emulator, a proxy)
  MENTORPAY_BOOKINGS      MODULE:ATTRIBUTE of your BookingSource (to credit a reviewed payment)"""


def command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    handler: Handler,
) -> argparse.ArgumentParser:
    """Add one runnable command: its help, ``--url`` and the function that runs it."""
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--url", help=URL_HELP)
    parser.set_defaults(func=handler)
    return parser


def group(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add a command group (``mentorpay NAME ACTION``); returns where its actions go."""
    parser = commands.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(
        dest=f"{name}_command", required=True, metavar="ACTION", help="what to do"
    )


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the end-to-end demo offline on a SQLite database",
        description="Run the end-to-end demo offline (no Stripe account) on a SQLite database: "
        "the same one every other command uses unless --url says otherwise.",
    )
    where = demo.add_mutually_exclusive_group()
    where.add_argument("--url", help=URL_HELP + "; must be a SQLite file")
    where.add_argument(
        "--database", metavar="FILE", help="deprecated: use --url sqlite:///FILE instead"
    )
    demo.add_argument(
        "--keep", action="store_true", help="run on the existing file instead of starting fresh"
    )
    demo.set_defaults(func=cmd_demo)


def _add_db(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    actions = group(commands, "db", "database schema")
    command(actions, "upgrade", "apply mentorpay's migrations", cmd_db_upgrade)


def _add_balance(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bal = command(commands, "balance", "show a mentor's balances", cmd_balance)
    bal.add_argument("mentor", help="the mentor's id")
    bal.add_argument("--currency", help="only this currency (e.g. GBP)")


def _add_ledger(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    actions = group(commands, "ledger", "ledger tools")
    command(actions, "verify", "recompute every balance from the journal", cmd_ledger_verify)


def _add_events(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    actions = group(commands, "events", "the webhook inbox")
    ev_list = command(actions, "list", "list stored webhook events, newest first", cmd_events_list)
    ev_list.add_argument(
        "--status",
        choices=INBOX_STATUSES,
        help="only events with this status",
    )
    ev_list.add_argument("--type", help="only events of this type (e.g. charge.refunded)")
    ev_list.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    ev_list.add_argument("--json", action="store_true", help=JSON_HELP)
    ev_list.add_argument(
        "--stale", action="store_true", help="only deferred events older than --older-than"
    )
    ev_list.add_argument(
        "--older-than", default="7d", help="age for --stale, e.g. 7d, 12h (default 7d)"
    )
    prune = command(
        actions,
        "prune",
        "drop payloads of old processed/ignored events (dry run by default)",
        cmd_events_prune,
    )
    prune.add_argument(
        "--older-than", required=True, help="retention window, e.g. 90d, 12w (at least 1d)"
    )
    prune.add_argument("--apply", action="store_true", help="prune (default: only count)")
    prune.add_argument("--json", action="store_true", help=JSON_HELP)
    replay = command(
        actions, "replay", "run stored events through the handlers again", cmd_events_replay
    )
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--failed", action="store_true", help="every failed event, oldest first")
    which.add_argument("--id", help="one event id (evt_...)")


def _add_payouts(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    actions = group(commands, "payouts", "payout requests")
    po_list = command(actions, "list", "list payout requests, newest first", cmd_payouts_list)
    po_list.add_argument("--mentor", help="only this mentor's requests")
    po_list.add_argument("--status", choices=PAYOUT_STATUSES, help="only requests in this state")
    po_list.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    po_list.add_argument("--json", action="store_true", help=JSON_HELP)

    request = command(
        actions, "request", "reserve a mentor's available balance for a payout", cmd_payouts_request
    )
    request.add_argument("mentor", help="the mentor's id")
    request.add_argument("amount", help="in major units, e.g. 100.00")
    request.add_argument("currency", help="e.g. GBP")
    request.add_argument(
        "--destination",
        help="the mentor's connected account (acct_...) for Stripe transfers, or a bank label",
    )

    id_help = "the payout request's id"
    approve = command(actions, "approve", "approve a requested payout", cmd_payouts_action)
    approve.add_argument("id", type=int, help=id_help)
    approve.add_argument("--approver", required=True, help="who approves (not the mentor)")
    execute = command(
        actions, "execute", "send an approved payout's Stripe transfer", cmd_payouts_action
    )
    execute.add_argument("id", type=int, help=id_help)
    paid = command(
        actions, "mark-paid", "manual mode: record the bank transfer", cmd_payouts_action
    )
    paid.add_argument("id", type=int, help=id_help)
    paid.add_argument("--reference", required=True, help="the bank transfer's reference")
    failed = command(
        actions,
        "mark-failed",
        "manual mode: the bank transfer failed; the money returns to available",
        cmd_payouts_action,
    )
    failed.add_argument("id", type=int, help=id_help)
    failed.add_argument("--reason", required=True, help="why it failed (kept on the request)")
    reverse = command(
        actions,
        "reverse",
        "take a paid payout back (Stripe transfers are reversed at Stripe)",
        cmd_payouts_action,
    )
    reverse.add_argument("id", type=int, help=id_help)
    reverse.add_argument("--reason", help="why (kept on the request)")
    cancel = command(actions, "cancel", "cancel a payout not yet sent", cmd_payouts_action)
    cancel.add_argument("id", type=int, help=id_help)


def _add_refund(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    refund = command(commands, "refund", "refund a recorded payment through Stripe", cmd_refund)
    refund.add_argument("payment_intent", help="the payment's PaymentIntent id (pi_...)")
    refund.add_argument(
        "--amount", help="in major units of the payment's currency (default: all that remains)"
    )
    refund.add_argument(
        "--reason", choices=sorted(REFUND_REASONS), help="the reason Stripe records"
    )
    refund.add_argument(
        "--request-id",
        help="your id for this refund (a support ticket): retrying with it never refunds twice",
    )


def _add_outbox(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    actions = group(commands, "outbox", "effects for the host's callbacks")
    run = command(actions, "run", "deliver pending effects (at least once)", cmd_outbox_run)
    run.add_argument(
        "--app",
        help="module:attribute of your MentorPay (or a function returning it), whose "
        "callbacks deliver; without it, only report what is pending",
    )
    run.add_argument("--limit", type=int, help="deliver at most this many effects")
    run.add_argument("--json", action="store_true", help=JSON_HELP)


def _add_payments(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    actions = group(commands, "payments", "payments parked for review (suspense account)")
    review = command(actions, "review", "list payments that need review", cmd_payments_review)
    review.add_argument("--limit", type=int, default=100, help="at most this many (oldest first)")
    review.add_argument("--json", action="store_true", help=JSON_HELP)
    resolve = command(
        actions, "resolve", "credit or refund a payment under review", cmd_payments_resolve
    )
    resolve.add_argument("payment_intent", help="the payment's PaymentIntent id (pi_...)")
    resolve.add_argument(
        "--action",
        required=True,
        choices=["credit", "refund"],
        help="credit the booking's mentor with what was paid, or refund the payer in full",
    )
    resolve.add_argument(
        "--bookings",
        help="MODULE:ATTRIBUTE of your BookingSource (needed to credit; or MENTORPAY_BOOKINGS)",
    )


def _add_release_due(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    due = command(
        commands,
        "release-due",
        "make payments past their hold period available",
        cmd_release_due,
    )
    due.add_argument("--now", help="ISO datetime to use instead of the current time")


def _add_stats(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats = command(commands, "stats", "payment metrics of a period", cmd_stats)
    stats.add_argument("--since", required=True, help=SINCE_HELP)
    stats.add_argument("--until", help=UNTIL_HELP)
    stats.add_argument("--json", action="store_true", help=JSON_HELP)


def _add_reconcile(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rec = command(
        commands, "reconcile", "compare Stripe with the ledger for a period", cmd_reconcile
    )
    rec.add_argument("--since", required=True, help=SINCE_HELP)
    rec.add_argument("--until", help=UNTIL_HELP)
    rec.add_argument("--apply", action="store_true", help="record facts the ledger lacks")
    rec.add_argument("--json", action="store_true", help=JSON_HELP)


#: Each adds one top-level command or group; a new group is one more function here.
SECTIONS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    _add_demo,
    _add_db,
    _add_balance,
    _add_ledger,
    _add_events,
    _add_payouts,
    _add_refund,
    _add_payments,
    _add_outbox,
    _add_release_due,
    _add_stats,
    _add_reconcile,
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree (every argument has help; every command takes --url)."""
    parser = argparse.ArgumentParser(
        prog="mentorpay",
        description="mentorpay: marketplace payments core for Stripe.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mentorpay {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do"
    )
    for add in SECTIONS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None, *, out: Output | None = None) -> int:
    """Entry point of the ``mentorpay`` command; returns the exit code."""
    output = out or Output()
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler = args.func
    try:
        return func(args, output)
    except MentorpayError as exc:
        output.error(exc.message)
        return EXIT_ERROR
    except KeyboardInterrupt:
        output.error("interrupted")
        return 130
    except Exception as exc:  # a CLI prints one line, never a traceback
        if _missing_table(exc):
            output.error(f"the database lacks some of mentorpay's tables: {_UPGRADE_HINT}")
            return EXIT_ERROR
        first_line = (str(exc).strip().splitlines() or [""])[0]
        output.error(f"{type(exc).__name__}: {first_line}")
        return EXIT_ERROR
    finally:
        output.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
