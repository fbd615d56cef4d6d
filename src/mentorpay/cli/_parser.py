"""The ``mentorpay`` command tree: every command, its arguments and its help.

Building it loads nothing but argparse: each command names its handler as
``"module:function"`` inside this package (``"payouts:cmd_payouts_list"`` is
:func:`mentorpay.cli.payouts.cmd_payouts_list`), imported only once that command runs, so
``mentorpay --help`` and ``--version`` start without SQLAlchemy, Stripe or pydantic. For the
same reason the choices below are literals; the tests check them against the library's own.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from mentorpay._version import __version__

__all__ = ["INBOX_STATUSES", "PAYOUT_STATUSES", "REFUND_REASONS", "build_parser"]

if TYPE_CHECKING:  # argparse's class is generic only to type checkers
    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

URL_HELP = "database URL (default: $MENTORPAY_DATABASE_URL, else sqlite:///mentorpay.db)"
JSON_HELP = "print JSON instead of a table"
SINCE_HELP = "start of the period: ISO date or datetime (UTC if naive)"
PROGRESS_HELP = "draw a progress bar on stderr even when it is not a terminal"
UNTIL_HELP = "end of the period: ISO date or datetime (default: now)"
#: mentorpay.payouts.PAYOUT_STATUSES, mentorpay.webhooks.INBOX_STATUSES and
#: mentorpay.gateway.REFUND_REASONS, spelled out (see the module docstring).
PAYOUT_STATUSES = ("requested", "approved", "processing", "paid", "failed", "cancelled", "reversed")
INBOX_STATUSES = ("processed", "ignored", "deferred", "failed", "rejected", "received")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
ENVIRONMENT = """environment:
  MENTORPAY_DATABASE_URL  the database when --url is not given (default sqlite:///mentorpay.db)
  STRIPE_SECRET_KEY       needed by commands that call Stripe (refund, execute, reconcile)
  STRIPE_API_BASE         reach Stripe's API elsewhere (stripe-mock, an emulator, a proxy)
  MENTORPAY_BOOKINGS      MODULE:ATTRIBUTE of your BookingSource (to credit a reviewed payment)"""


def command(commands: Commands, name: str, help_text: str, handler: str) -> argparse.ArgumentParser:
    """Add one runnable command: its help, ``--url`` and the ``"module:function"`` that runs
    it."""
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--url", help=URL_HELP)
    parser.set_defaults(func=handler)
    return parser


def group(commands: Commands, name: str, help_text: str) -> Commands:
    """Add a command group (``mentorpay NAME ACTION``); returns where its actions go."""
    parser = commands.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(
        dest=f"{name}_command", required=True, metavar="ACTION", help="what to do"
    )


def _add_demo(commands: Commands) -> None:
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
    demo.set_defaults(func="db:cmd_demo")


def _add_db(commands: Commands) -> None:
    actions = group(commands, "db", "database schema")
    command(actions, "upgrade", "apply mentorpay's migrations", "db:cmd_db_upgrade")


def _add_balance(commands: Commands) -> None:
    bal = command(commands, "balance", "show a mentor's balances", "ledger:cmd_balance")
    bal.add_argument("mentor", help="the mentor's id")
    bal.add_argument("--currency", help="only this currency (e.g. GBP)")


def _add_ledger(commands: Commands) -> None:
    actions = group(commands, "ledger", "ledger tools")
    verify = command(
        actions, "verify", "recompute every balance from the journal", "ledger:cmd_ledger_verify"
    )
    verify.add_argument(
        "--full",
        action="store_true",
        help="read the whole journal, not only the entries since the last clean check",
    )
    verify.add_argument("--progress", action="store_true", help=PROGRESS_HELP)


def _add_events(commands: Commands) -> None:
    actions = group(commands, "events", "the webhook inbox")
    ev_list = command(
        actions, "list", "list stored webhook events, newest first", "events:cmd_events_list"
    )
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
        "events:cmd_events_prune",
    )
    prune.add_argument(
        "--older-than", required=True, help="retention window, e.g. 90d, 12w (at least 1d)"
    )
    prune.add_argument("--apply", action="store_true", help="prune (default: only count)")
    prune.add_argument("--json", action="store_true", help=JSON_HELP)
    replay = command(
        actions,
        "replay",
        "run stored events through the handlers again",
        "events:cmd_events_replay",
    )
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--failed", action="store_true", help="every failed event, oldest first")
    which.add_argument("--id", help="one event id (evt_...)")


def _add_payouts(commands: Commands) -> None:
    actions = group(commands, "payouts", "payout requests")
    po_list = command(
        actions, "list", "list payout requests, newest first", "payouts:cmd_payouts_list"
    )
    po_list.add_argument("--mentor", help="only this mentor's requests")
    po_list.add_argument("--status", choices=PAYOUT_STATUSES, help="only requests in this state")
    po_list.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    po_list.add_argument("--json", action="store_true", help=JSON_HELP)

    request = command(
        actions,
        "request",
        "reserve a mentor's available balance for a payout",
        "payouts:cmd_payouts_request",
    )
    request.add_argument("mentor", help="the mentor's id")
    request.add_argument("amount", help="in major units, e.g. 100.00")
    request.add_argument("currency", help="e.g. GBP")
    request.add_argument(
        "--destination",
        help="the mentor's connected account (acct_...) for Stripe transfers, or a bank label",
    )

    id_help = "the payout request's id"
    approve = command(
        actions, "approve", "approve a requested payout", "payouts:cmd_payouts_action"
    )
    approve.add_argument("id", type=int, help=id_help)
    approve.add_argument("--approver", required=True, help="who approves (not the mentor)")
    execute = command(
        actions,
        "execute",
        "send an approved payout's Stripe transfer",
        "payouts:cmd_payouts_action",
    )
    execute.add_argument("id", type=int, help=id_help)
    paid = command(
        actions, "mark-paid", "manual mode: record the bank transfer", "payouts:cmd_payouts_action"
    )
    paid.add_argument("id", type=int, help=id_help)
    paid.add_argument("--reference", required=True, help="the bank transfer's reference")
    failed = command(
        actions,
        "mark-failed",
        "manual mode: the bank transfer failed; the money returns to available",
        "payouts:cmd_payouts_action",
    )
    failed.add_argument("id", type=int, help=id_help)
    failed.add_argument("--reason", required=True, help="why it failed (kept on the request)")
    reverse = command(
        actions,
        "reverse",
        "take a paid payout back (Stripe transfers are reversed at Stripe)",
        "payouts:cmd_payouts_action",
    )
    reverse.add_argument("id", type=int, help=id_help)
    reverse.add_argument("--reason", help="why (kept on the request)")
    cancel = command(
        actions, "cancel", "cancel a payout not yet sent", "payouts:cmd_payouts_action"
    )
    cancel.add_argument("id", type=int, help=id_help)


def _add_accounts(commands: Commands) -> None:
    actions = group(commands, "accounts", "mentors' Stripe connected accounts")
    listing = command(
        actions, "list", "every mentor's account and its state", "accounts:cmd_accounts_list"
    )
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    show = command(
        actions, "show", "one mentor's account and what is due", "accounts:cmd_accounts_show"
    )
    show.add_argument("mentor", help="the mentor's id")
    show.add_argument("--json", action="store_true", help=JSON_HELP)


def _add_refund(commands: Commands) -> None:
    refund = command(
        commands, "refund", "refund a recorded payment through Stripe", "payments:cmd_refund"
    )
    refund.add_argument("payment_intent", help="the payment's PaymentIntent id (pi_...)")
    refund.add_argument(
        "--amount", help="in major units of the payment's currency (default: all that remains)"
    )
    refund.add_argument("--reason", choices=REFUND_REASONS, help="the reason Stripe records")
    refund.add_argument(
        "--request-id",
        help="your id for this refund (a support ticket): retrying with it never refunds twice",
    )


def _add_outbox(commands: Commands) -> None:
    actions = group(commands, "outbox", "effects for the host's callbacks")
    run = command(
        actions, "run", "deliver pending effects (at least once)", "events:cmd_outbox_run"
    )
    run.add_argument(
        "--app",
        help="module:attribute of your MentorPay (or a function returning it), whose "
        "callbacks deliver; without it, only report what is pending",
    )
    run.add_argument("--limit", type=int, help="deliver at most this many effects")
    run.add_argument("--json", action="store_true", help=JSON_HELP)


def _add_worker(commands: Commands) -> None:
    worker = command(
        commands,
        "worker",
        "apply webhook events stored by ingest (the fast-acknowledge mode), in batches",
        "worker:cmd_worker",
    )
    worker.add_argument(
        "--app",
        help="module:attribute of your MentorPay or its WebhookProcessor (or a function "
        "returning it): its bookings and callbacks apply the events",
    )
    worker.add_argument(
        "--bookings",
        help="without --app: MODULE:ATTRIBUTE of your BookingSource (or MENTORPAY_BOOKINGS)",
    )
    worker.add_argument("--once", action="store_true", help="one pass over what is stored")
    worker.add_argument(
        "--batch", type=int, default=100, help="events per transaction (default 100)"
    )
    worker.add_argument("--limit", type=int, help="at most this many events per pass")
    worker.add_argument(
        "--interval", type=float, default=0.5, help="seconds to wait when idle (default 0.5)"
    )
    worker.add_argument("--json", action="store_true", help=JSON_HELP)


def _add_payments(commands: Commands) -> None:
    actions = group(commands, "payments", "payments parked for review (suspense account)")
    review = command(
        actions, "review", "list payments that need review", "payments:cmd_payments_review"
    )
    review.add_argument("--limit", type=int, default=100, help="at most this many (oldest first)")
    review.add_argument("--json", action="store_true", help=JSON_HELP)
    resolve = command(
        actions,
        "resolve",
        "credit or refund a payment under review",
        "payments:cmd_payments_resolve",
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


def _add_release_due(commands: Commands) -> None:
    due = command(
        commands,
        "release-due",
        "make payments past their hold period available",
        "ledger:cmd_release_due",
    )
    due.add_argument("--now", help="ISO datetime to use instead of the current time")
    due.add_argument("--progress", action="store_true", help=PROGRESS_HELP)


def _add_stats(commands: Commands) -> None:
    stats = command(commands, "stats", "payment metrics of a period", "reports:cmd_stats")
    stats.add_argument("--since", required=True, help=SINCE_HELP)
    stats.add_argument("--until", help=UNTIL_HELP)
    stats.add_argument("--json", action="store_true", help=JSON_HELP)


def _add_reconcile(commands: Commands) -> None:
    rec = command(
        commands,
        "reconcile",
        "compare Stripe with the ledger for a period",
        "reports:cmd_reconcile",
    )
    rec.add_argument("--since", required=True, help=SINCE_HELP)
    rec.add_argument("--until", help=UNTIL_HELP)
    rec.add_argument("--apply", action="store_true", help="record facts the ledger lacks")
    rec.add_argument("--json", action="store_true", help=JSON_HELP)


def _add_plans(commands: Commands) -> None:
    actions = group(commands, "plans", "mentorship plans: subscriptions, packages, credits")
    listing = command(actions, "list", "list plan purchases, newest first", "plans:cmd_plans_list")
    listing.add_argument("--mentee", help="only this mentee's purchases")
    listing.add_argument("--mentor", help="only this mentor's plans sold")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    show = command(actions, "show", "one purchase, its periods and credits", "plans:cmd_plans_show")
    show.add_argument("id", help="the purchase's id, or its Stripe subscription id (sub_...)")
    show.add_argument("--json", action="store_true", help=JSON_HELP)
    expire = command(
        actions,
        "expire",
        "lapse unused credits past their end and release the rest to mentors (daily job)",
        "plans:cmd_plans_expire",
    )
    expire.add_argument("--now", help="expire as of this ISO date or datetime (default: now)")
    expire.add_argument("--json", action="store_true", help=JSON_HELP)


#: Each adds one top-level command or group; a new group is one more function here.
SECTIONS: tuple[Callable[[Commands], None], ...] = (
    _add_demo,
    _add_db,
    _add_balance,
    _add_ledger,
    _add_events,
    _add_payouts,
    _add_accounts,
    _add_plans,
    _add_refund,
    _add_payments,
    _add_outbox,
    _add_worker,
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
