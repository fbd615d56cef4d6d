"""Group commit for the fast-acknowledge mode: concurrent ``ingest`` calls share commits.

Each caller hands its verified event to a writer thread and waits. A writer takes every
event pending at that moment (up to ``max_batch``), stores them in one transaction, commits
once, and only then releases their callers: each answer still means "durable", but a commit's
flush is paid once per batch instead of once per event.

SQLite has one writer at a time, so it gets one writer thread. PostgreSQL commits in parallel
on several connections, so it gets a few writer threads (each gathering its own batches) from
the engine's pool. Threads start on the first ingest and are daemons: a caller still waiting
when the process exits was never answered, so Stripe delivers that event again.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from mentorpay.db import run_in_transaction
from mentorpay.webhooks._inbox import InboxStore

__all__ = ["DEFAULT_WRITERS", "IngestWriter"]

logger = logging.getLogger("mentorpay.webhooks")

#: Writer threads per dialect (measured with benchmarks/webhooks.py; see the CHANGELOG).
DEFAULT_WRITERS: Final = {"sqlite": 1}
_POSTGRES_WRITERS: Final = 4


@dataclass(eq=False, slots=True)
class _Pending:
    """One caller's event, and the answer it waits for."""

    event_id: str
    event_type: str
    text: str
    done: threading.Event = field(default_factory=threading.Event)
    stored: bool = False
    error: BaseException | None = None


class IngestWriter:
    """Store verified events durably for many threads at once, one commit per batch."""

    #: Events per shared transaction at most (bounds its size and each caller's wait).
    max_batch: int = 500

    def __init__(
        self,
        engine: Engine,
        inbox: InboxStore,
        *,
        clock: Callable[[], datetime],
        retries: int,
        writers: int | None = None,
    ) -> None:
        self._engine = engine
        self._inbox = inbox
        self._clock = clock
        self._retries = retries
        name = engine.dialect.name
        self.writers = writers or DEFAULT_WRITERS.get(name, _POSTGRES_WRITERS)
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()

    def store(self, event_id: str, event_type: str, text: str) -> bool:
        """Store one event; True once it is durable and queued, False if already final.

        Raises what the shared transaction raised (DatabaseUnavailableError, DatabaseBusyError):
        then the event may not be stored, and the caller answers 5xx so Stripe retries.
        """
        if len(self._threads) < self.writers:
            self._start()
        pending = _Pending(event_id, event_type, text)
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.stored

    def _start(self) -> None:
        with self._start_lock:
            while len(self._threads) < self.writers:
                thread = threading.Thread(
                    target=self._run, name=f"mentorpay-ingest-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]  # blocks until one caller is waiting
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[_Pending]) -> None:
        try:
            stored = run_in_transaction(
                self._engine, lambda conn: self._store_all(conn, batch), retries=self._retries
            )
        except BaseException as exc:  # every caller of the batch learns it; the thread lives on
            logger.warning("storing %d webhook event(s) failed: %s", len(batch), exc)
            for pending in batch:
                pending.error = exc
                pending.done.set()
            return
        for pending, ok in zip(batch, stored, strict=True):
            pending.stored = ok
            pending.done.set()

    def _store_all(self, conn: Connection, batch: list[_Pending]) -> list[bool]:
        now = self._clock()
        inbox = self._inbox
        return [
            inbox.store(conn, p.event_id, p.event_type, p.text, now)
            or not inbox.is_final(conn, p.event_id)
            for p in batch
        ]
