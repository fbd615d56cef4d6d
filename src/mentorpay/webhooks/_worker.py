"""The worker of the fast-acknowledge mode: apply the events ``ingest`` stored, in batches.

A batch is one transaction: take up to ``batch`` ``received`` rows in arrival order (on
PostgreSQL ``FOR UPDATE SKIP LOCKED``, so workers in other processes or machines take other
rows; on SQLite ``BEGIN IMMEDIATE`` makes this worker the one writer), then apply each inside
its own savepoint through the very dispatch ``process()`` uses: the origin rule, the handler
registry, deferral, the outbox. An event whose handler fails rolls back to its savepoint only
and is recorded as ``process()`` records it: ``rejected`` (a typed error about the event, with
its ``event_rejected`` alert) or ``failed`` (anything else; a redelivery or ``replay`` retries
it). A serialization failure or deadlock rolls back and retries the whole batch. After commit,
the batch's effects go to the callbacks and long deferred drains continue, as after
``process()``.

A worker killed mid-batch commits nothing of that batch: its rows are still ``received`` and
the next ``work`` applies them, with the same outbox effects ids (exactly once).
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from mentorpay.db import driver_execute, is_retryable, run_in_transaction
from mentorpay.effects import EffectBus
from mentorpay.errors import InvalidRequestError, MentorpayError
from mentorpay.events import Effect, EventEnvelope
from mentorpay.webhooks._deferral import INBOX_STATUS, MORE_DEFERRED
from mentorpay.webhooks._inbox import InboxStatus, InboxStore, describe

__all__ = ["InboxWorker", "WorkSummary"]

logger = logging.getLogger("mentorpay.webhooks")


@contextmanager
def _savepoint(conn: Connection) -> Iterator[None]:
    """One event's savepoint, straight on the driver: Core compiles a savepoint statement on
    every use (a third of the worker's time per event); nested Core savepoints still work."""
    driver_execute(conn, "SAVEPOINT mentorpay_event", ())
    try:
        yield
    except Exception:
        driver_execute(conn, "ROLLBACK TO SAVEPOINT mentorpay_event", ())
        driver_execute(conn, "RELEASE SAVEPOINT mentorpay_event", ())
        raise
    driver_execute(conn, "RELEASE SAVEPOINT mentorpay_event", ())


class _Applied(Protocol):
    """What the processor's dispatch answers for one event (its ``_Outcome``)."""

    status: Any
    effects: list[Effect]
    more_deferred: dict[str, int]


Dispatch = Callable[[Connection, EventEnvelope, int, datetime], _Applied]


@dataclass(frozen=True, slots=True)
class WorkSummary:
    """What one ``work`` call applied: rows taken, batches committed, rows per inbox status."""

    taken: int
    batches: int
    statuses: dict[str, int] = field(default_factory=dict)
    #: Effects committed (also delivered to the after-commit callbacks).
    effects: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "taken": self.taken,
            "batches": self.batches,
            "statuses": dict(self.statuses),
            "effects": self.effects,
        }


@dataclass(slots=True)
class _Batch:
    """One batch transaction's result (built afresh on each retry of the transaction)."""

    taken: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    effects: list[Effect] = field(default_factory=list)
    more: dict[str, int] = field(default_factory=dict)
    #: Ended early by a deadlock or serialization failure (the next batches are smaller).
    cut: bool = False


@dataclass(eq=False, slots=True)
class InboxWorker:
    """Apply ``received`` events in batches, one savepoint per event (see the module)."""

    engine: Engine
    inbox: InboxStore
    bus: EffectBus
    dispatch: Dispatch
    #: The ``event_rejected`` alert of an event that can never apply (the processor's).
    rejected: Callable[[EventEnvelope, MentorpayError], list[Effect]]
    #: Continue a deferred drain cut at its batch size: (waiting_for, after row).
    drain_more: Callable[[str, int], object]
    clock: Callable[[], datetime]
    retries: int

    def run(self, *, limit: int | None = None, batch: int = 100) -> WorkSummary:
        """Apply up to ``limit`` stored events (None: until none is left), ``batch`` per commit."""
        if not 1 <= batch <= 10_000:
            raise InvalidRequestError("batch must be between 1 and 10000", batch=batch)
        if limit is not None and limit < 0:
            raise InvalidRequestError("limit must not be negative", limit=limit)
        taken = batches = effects = 0
        statuses: Counter[str] = Counter()
        current = batch  # halved after a deadlock with another worker, doubled back after
        while limit is None or taken < limit:
            size = current if limit is None else min(current, limit - taken)
            done = run_in_transaction(
                self.engine, functools.partial(self._batch, size=size), retries=self.retries
            )
            if not done.taken:
                break
            batches += 1
            current = max(1, current // 2) if done.cut else min(batch, current * 2)
            taken += done.taken
            statuses.update(done.statuses)
            effects += len(done.effects)
            self.bus.emit(done.effects)
            for waiting_for, after in done.more.items():
                try:
                    self.drain_more(waiting_for, after)
                except Exception:
                    # Committed; what is left stays deferred (events list --stale, replay).
                    logger.exception("continuing the deferred events of %s failed", waiting_for)
        return WorkSummary(taken, batches, dict(statuses), effects)

    def _batch(self, conn: Connection, size: int) -> _Batch:
        done = _Batch()
        for row_id, payload in self.inbox.take(conn, size):
            try:
                status = self._one(conn, row_id, payload, done)
            except Exception as exc:
                if not (done.taken and is_retryable(exc)):
                    raise  # nothing applied yet: run_in_transaction retries after a pause
                # A deadlock with another worker (say, both crediting one mentor): its savepoint
                # released this event's locks; commit what applied, the rest stays received.
                logger.info("batch cut at a retryable failure: %s", type(exc).__name__)
                done.cut = True
                break
            done.taken += 1
            done.statuses[status] += 1
        return done

    def _one(self, conn: Connection, row_id: int, payload: str, done: _Batch) -> InboxStatus:
        """Apply one taken row inside its savepoint; its inbox status afterwards."""
        try:
            env = EventEnvelope.model_validate_json(payload)
        except ValidationError as exc:  # ingest parsed it; only a hand-edited row gets here
            self.inbox.give_up(conn, row_id, "failed", describe(exc))
            return "failed"
        conn.info.pop(MORE_DEFERRED, None)
        try:
            with _savepoint(conn):
                if not self.inbox.start(conn, row_id, self.clock()):
                    return "processed"  # applied meanwhile by process() or a replay
                outcome = self.dispatch(conn, env, row_id, self.clock())
        except Exception as exc:
            if is_retryable(exc):
                raise  # a deadlock or serialization failure: the whole batch again
            if isinstance(exc, MentorpayError):
                logger.warning("webhook %s (%s) rejected: %s", env.id, env.type, describe(exc))
                self.inbox.give_up(conn, row_id, "rejected", describe(exc))
                alert = self.rejected(env, exc)
                self.bus.stage(conn, alert)  # applied effects were staged by the dispatch
                done.effects.extend(alert)
                return "rejected"
            logger.error("webhook %s (%s) failed: %s", env.id, env.type, exc, exc_info=exc)
            self.inbox.give_up(conn, row_id, "failed", describe(exc))
            return "failed"
        done.effects.extend(outcome.effects)
        done.more.update(outcome.more_deferred)
        return INBOX_STATUS[outcome.status]
