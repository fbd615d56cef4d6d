"""Out-of-order events: defer an event on the payment it needs, drain it when that is recorded.

A refund or dispute for a payment not recorded yet is stored ``deferred`` with ``waiting_for``
set to the payment intent. When the payment is recorded, the same transaction applies the rows
waiting for it (in the order Stripe created the events), up to ``batch`` of them; the rest
follow right after commit in transactions of the same size. On PostgreSQL at READ COMMITTED
both sides take a transaction-scoped advisory lock on the payment intent before deciding, so
one of them always sees the other. Each deferred event is applied inside a savepoint: one that
fails is marked ``failed`` (replayable) instead of blocking its payment forever.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from mentorpay.db import driver_execute, is_retryable, run_in_transaction
from mentorpay.effects import EffectBus
from mentorpay.errors import MentorpayError, PaymentNotFoundError
from mentorpay.events import Effect, EventEnvelope, HandlerResult, HandlerStatus
from mentorpay.outbox import with_ids
from mentorpay.webhooks._inbox import InboxStatus, InboxStore, describe
from mentorpay.webhooks._registry import HandlerRegistry

__all__ = ["INBOX_STATUS", "MORE_DEFERRED", "Deferrals", "lock_key"]

logger = logging.getLogger("mentorpay.webhooks")

#: ``conn.info`` key: payment intents whose drain stopped at the batch size, with the last row.
MORE_DEFERRED = "mentorpay_more_deferred"
_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"

INBOX_STATUS: dict[HandlerStatus, InboxStatus] = {
    "success": "processed",
    "payment_already_processed": "processed",
    "ignored": "ignored",
    "deferred": "deferred",
    "needs_review": "processed",
}


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for a payment intent (collisions only cost a wait)."""
    digest = hashlib.blake2b(f"mentorpay:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(eq=False, slots=True)
class Deferrals:
    """Defer, drain and settle events that wait for something (a payment intent, a transfer)."""

    engine: Engine
    inbox: InboxStore
    #: Deferred events are applied by the handler registered for their type.
    handlers: HandlerRegistry
    bus: EffectBus
    retries: int

    def serialize_on(self, conn: Connection, key: str) -> None:
        """On PostgreSQL, serialize "is the payment recorded?" decisions about one intent.

        At READ COMMITTED, a refund deciding to defer and the payment's transaction deciding
        nothing waits for it could each miss the other's uncommitted row. A transaction-scoped
        advisory lock taken by both before deciding makes one of them see the other's commit.
        """
        if self.inbox.postgres:
            driver_execute(conn, _LOCK_SQL, (lock_key(key),))

    def defer(self, conn: Connection, pi: str, apply: Callable[[], HandlerResult]) -> HandlerResult:
        """Run ``apply`` if the payment is recorded, else answer deferred on ``pi``."""
        try:
            return apply()
        except PaymentNotFoundError:
            pass
        if self.inbox.postgres:
            # Take the lock the payment's transaction also takes, then look again: a payment
            # committed meanwhile is visible now, and one still in flight will see our row.
            self.serialize_on(conn, pi)
            try:
                return apply()
            except PaymentNotFoundError:
                pass
        if self.inbox.ignored_payment(conn, pi):
            logger.info("payment %s is not mentorpay's; event ignored", pi)
            # Still naming the intent: should it turn out to be mentorpay's after all (a plan
            # period's invoice payment, whose intent carries no metadata), it is revived.
            return HandlerResult("ignored", waiting_for=pi)
        return HandlerResult("deferred", waiting_for=pi)

    def settle_orphans(self, conn: Connection, pi: str, now: datetime) -> None:
        """Deferred events for a payment that turned out not to be mentorpay's: ignore them."""
        self.inbox.ignore_waiting(conn, pi, now)

    def drain(
        self, conn: Connection, waiting_for: str, now: datetime, *, after: int, batch: int
    ) -> list[Effect]:
        """Apply up to ``batch`` events deferred on ``waiting_for`` inside ``conn``.

        In Stripe's order within the batch, batches in arrival order. A full batch leaves
        ``waiting_for`` and its last row in ``conn.info``, so the caller continues after commit
        in further transactions instead of holding one open for thousands of events.
        """
        rows = self.inbox.deferred(conn, waiting_for, after, batch)
        if not rows:
            return []
        if len(rows) >= batch:
            conn.info.setdefault(MORE_DEFERRED, {})[waiting_for] = max(r[0] for r in rows)
        parsed: list[tuple[int, int, EventEnvelope | None, str | None]] = []
        for row_id, payload in rows:
            try:
                envelope = EventEnvelope.model_validate_json(payload)
                parsed.append((envelope.created, row_id, envelope, None))
            except ValidationError as exc:
                parsed.append((0, row_id, None, describe(exc)))
        parsed.sort(key=lambda item: (item[0], item[1]))
        effects: list[Effect] = []
        for _, row_id, env, error in parsed:
            values: dict[str, Any]
            if env is None:
                values = {"status": "failed", "last_error": error}
            else:
                try:
                    # A savepoint per event: one bad deferred event must not block the payment.
                    with conn.begin_nested():
                        handler = self.handlers.get(env.type)
                        result = (
                            handler(conn, env) if handler is not None else HandlerResult("ignored")
                        )
                except Exception as exc:
                    if is_retryable(exc):
                        raise
                    logger.error("deferred webhook %s failed: %s", env.id, describe(exc))
                    permanent = isinstance(exc, MentorpayError)
                    values = {
                        "status": "rejected" if permanent else "failed",
                        "last_error": describe(exc),
                    }
                else:
                    status = INBOX_STATUS[result.status]
                    values = {
                        "status": status,
                        "waiting_for": result.waiting_for if status == "deferred" else waiting_for,
                        "processed_at": None if status == "deferred" else now,
                    }
                    effects.extend(with_ids(env.id, result.effects))
            self.inbox.settle(conn, row_id, values)
        return effects

    def drain_from(
        self,
        waiting_for: str,
        after: int,
        drain: Callable[..., list[Effect]],
        now: Callable[[], datetime],
    ) -> list[Effect]:
        """Drain deferred rows past ``after`` in bounded transactions, delivering each batch.

        ``drain`` is the in-transaction drain to use (the processor's, so hooks on it apply).
        """
        effects: list[Effect] = []
        cursor: int | None = after
        while cursor is not None:
            batch, cursor = run_in_transaction(
                self.engine,
                functools.partial(
                    self._drain_batch, waiting_for=waiting_for, after=cursor, drain=drain, now=now
                ),
                retries=self.retries,
            )
            self.bus.emit(batch)
            effects.extend(batch)
        return effects

    def _drain_batch(
        self,
        conn: Connection,
        *,
        waiting_for: str,
        after: int,
        drain: Callable[..., list[Effect]],
        now: Callable[[], datetime],
    ) -> tuple[list[Effect], int | None]:
        """One bounded drain transaction: its effects and where to continue (None: done)."""
        conn.info.pop(MORE_DEFERRED, None)
        self.serialize_on(conn, waiting_for)
        batch = drain(conn, waiting_for, now(), after=after)
        self.bus.stage(conn, batch)
        more: dict[str, int] = conn.info.pop(MORE_DEFERRED, None) or {}
        return batch, more.get(waiting_for)
