"""The webhook inbox (``mentorpay_webhook_events``): every statement on it lives here.

One row per verified event id: the claim that makes a delivery win exactly once, the duplicate
peek, the outcome, a failure's record, the rows deferred on a payment, the listings, and the
retention and health queries :mod:`mentorpay.inbox` runs (prune payloads, stale deferrals). The
hot-path statements are built once per engine, so each event only binds parameters; the claim
and the peek go straight to the driver (through Core they cost several times the round trip).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import Engine, Select, and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from mentorpay.db import (
    DEFAULT_RETRIES,
    driver_execute,
    insert_constructor,
    placeholder,
    raw_connection,
    read_connection,
    run_in_transaction,
    time_binder,
)
from mentorpay.errors import MentorpayError
from mentorpay.events import Effect, EventEnvelope
from mentorpay.models import webhook_events_table as _inbox
from mentorpay.outbox import describe_error

__all__ = [
    "FINAL",
    "INBOX_STATUSES",
    "PRUNED_MARK",
    "InboxEvent",
    "InboxStatus",
    "InboxStore",
    "count_prunable",
    "describe",
    "prune_batch",
    "pruned_payload",
    "stale_count_query",
    "stale_events",
]

logger = logging.getLogger("mentorpay.webhooks")

InboxStatus = Literal["processed", "ignored", "deferred", "failed", "rejected", "received"]
INBOX_STATUSES: Final[tuple[InboxStatus, ...]] = (
    "processed",
    "ignored",
    "deferred",
    "failed",
    "rejected",
    "received",  # stored by ``ingest``, not applied yet (``work`` / ``mentorpay worker``)
)
#: Statuses a new delivery (or a replay) may claim again; processed and ignored are final.
#: ``received``: process() or a replay may apply a stored event before the worker does.
_RECLAIMABLE: Final = ("failed", "deferred", "rejected", "received")
FINAL: Final = frozenset({"processed", "ignored"})
#: The fast-acknowledge statements, from constants only ({p}: the driver's placeholder).
_FAST_ACK: Final = {
    "store": "INSERT INTO mentorpay_webhook_events (event_id, type, status, waiting_for,"
    " payload, attempts, last_error, created_at, processed_at) VALUES ({p}, {p}, 'received',"
    " NULL, {p}, 0, NULL, {p}, NULL) ON CONFLICT (event_id) DO NOTHING RETURNING id",
    # A redelivery through ingest queues these again for the worker (as process() retries).
    "requeue": "UPDATE mentorpay_webhook_events SET status = 'received', waiting_for = NULL"
    " WHERE event_id = {p} AND status IN ('failed', 'deferred', 'rejected') RETURNING id",
    "take": "SELECT id, payload FROM mentorpay_webhook_events WHERE status = 'received'"
    " ORDER BY id LIMIT {p}",
    "start": "UPDATE mentorpay_webhook_events SET status = 'processed', attempts = attempts + 1,"
    " processed_at = {p}, last_error = NULL WHERE id = {p} AND status = 'received' RETURNING id",
    "give_up": "UPDATE mentorpay_webhook_events SET status = {p}, attempts = attempts + 1,"
    " last_error = {p}, waiting_for = NULL, processed_at = NULL WHERE id = {p}",
}
describe = describe_error  # an exception as stored in ``last_error`` (bounded)


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """One stored event, as ``mentorpay events list`` shows it (without the payload)."""

    id: int
    event_id: str
    type: str
    status: InboxStatus
    waiting_for: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    processed_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, timestamps in ISO 8601."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["created_at"] = self.created_at.isoformat()
        data["processed_at"] = self.processed_at.isoformat() if self.processed_at else None
        return data


#: The columns of an :class:`InboxEvent`, in its field order.
EVENT_COLUMNS: Final = (
    _inbox.c.id,
    _inbox.c.event_id,
    _inbox.c.type,
    _inbox.c.status,
    _inbox.c.waiting_for,
    _inbox.c.attempts,
    _inbox.c.last_error,
    _inbox.c.created_at,
    _inbox.c.processed_at,
)


class InboxStore:
    """The inbox statements for one engine (PostgreSQL(-compatible) or SQLite)."""

    def __init__(
        self, engine: Engine, *, clock: Callable[[], datetime], retries: int = DEFAULT_RETRIES
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._retries = retries
        name = engine.dialect.name
        insert = insert_constructor(name)  # refuses other databases
        #: Advisory locks and an autocommit peek: PostgreSQL itself (not CockroachDB).
        self.postgres = name == "postgresql"
        p = placeholder(engine)
        # Built from constants only (the placeholder is the driver's); every value is bound.
        peek = "SELECT status FROM mentorpay_webhook_events WHERE event_id = {p}"
        self.peek_sql = peek.format(p=p)
        deferred = (
            "SELECT id, payload FROM mentorpay_webhook_events"
            " WHERE waiting_for = {p} AND status = 'deferred' AND id > {p} ORDER BY id LIMIT {p}"
        )
        self.deferred_sql = deferred.format(p=p)
        if name != "sqlite":
            # FOR UPDATE: a concurrent replay of one of these rows waits, then sees it applied.
            # (SQLite needs none: BEGIN IMMEDIATE already made this the only writer.)
            self.deferred_sql += " FOR UPDATE"
        # The claim runs on every fresh event, so it goes straight to the driver. Timestamps
        # still go through the column type's own bind processor, so SQLite stores them exactly
        # as Core would.
        claim = (
            "INSERT INTO mentorpay_webhook_events (event_id, type, status, waiting_for, payload,"
            " attempts, last_error, created_at, processed_at) VALUES ({p}, {p}, 'processed',"
            " NULL, {p}, 1, NULL, {p}, {p}) ON CONFLICT (event_id) DO NOTHING RETURNING id"
        )
        self.claim_sql = claim.format(p=p)
        self.bind_time = time_binder(engine.dialect)
        ignored = (
            "SELECT 1 FROM mentorpay_webhook_events WHERE waiting_for = {p}"
            " AND status = 'ignored' LIMIT 1"
        )
        self.ignored_sql = ignored.format(p=p)
        self._fast_ack_sql(p, postgres=name != "sqlite")
        now: Any = bindparam("b_now")
        self.reclaim = (
            update(_inbox)
            .where(_inbox.c.event_id == bindparam("b_event_id"), _inbox.c.status.in_(_RECLAIMABLE))
            .values(status="processed", attempts=_inbox.c.attempts + 1, processed_at=now)
            .returning(_inbox.c.id)
        )
        failed = insert(_inbox).values(
            event_id=bindparam("b_event_id"),
            type=bindparam("b_type"),
            status=bindparam("b_status"),
            waiting_for=None,
            payload=bindparam("b_payload"),
            attempts=1,
            last_error=bindparam("b_error"),
            created_at=now,
            processed_at=None,
        )
        self.failure_upsert = failed.on_conflict_do_update(
            index_elements=["event_id"],
            set_={
                "status": failed.excluded.status,
                "attempts": _inbox.c.attempts + 1,
                "last_error": failed.excluded.last_error,
            },
            # Never turn a committed success (a concurrent winner) back into a failure.
            where=_inbox.c.status.in_(_RECLAIMABLE),
        )
        self.finish = (
            update(_inbox)
            .where(_inbox.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                waiting_for=bindparam("b_waiting_for"),
                processed_at=bindparam("b_processed_at"),
                last_error=bindparam("b_last_error"),
            )
        )

    # -- the hot path -------------------------------------------------------------------------

    def peek(self, event_id: str, sql: str) -> str | None:
        """The stored status of an event, read outside any transaction (cheap duplicates).

        ``sql`` is :attr:`peek_sql` (the processor passes its own copy, which tests replace).

        Uses the pooled DBAPI connection directly: through SQLAlchemy, SQLite's ``begin``
        hook would take the write lock (BEGIN IMMEDIATE) for this read, and psycopg would open
        a transaction. A stale answer is harmless: the claim's unique constraint decides.
        """
        raw = raw_connection(self._engine)  # a refused connection: DatabaseUnavailableError
        try:
            driver = raw.driver_connection
            autocommit = self.postgres
            if autocommit:
                driver.autocommit = True  # type: ignore[union-attr]
            try:
                cursor = raw.cursor()
                try:
                    cursor.execute(sql, (event_id,))
                    row = cursor.fetchone()
                finally:
                    cursor.close()
            finally:
                if autocommit:
                    driver.autocommit = False  # type: ignore[union-attr]
        except Exception:
            # A failed read must never fail the delivery: the transaction decides anyway.
            logger.debug("duplicate peek failed; falling back to the claim", exc_info=True)
            raw.invalidate()
            return None
        finally:
            raw.close()
        return None if row is None else str(row[0])

    def claim(
        self, conn: Connection, event_id: str, event_type: str, text: str, now: datetime
    ) -> int | None:
        """Store a new event as ``processed`` (optimistically) or re-claim a failed/deferred one.

        The row id, or None if another delivery already owns the event. ``RETURNING`` matters:
        psycopg reports a rowcount of -1 for ``ON CONFLICT DO NOTHING``.
        """
        stamp = self.bind_time(now)
        claimed = driver_execute(conn, self.claim_sql, (event_id, event_type, text, stamp, stamp))
        if claimed:
            row_id: int = claimed[0][0]
            return row_id
        reclaimed: int | None = conn.execute(
            self.reclaim, {"b_event_id": event_id, "b_now": now}
        ).scalar()
        return reclaimed

    def record_failure(
        self,
        env: EventEnvelope,
        text: str,
        exc: BaseException,
        *,
        status: InboxStatus = "failed",
        effects: Sequence[Effect] = (),
        stage: Callable[[Connection, Sequence[Effect]], None] | None = None,
    ) -> None:
        """Store a failed or rejected attempt in its own transaction (the event's rolled back).

        Never over a committed success. ``effects`` (the alert of a rejection) are staged with
        ``stage`` in that transaction. Never raises: a failure to record is logged.
        """
        error = describe(exc)
        if isinstance(exc, MentorpayError):
            # Expected kinds of failure: the message says it all, a traceback adds noise.
            logger.warning("webhook %s (%s) failed: %s", env.id, env.type, error)
        else:
            logger.error("webhook %s (%s) failed: %s", env.id, env.type, error, exc_info=exc)

        def do(conn: Connection) -> None:
            conn.execute(
                self.failure_upsert,
                {
                    "b_event_id": env.id,
                    "b_type": env.type,
                    "b_payload": text,
                    "b_error": error,
                    "b_status": status,
                    "b_now": self._clock(),
                },
            )
            if effects and stage is not None:
                stage(conn, effects)

        try:
            run_in_transaction(self._engine, do, retries=self._retries)
        except Exception:
            logger.exception("could not record the failure of webhook %s", env.id)

    # -- the fast-acknowledge mode (ingest, then the worker) ----------------------------------

    def _fast_ack_sql(self, p: str, *, postgres: bool) -> None:
        """The statements of ``ingest`` and ``work``, built once like the claim's."""
        sql = {name: template.format(p=p) for name, template in _FAST_ACK.items()}
        self.store_sql, self.requeue_sql = sql["store"], sql["requeue"]
        self.start_sql, self.give_up_sql = sql["start"], sql["give_up"]
        # Workers in other processes or machines take other rows instead of waiting for these.
        # (SQLite has one writer at a time: BEGIN IMMEDIATE made this worker that writer.)
        self.take_sql = sql["take"] + (" FOR UPDATE SKIP LOCKED" if postgres else "")

    def store(
        self, conn: Connection, event_id: str, event_type: str, text: str, now: datetime
    ) -> bool:
        """Store a verified event as ``received`` (or queue a failed/deferred/rejected one again).

        False when the event is already final, or already queued by an earlier delivery.
        """
        stored = driver_execute(
            conn, self.store_sql, (event_id, event_type, text, self.bind_time(now))
        )
        return bool(stored) or bool(driver_execute(conn, self.requeue_sql, (event_id,)))

    def is_final(self, conn: Connection, event_id: str) -> bool:
        """Whether the stored event is ``processed`` or ``ignored`` (inside ``conn``)."""
        row = driver_execute(conn, self.peek_sql, (event_id,))
        return bool(row) and row[0][0] in FINAL

    def take(self, conn: Connection, limit: int) -> list[tuple[Any, ...]]:
        """``(id, payload)`` of the next ``limit`` received rows, in arrival order, locked."""
        return driver_execute(conn, self.take_sql, (limit,))

    def start(self, conn: Connection, row_id: int, now: datetime) -> bool:
        """Mark a taken row ``processed`` optimistically, as the claim does (False: not ours)."""
        return bool(driver_execute(conn, self.start_sql, (self.bind_time(now), row_id)))

    def give_up(self, conn: Connection, row_id: int, status: InboxStatus, error: str) -> None:
        """Record a failed or rejected attempt on a taken row (its savepoint was rolled back)."""
        driver_execute(conn, self.give_up_sql, (status, error, row_id))

    # -- deferred events ----------------------------------------------------------------------

    def deferred(
        self, conn: Connection, waiting_for: str, after: int, limit: int
    ) -> list[tuple[Any, ...]]:
        """``(id, payload)`` of up to ``limit`` rows deferred on ``waiting_for``, past ``after``."""
        return driver_execute(conn, self.deferred_sql, (waiting_for, after, limit))

    @staticmethod
    def settle(conn: Connection, row_id: int, values: dict[str, Any]) -> None:
        """Store the outcome of applying one deferred row (one more attempt)."""
        values["attempts"] = _inbox.c.attempts + 1
        conn.execute(update(_inbox).where(_inbox.c.id == row_id).values(**values))

    def ignored_payment(self, conn: Connection, pi: str) -> bool:
        """Whether ``pi`` is known not to be mentorpay's (an ignored payment event names it)."""
        return bool(driver_execute(conn, self.ignored_sql, (pi,)))

    @staticmethod
    def ignore_waiting(conn: Connection, pi: str, now: datetime, *, revive: bool = False) -> None:
        """Events deferred on a payment that turned out not to be mentorpay's: ignore them.
        ``revive``: the reverse, for a payment that turned out to be (a plan period's invoice
        payment, whose intent carries no metadata): its refunds and disputes wait again."""
        frm, to = ("ignored", "deferred") if revive else ("deferred", "ignored")
        stmt = update(_inbox).where(_inbox.c.waiting_for == pi, _inbox.c.status == frm)
        if revive:  # only refunds and disputes: the intent's own payment events stay ignored
            stmt = stmt.where(
                or_(_inbox.c.type.startswith("charge."), _inbox.c.type.startswith("refund."))
            )
        error = None if revive else f"payment {pi} has no mentorpay booking metadata"
        conn.execute(stmt.values(status=to, processed_at=None if revive else now, last_error=error))

    # -- reading ------------------------------------------------------------------------------

    def payload(self, event_id: str) -> str | None:
        """The stored body of an event, or None if it is unknown."""
        with read_connection(self._engine) as conn:
            found: str | None = conn.execute(
                select(_inbox.c.payload).where(_inbox.c.event_id == event_id)
            ).scalar()
        return found

    def event_ids(self, statuses: Sequence[str]) -> list[str]:
        """The ids of the events in ``statuses``, oldest first."""
        with read_connection(self._engine) as conn:
            return list(
                conn.execute(
                    select(_inbox.c.event_id)
                    .where(_inbox.c.status.in_(statuses))
                    .order_by(_inbox.c.id)
                ).scalars()
            )

    def events(self, status: str | None, limit: int, event_type: str | None) -> list[InboxEvent]:
        """Stored events, newest first, optionally only those with one status and/or type."""
        query = select(*EVENT_COLUMNS)
        if status is not None:
            query = query.where(_inbox.c.status == status)
        if event_type is not None:
            query = query.where(_inbox.c.type == event_type)
        query = query.order_by(_inbox.c.id.desc()).limit(limit)
        with read_connection(self._engine) as conn:
            rows = conn.execute(query).all()
        return [InboxEvent(**row._mapping) for row in rows]


# -- retention and health (mentorpay.inbox.Inbox, mentorpay.analytics) --------------------------

#: How every pruned payload starts (so a pruned row is recognized without another column).
PRUNED_MARK: Final = '{"mentorpay_pruned":true'


def pruned_payload(event_id: str, event_type: str) -> str:
    """The stub that replaces a pruned payload: still a parseable event, with no data."""
    stub = {
        "mentorpay_pruned": True,
        "id": event_id,
        "type": event_type,
        "created": 0,
        "data": {"object": {}},
    }
    return json.dumps(stub, separators=(",", ":"), ensure_ascii=False)


def prunable(cutoff: datetime) -> ColumnElement[bool]:
    """Final events processed before ``cutoff`` whose payload is not a stub yet."""
    i = _inbox.c
    return and_(
        i.status.in_(tuple(FINAL)),
        i.processed_at < cutoff,
        ~i.payload.startswith(PRUNED_MARK, autoescape=True),
    )


def count_prunable(conn: Connection, cutoff: datetime) -> tuple[int, int]:
    """How many events :func:`prune_batch` would stub, and the characters of their payloads."""
    events, chars = conn.execute(
        select(func.count(), func.coalesce(func.sum(func.length(_inbox.c.payload)), 0)).where(
            prunable(cutoff)
        )
    ).one()
    return int(events), int(chars)


def prune_batch(conn: Connection, cutoff: datetime, *, after: int, size: int) -> tuple[int, int]:
    """Stub the payloads of the next ``size`` prunable rows past ``after``; (count, last id)."""
    i = _inbox.c
    rows = conn.execute(
        select(i.id, i.event_id, i.type)
        .where(prunable(cutoff), i.id > after)
        .order_by(i.id)
        .limit(size)
    ).all()
    for row_id, event_id, event_type in rows:
        conn.execute(
            update(_inbox)
            .where(i.id == row_id)
            .values(payload=pruned_payload(event_id, event_type))
        )
    return len(rows), (rows[-1][0] if rows else after)


def _stale(cutoff: datetime) -> ColumnElement[bool]:
    return and_(_inbox.c.status == "deferred", _inbox.c.created_at < cutoff)


def stale_events(conn: Connection, cutoff: datetime, limit: int) -> list[InboxEvent]:
    """Deferred events stored before ``cutoff``, oldest first."""
    query = select(*EVENT_COLUMNS).where(_stale(cutoff)).order_by(_inbox.c.id).limit(limit)
    return [InboxEvent(**row._mapping) for row in conn.execute(query).all()]


def stale_count_query(cutoff: datetime) -> Select[int]:
    """The count of deferred events stored before ``cutoff`` (for a caller's own connection)."""
    return select(func.count()).where(_stale(cutoff))


#: The statuses an operator looks at: events that did not apply (yet).
ATTENTION_STATUSES: Final = ("failed", "deferred", "rejected")


def attention_counts_query() -> Select[Any]:
    """``(status, count)`` of the failed, deferred and rejected events (the status index)."""
    return (
        select(_inbox.c.status, func.count())
        .where(_inbox.c.status.in_(ATTENTION_STATUSES))
        .group_by(_inbox.c.status)
    )


def newest_query(status: str, limit: int) -> Select[Any]:
    """The newest ``limit`` events in one status (the ``(status, id)`` index, backwards)."""
    return (
        select(*EVENT_COLUMNS)
        .where(_inbox.c.status == status)
        .order_by(_inbox.c.id.desc())
        .limit(limit)
    )
