"""``mentorpay worker``: apply the webhook events ``ingest`` stored (the fast-acknowledge mode).

Runs until interrupted (``--once``: one pass over what is stored). Several workers, in other
processes or on other machines, share the work safely on PostgreSQL (``FOR UPDATE SKIP
LOCKED``); on SQLite they take turns, one writer at a time.
"""

from __future__ import annotations

import argparse
import os
import time

from mentorpay.app import MentorPay
from mentorpay.cli._context import facade, host_bookings, import_host_object, print_json
from mentorpay.cli._output import EXIT_OK, EXIT_PROBLEMS, Output
from mentorpay.errors import ConfigurationError
from mentorpay.webhooks import WebhookProcessor, WorkSummary

__all__ = ["cmd_worker", "summary_line"]


def summary_line(summary: WorkSummary) -> str:
    """``applied 5 event(s) in 3 batch(es): processed 4, failed 1``."""
    counts = ", ".join(f"{status} {n}" for status, n in sorted(summary.statuses.items()))
    line = f"applied {summary.taken} event(s) in {summary.batches} batch(es)"
    return f"{line}: {counts}" if counts else line


def cmd_worker(args: argparse.Namespace, out: Output) -> int:
    """Apply stored events in batches: once (--once) or until interrupted."""
    if args.app:
        target = import_host_object(args.app, "--app", (MentorPay, WebhookProcessor))
        webhooks = target.webhooks if isinstance(target, MentorPay) else target
        dispose = None
    else:
        spec = args.bookings or os.environ.get("MENTORPAY_BOOKINGS")
        if not spec:
            # Without the host's bookings every payment would be parked or refused.
            raise ConfigurationError(
                "the worker checks each payment against its booking: pass --app "
                "module:attribute (your MentorPay) or --bookings / MENTORPAY_BOOKINGS"
            )
        mp = facade(args, host_bookings(spec))
        webhooks, dispose = mp.webhooks, mp.engine.dispose
    failed = 0
    try:
        while True:
            summary = webhooks.work(limit=args.limit, batch=args.batch)
            failed += summary.statuses.get("failed", 0)
            if args.json:
                print_json(out, summary.as_dict())
            elif summary.taken or args.once:
                out.line(summary_line(summary))
            if args.once:
                break
            if not summary.taken:
                time.sleep(args.interval)  # idle: look again shortly
    finally:
        if dispose is not None:
            dispose()
    return EXIT_PROBLEMS if failed else EXIT_OK
