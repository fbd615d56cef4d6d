"""Inbox retention and health: prune old payloads, report deferred events that never resolved.

The inbox keeps every verified event so a duplicate is recognized and a failure replayed. Once
an event is final (``processed`` or ``ignored``) and old, its payload serves neither purpose:
:meth:`Inbox.prune` replaces it with a small stub naming the event (``{"mentorpay_pruned":
true, "id": ..., "type": ...}``) and keeps the row, so a redelivery is still answered
``already_processed`` and a replay still parses. ``deferred`` and ``failed`` rows are never
pruned: they are waiting to be applied. Delivered outbox rows past the same window are deleted.

A ``deferred`` event waits for a payment that may never come (a refund of a charge made
outside mentorpay before its payment event, a lost event). :meth:`Inbox.stale` lists those older
than a threshold (``mentorpay events list --stale``); ``mentorpay stats`` counts them.

Pruning works in batches, each its own short transaction, walking the table by id. The SQL on
the inbox table lives with its owner, :mod:`mentorpay.webhooks._inbox`; the outbox's and the
sent messages' with theirs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.db import DEFAULT_RETRIES, read_connection, run_in_transaction
from mentorpay.errors import InvalidRequestError
from mentorpay.notifications import sent_before
from mentorpay.outbox import delivered_before
from mentorpay.webhooks._inbox import (
    PRUNED_MARK,
    InboxEvent,
    count_prunable,
    prune_batch,
    pruned_payload,
    stale_count_query,
    stale_events,
)

__all__ = [
    "DEFAULT_STALE_AFTER",
    "PRUNED_MARK",
    "Inbox",
    "PruneReport",
    "parse_duration",
    "pruned_payload",
]

#: Deferred events older than this are reported as stale.
DEFAULT_STALE_AFTER = timedelta(days=7)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``45s``, ``2w`` -> timedelta; anything else is refused."""
    value = text.strip().lower()
    number, unit = value[:-1], value[-1:]
    if unit not in _UNITS or not number.isdigit() or len(number) > 6:
        raise InvalidRequestError(
            f"not a duration: {text!r} (use a whole number and a unit: 90d, 12h, 30m, 2w)",
            value=text,
        )
    return timedelta(seconds=int(number) * _UNITS[unit])


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What :meth:`Inbox.prune` pruned, or would prune (``applied=False``)."""

    cutoff: datetime
    applied: bool
    #: Final events whose payload was (or would be) replaced by a stub.
    events: int
    #: Characters of payload freed.
    payload_chars: int
    #: Delivered outbox rows (and sent-message records) deleted.
    outbox: int
    sent_messages: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["cutoff"] = self.cutoff.isoformat()
        return data


@dataclass(frozen=True, slots=True)
class Inbox:
    """Retention and health queries over the webhook inbox (``mp.inbox``)."""

    engine: Engine
    _: KW_ONLY
    clock: Callable[[], datetime] = utcnow
    retries: int = DEFAULT_RETRIES

    def prune(
        self,
        older_than: timedelta,
        *,
        apply: bool = False,
        batch: int = 1000,
        progress: Callable[[int, int], None] | None = None,
    ) -> PruneReport:
        """Drop the payloads of final events processed more than ``older_than`` ago.

        A dry run (the default) only counts. ``progress(done, total)`` is called after each
        batch when applying.
        """
        if older_than < timedelta(days=1):
            raise InvalidRequestError(
                "the retention window must be at least one day", older_than=str(older_than)
            )
        if not 1 <= batch <= 10_000:
            raise InvalidRequestError("batch must be between 1 and 10000", batch=batch)
        cutoff = self.clock() - older_than
        with read_connection(self.engine) as conn:
            events, chars = count_prunable(conn, cutoff)
            outbox = delivered_before(conn, cutoff)
            sent = sent_before(conn, cutoff)
        if not apply:
            return PruneReport(cutoff, False, events, chars, outbox, sent)

        done = 0
        after = 0
        while True:
            count, after = run_in_transaction(
                self.engine,
                functools.partial(prune_batch, cutoff=cutoff, after=after, size=batch),
                retries=self.retries,
            )
            if not count:
                break
            done += count
            if progress is not None:
                progress(min(done, events), events)

        def cleanup(conn: Connection) -> tuple[int, int]:
            return delivered_before(conn, cutoff, delete=True), sent_before(
                conn, cutoff, delete=True
            )

        outbox, sent = run_in_transaction(self.engine, cleanup, retries=self.retries)
        return PruneReport(cutoff, True, done, chars, outbox, sent)

    def stale(
        self, older_than: timedelta = DEFAULT_STALE_AFTER, *, limit: int = 100
    ) -> list[InboxEvent]:
        """Deferred events stored more than ``older_than`` ago, oldest first."""
        if not 1 <= limit <= 10_000:
            raise InvalidRequestError("limit must be between 1 and 10000", limit=limit)
        with read_connection(self.engine) as conn:
            return stale_events(conn, self.clock() - older_than, limit)

    def count_stale(self, older_than: timedelta = DEFAULT_STALE_AFTER) -> int:
        """How many deferred events are older than ``older_than``."""
        with read_connection(self.engine) as conn:
            return int(conn.execute(stale_count_query(self.clock() - older_than)).scalar_one())
