"""The machinery every posting method shares (:class:`PostingRunner`) and the release
methods (:class:`Releases`): pending -> available, one payment, one booking, or everything due
in batches. :class:`~mentorpay.ledger.service.LedgerService` inherits both."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.db import DEFAULT_RETRIES, run_in_transaction
from mentorpay.errors import InvalidRequestError
from mentorpay.ledger import postings, queries
from mentorpay.ledger._journal import Journal
from mentorpay.ledger.views import Posting
from mentorpay.money import Money

__all__ = ["PostingRunner", "Releases"]

P = ParamSpec("P")
T = TypeVar("T")


class PostingRunner(Journal):
    """A journal bound to an engine: runs postings in the caller's transaction or its own."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        Journal.__init__(self, clock)
        self._engine = engine
        self._retries = retries

    def _run_posting(
        self,
        conn: Connection | None,
        posting: Callable[Concatenate[Journal, Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run one posting in ``conn``'s transaction, or in its own (retried)."""
        if conn is not None:
            return posting(self, conn, *args, **kwargs)
        return run_in_transaction(
            self._engine,
            lambda c: posting(self, c, *args, **kwargs),
            retries=self._retries,
        )


#: More releases for a booking (plan sessions): ``(conn, booking_id) -> postings``.
ReleaseHook = Callable[[Connection, str], list[Posting]]


class Releases(PostingRunner):
    """Releases of mentor shares from pending to available."""

    #: Set per instance by :meth:`add_release_hook`; the class default is shared and empty.
    _release_hooks: tuple[ReleaseHook, ...] = ()

    def add_release_hook(self, hook: ReleaseHook) -> None:
        """Have :meth:`release` also run ``hook`` in its transaction: the plans service
        releases the share of a session paid with a plan credit this way."""
        self._release_hooks = (*self._release_hooks, hook)

    def release_share(
        self,
        payment_intent_id: str,
        share: Money,
        *,
        key: str,
        conn: Connection | None = None,
    ) -> Posting:
        """Move one session's ``share`` of a plan period's payment from pending to available,
        once per ``key``; never more than is still pending (a refund may have taken it)."""
        return self._run_posting(conn, postings.release_share, payment_intent_id, share, key)

    def set_release_due(
        self, payment_intent_id: str, due_at: datetime, *, conn: Connection | None = None
    ) -> None:
        """Schedule automatic release (``release_due``) for a payment."""
        self._run_posting(conn, postings.set_release_due, payment_intent_id, due_at)

    def release_payment(self, payment_intent_id: str, *, conn: Connection | None = None) -> Posting:
        """Move one payment's remaining mentor share from pending to available, once."""
        return self._run_posting(conn, postings.release_payment, payment_intent_id)

    def release(self, booking_id: str, *, conn: Connection | None = None) -> list[Posting]:
        """The booking's session took place: release all of its payments, and the share of a
        plan period its session credit stands for (one transaction)."""
        if not self._release_hooks:
            return self._run_posting(conn, postings.release_booking, booking_id)

        def release_all(c: Connection) -> list[Posting]:
            released = postings.release_booking(self, c, booking_id)
            for hook in self._release_hooks:
                released += hook(c, booking_id)
            return released

        if conn is not None:
            return release_all(conn)
        return run_in_transaction(self._engine, release_all, retries=self._retries)

    def release_due(
        self,
        now: datetime | None = None,
        *,
        batch: int = 500,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> list[Posting]:
        """Release every payment whose hold period has elapsed, ``batch`` payments per
        transaction, and return the postings created.

        Kept for compatibility: the list grows with what is due. Prefer
        :meth:`release_due_count`, which does the same work in flat memory."""
        released: list[Posting] = []
        for created in self._release_due_batches(now, batch, progress):
            released += created
        return released

    def release_due_count(
        self,
        now: datetime | None = None,
        *,
        batch: int = 500,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> int:
        """Release every payment whose hold period has elapsed; return how many were released.

        ``batch`` payments per transaction (their rows locked together, in id order, through the
        partial index of unreleased payments), so the cost is one commit per batch and memory
        stays flat however much is due. The ledger ends exactly as releasing them one at a
        time would leave it: each payment's release is the same rule under the same row lock.
        ``progress(done, total, "releasing")`` is called after each batch (the total is
        counted once at the start, only when ``progress`` is given)."""
        return sum(len(created) for created in self._release_due_batches(now, batch, progress))

    def _release_due_batches(
        self,
        now: datetime | None,
        batch: int,
        progress: Callable[[int, int, str], None] | None,
    ) -> Iterator[list[Posting]]:
        cutoff = now or self._clock()
        if cutoff.tzinfo is None:
            raise InvalidRequestError("release_due needs an aware datetime (tzinfo=UTC)")
        if batch < 1:
            raise InvalidRequestError("batch must be at least 1", batch=batch)
        total = done = 0
        if progress is not None:
            total = queries.count_due(self._engine, cutoff)
        after_id = 0
        while True:
            after_id, seen, created = run_in_transaction(
                self._engine,
                partial(
                    postings.release_due_batch, self, cutoff=cutoff, after_id=after_id, limit=batch
                ),
                retries=self._retries,
            )
            yield created
            done += seen
            if progress is not None and seen:
                progress(done, max(total, done), "releasing")
            # A short batch is the end, unless rows dropped out of it: on PostgreSQL a row a
            # concurrent posting changed while we waited for its lock is re-checked and left
            # out, and the LIMIT does not refill from the rows after it.
            if seen < batch and not queries.due_after(self._engine, cutoff, after_id):
                return
