"""The outbox: effects for the host, stored with the ledger change, delivered at least once.

A business effect (a payment succeeded, a refund applied, a payout settled) is written to
``mentorpay_outbox`` in the same transaction as the ledger change that caused it, so the two
commit or roll back together. After commit the writer runs the host's callbacks and marks the
row ``delivered``. If the process dies in between, or a callback raises, the row stays
``pending`` and :meth:`Outbox.deliver_pending` (``mentorpay outbox run``) delivers it later.

Delivery is at least once: a crash after a callback ran but before the row was marked runs it
again. Every effect therefore carries a stable :attr:`~mentorpay.events.Effect.id` (the event
id, the kind and its index among the event's effects of that kind, or the payout's business key)
that the host deduplicates on; the ready-made mailer (:mod:`mentorpay.notifications`) does.

Only kinds with a callback registered in this process (:meth:`Outbox.on`, before deliveries
start) are stored: without a listener there is nobody to deliver to, and the hot path stays free
of writes for hosts that use no callbacks. Register the same callbacks in every process.

Two deliverers never work on one row at once in the normal case: a row carries
``claimed_until``. The writer claims its rows when it inserts them; ``deliver_pending`` claims a
batch in a short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent runs take
different rows instead of waiting) and runs the callbacks outside it. A claim that outlives its
lease (the deliverer died) is taken over by the next run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Engine, Select, and_, func, or_, select, update
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.db import DEFAULT_RETRIES, insert_for, read_connection, run_in_transaction
from mentorpay.errors import ConfigurationError, InvalidRequestError
from mentorpay.events import EFFECT_KINDS, Effect, EffectKind
from mentorpay.models import outbox_table as _outbox

__all__ = [
    "DEFAULT_LEASE",
    "DeliveryReport",
    "Outbox",
    "OutboxStats",
    "delivered_before",
    "describe_error",
    "pending_count_query",
    "with_ids",
]

logger = logging.getLogger("mentorpay.outbox")

#: How long a deliverer owns the rows it claimed; a crashed one's rows are retried after it.
DEFAULT_LEASE = timedelta(minutes=2)
_ID_MAX = 255
_ERROR_MAX = 2000
_BATCH = 100

Callback = Callable[[Effect], None]


def _fit(effect_id: str) -> str:
    """Ids longer than the column are replaced by their digest (still stable)."""
    if len(effect_id) <= _ID_MAX:
        return effect_id
    return "sha256:" + hashlib.sha256(effect_id.encode()).hexdigest()


def with_ids(source: str, effects: Iterable[Effect]) -> list[Effect]:
    """Give effects without an id a stable one: ``{source}:{kind}:{n}``.

    ``source`` is the event id; ``n`` counts effects of that kind within the event, so the
    same committed event always yields the same ids. Effects that have an id keep it.
    """
    counts: dict[str, int] = defaultdict(int)
    out: list[Effect] = []
    for effect in effects:
        if effect.id:
            out.append(effect)
            continue
        n = counts[effect.kind]
        counts[effect.kind] += 1
        out.append(replace(effect, id=_fit(f"{source}:{effect.kind}:{n}")))
    return out


def describe_error(exc: BaseException) -> str:
    """An exception as stored in a ``last_error`` column (the outbox's, the inbox's): bounded."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _ERROR_MAX else text[: _ERROR_MAX - 1] + "…"


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one :meth:`Outbox.deliver_pending` run did."""

    delivered: int
    failed: int
    #: Rows still pending afterwards (every kind, claimed or not).
    pending: int

    def as_dict(self) -> dict[str, int]:
        """JSON-ready."""
        return {"delivered": self.delivered, "failed": self.failed, "pending": self.pending}


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Pending effects, for monitoring (``mentorpay outbox run``, ``mentorpay stats``)."""

    pending: int
    #: Pending rows whose last delivery attempt raised.
    failing: int
    oldest_pending_at: datetime | None
    pending_by_kind: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, timestamps in ISO 8601."""
        oldest = self.oldest_pending_at
        return {
            "pending": self.pending,
            "failing": self.failing,
            "oldest_pending_at": oldest.isoformat() if oldest else None,
            "pending_by_kind": dict(self.pending_by_kind),
        }


class Outbox:
    """Stores effects in the caller's transaction and delivers them to callbacks after commit.

    One per process, shared by the webhook processor and the payout service
    (``mp.outbox``). ``on`` is for start-up, before deliveries arrive.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        retries: int = DEFAULT_RETRIES,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        if lease <= timedelta(0):
            raise ConfigurationError("the outbox lease must be positive")
        self._engine = engine
        self._clock = clock
        self._retries = retries
        self._lease = lease
        self._callbacks: dict[str, list[Callback]] = defaultdict(list)

    # -- registration -------------------------------------------------------------------------

    def on(self, effect_kind: EffectKind, callback: Callback) -> None:
        """Call ``callback(effect)`` after commit, at least once per committed effect."""
        if effect_kind not in EFFECT_KINDS:
            raise ConfigurationError(
                f"unknown effect kind {effect_kind!r}; expected one of {', '.join(EFFECT_KINDS)}"
            )
        self._callbacks[effect_kind].append(callback)

    @property
    def kinds(self) -> frozenset[str]:
        """The effect kinds this process has callbacks for (and so stores)."""
        return frozenset(k for k, cbs in self._callbacks.items() if cbs)

    # -- writing, inside the caller's transaction ---------------------------------------------

    def stage(self, conn: Connection, effects: Sequence[Effect]) -> None:
        """Store ``effects`` (with ids) in ``conn``'s transaction, claimed by this process.

        Kinds nobody listens to are skipped. Storing an id twice is a no-op, so a payout
        effect recorded by both a service call and its webhook is delivered once.
        """
        kinds = self.kinds
        rows = [e for e in effects if e.kind in kinds]
        if not rows:
            return
        now = self._clock()
        values = []
        for effect in rows:
            if not effect.id:
                raise ConfigurationError(f"a {effect.kind} effect has no id; use with_ids()")
            values.append(
                {
                    "effect_id": effect.id,
                    "kind": effect.kind,
                    "data": json.dumps(effect.data, separators=(",", ":"), default=str),
                    "status": "pending",
                    "attempts": 1,
                    "last_error": None,
                    "claimed_until": now + self._lease,
                    "created_at": now,
                    "delivered_at": None,
                }
            )
        stmt = insert_for(conn, _outbox).on_conflict_do_nothing(index_elements=["effect_id"])
        conn.execute(stmt, values)

    # -- delivering ---------------------------------------------------------------------------

    def deliver(self, effects: Sequence[Effect]) -> None:
        """After commit: run the callbacks for ``effects`` and mark the stored ones delivered.

        Never raises: the change is committed; a failed callback leaves its row pending for
        :meth:`deliver_pending`.
        """
        done: list[str] = []
        failed: list[tuple[str, str]] = []
        for effect in effects:
            callbacks = self._callbacks.get(effect.kind)
            if not callbacks:
                continue
            error = self._run(effect, callbacks)
            if not effect.id:
                continue  # emitted by hand, never stored: nothing to mark
            if error is None:
                done.append(effect.id)
            else:
                failed.append((effect.id, error))
        if done or failed:
            self._mark(done, failed)

    def deliver_pending(self, *, limit: int | None = None, batch: int = _BATCH) -> DeliveryReport:
        """Deliver stored effects left pending (a crash, a raising callback), oldest first.

        Only kinds with a callback in this process are taken; rows another deliverer holds a
        live claim on are left to it. Each row is tried once per run.
        """
        if limit is not None and limit < 1:
            raise InvalidRequestError("limit must be at least 1", limit=limit)
        if not 1 <= batch <= 10_000:
            raise InvalidRequestError("batch must be between 1 and 10000", batch=batch)
        kinds = sorted(self.kinds)
        delivered = failed = 0
        if not kinds:
            logger.warning("deliver_pending: no callbacks registered, nothing can be delivered")
        after = 0
        while kinds and (limit is None or delivered + failed < limit):
            size = batch if limit is None else min(batch, limit - delivered - failed)
            rows = run_in_transaction(
                self._engine,
                functools.partial(self._claim, kinds=kinds, after=after, size=size),
                retries=self._retries,
            )
            if not rows:
                break
            for row_id, effect_id, kind, data in rows:
                after = row_id
                effect = Effect(cast(EffectKind, kind), json.loads(data), id=effect_id)
                error = self._run(effect, self._callbacks[kind])
                if error is None:
                    delivered += 1
                    self._mark([effect_id], [])
                else:
                    failed += 1
                    self._mark([], [(effect_id, error)])
        return DeliveryReport(delivered, failed, self.stats().pending)

    def stats(self) -> OutboxStats:
        """Counts of pending effects (for monitoring)."""
        o = _outbox.c
        with read_connection(self._engine) as conn:
            rows = conn.execute(
                select(o.kind, func.count(), func.min(o.created_at))
                .where(o.status == "pending")
                .group_by(o.kind)
            ).all()
            failing = conn.execute(
                select(func.count()).where(o.status == "pending", o.last_error.is_not(None))
            ).scalar_one()
        by_kind = {str(kind): int(n) for kind, n, _ in rows}
        oldest = min((r[2] for r in rows if r[2] is not None), default=None)
        return OutboxStats(sum(by_kind.values()), int(failing), oldest, by_kind)

    def prune_delivered(self, before: datetime, *, apply: bool = False) -> int:
        """Delivered rows older than ``before``: counted, or deleted with ``apply=True``."""
        if not apply:
            with read_connection(self._engine) as conn:
                return delivered_before(conn, before)

        def do(conn: Connection) -> int:
            return delivered_before(conn, before, delete=True)

        count: int = run_in_transaction(self._engine, do, retries=self._retries)
        return count

    # -- plumbing -----------------------------------------------------------------------------

    def _run(self, effect: Effect, callbacks: Sequence[Callback]) -> str | None:
        """Run every callback; the first error's description, or None when all succeeded."""
        error: str | None = None
        for callback in callbacks:
            try:
                callback(effect)
            except Exception as exc:
                # The change is committed; a host's email or analytics hook cannot undo it.
                logger.exception("after-commit callback %r for %s raised", callback, effect.kind)
                error = error or describe_error(exc)
        return error

    def _claim(
        self, conn: Connection, *, kinds: Sequence[str], after: int, size: int
    ) -> list[tuple[int, str, str, str]]:
        now = self._clock()
        o = _outbox.c
        query = (
            select(o.id, o.effect_id, o.kind, o.data)
            .where(
                o.status == "pending",
                o.kind.in_(kinds),
                o.id > after,
                or_(o.claimed_until.is_(None), o.claimed_until <= now),
            )
            .order_by(o.id)
            .limit(size)
        )
        if conn.dialect.name == "postgresql":
            # Concurrent deliverers take different rows instead of queueing on the same ones.
            query = query.with_for_update(skip_locked=True)
        rows = [(r[0], r[1], r[2], r[3]) for r in conn.execute(query).all()]
        if rows:
            conn.execute(
                update(_outbox)
                .where(o.id.in_([r[0] for r in rows]))
                .values(claimed_until=now + self._lease, attempts=o.attempts + 1)
            )
        return rows

    def _mark(self, done: Sequence[str], failed: Sequence[tuple[str, str]]) -> None:
        """Record delivery outcomes in a transaction of their own, without waiting for disk.

        A mark lost to a crash only means a redelivery, which the effect id makes harmless; so
        this commit does not flush (PostgreSQL: ``synchronous_commit`` off for it; SQLite:
        ``synchronous=NORMAL`` for it), which keeps the webhook path at one durable commit.
        """
        o = _outbox.c
        now = self._clock()
        try:
            with self._engine.connect() as conn:
                driver: Any = conn.connection.driver_connection
                restore: int | None = None
                if conn.dialect.name == "sqlite":
                    # Outside any transaction: the pragma applies to this connection's commits.
                    restore = int(driver.execute("PRAGMA synchronous").fetchone()[0])
                    driver.execute("PRAGMA synchronous=NORMAL")
                try:
                    with conn.begin():
                        if conn.dialect.name == "postgresql":
                            conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                        if done:
                            conn.execute(
                                update(_outbox)
                                .where(o.effect_id.in_(list(done)), o.status == "pending")
                                .values(status="delivered", delivered_at=now, claimed_until=None)
                            )
                        for effect_id, error in failed:
                            # Unclaimed at once: the next deliver_pending run retries it.
                            conn.execute(
                                update(_outbox)
                                .where(o.effect_id == effect_id, o.status == "pending")
                                .values(last_error=error, claimed_until=None)
                            )
                finally:
                    if restore is not None:
                        driver.execute(f"PRAGMA synchronous={restore}")
        except Exception:
            # Left pending and claimed: redelivered when the claim runs out (at least once).
            logger.exception("could not mark %d outbox effect(s)", len(done) + len(failed))


def delivered_before(conn: Connection, before: datetime, *, delete: bool = False) -> int:
    """Delivered rows older than ``before`` in ``conn``: counted, or deleted with ``delete``."""
    o = _outbox.c
    old = and_(o.status == "delivered", o.delivered_at < before)
    if delete:
        return int(conn.execute(_outbox.delete().where(old)).rowcount)
    return int(conn.execute(select(func.count()).where(old)).scalar_one())


def pending_count_query() -> Select[int]:
    """The count of pending effects (for a caller's own connection, e.g. analytics)."""
    return select(func.count()).where(_outbox.c.status == "pending")
