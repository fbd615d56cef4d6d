"""``mentorpay events list|prune|replay`` and ``outbox run``: the webhook inbox and the effects
waiting for the host's callbacks."""

from __future__ import annotations

import argparse
from typing import cast

from mentorpay._text_tables import table
from mentorpay.app import MentorPay
from mentorpay.cli._context import facade, import_host_object, print_json
from mentorpay.cli._output import EXIT_OK, EXIT_PROBLEMS, Output
from mentorpay.errors import MentorpayError
from mentorpay.inbox import parse_duration
from mentorpay.outbox import Outbox

__all__ = ["cmd_events_list", "cmd_events_prune", "cmd_events_replay", "cmd_outbox_run"]


def cmd_events_list(args: argparse.Namespace, out: Output) -> int:
    """The webhook inbox, newest first (``--stale``: old deferred events, oldest first)."""
    mp = facade(args)
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
        print_json(out, [e.as_dict() for e in events])
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
    mp = facade(args)
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


def cmd_events_prune(args: argparse.Namespace, out: Output) -> int:
    """Drop the payloads of old processed/ignored events (dry run unless --apply)."""
    mp = facade(args)
    try:
        report = mp.inbox.prune(
            parse_duration(args.older_than),
            apply=args.apply,
            progress=lambda done, total: out.progress(done, total, "pruning"),
        )
    finally:
        mp.engine.dispose()
    if args.json:
        print_json(out, report.as_dict())
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
    target = import_host_object(spec, "--app", (MentorPay, Outbox))
    return target.outbox if isinstance(target, MentorPay) else cast(Outbox, target)


def cmd_outbox_run(args: argparse.Namespace, out: Output) -> int:
    """Deliver pending effects through the host's callbacks (from --app)."""
    if not args.app:
        mp = facade(args)
        try:
            stats = mp.outbox.stats()
        finally:
            mp.engine.dispose()
        if args.json:
            print_json(out, stats.as_dict())
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
        print_json(out, report.as_dict())
    else:
        out.line(
            f"delivered {report.delivered} effect(s), {report.failed} failed;"
            f" {report.pending} pending"
        )
    return EXIT_PROBLEMS if report.failed else EXIT_OK
