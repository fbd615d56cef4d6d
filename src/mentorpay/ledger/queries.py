"""The ledger's reads: balances, payment history, single payments, the review queue, platform
totals, and the questions other modules ask about the ledger's tables (which releases are due,
which disputes were posted), so none of them reads ledger internals such as business keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Literal

from sqlalchemy import ColumnElement, Engine, and_, func, select
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.db import chunked, read_connection
from mentorpay.errors import InvalidRequestError, PaymentNotFoundError
from mentorpay.ledger._sql import LOCK_PAYMENT, SELECT_BALANCE
from mentorpay.ledger.rules import (
    COMMISSION,
    STRIPE_FEES,
    SUSPENSE,
    UNPAID_PAYMENT_STATUSES,
)
from mentorpay.ledger.state import STATE_COLUMNS, PaymentState
from mentorpay.ledger.verify import verify
from mentorpay.ledger.views import (
    BalanceView,
    Page,
    PaymentRecord,
    VerifyReport,
    balance_view,
    payment_record,
)
from mentorpay.models import balances_table as _balances
from mentorpay.models import entries_table as _entries
from mentorpay.models import payments_table as _payments
from mentorpay.models import transactions_table as _transactions
from mentorpay.money import Money, normalize_currency


def balance(engine: Engine, mentor_id: str, currency: str) -> BalanceView:
    """One primary-key read; zero if never credited."""
    cur = normalize_currency(currency)
    with read_connection(engine) as conn:
        row = conn.execute(SELECT_BALANCE, {"mentor_id": mentor_id, "currency": cur}).first()
    if row is not None:
        return balance_view(row)
    zero = Money.zero(cur)
    return BalanceView(mentor_id, cur, zero, zero, zero, zero, zero)


def available(conn: Connection, mentor_id: str, currency: str) -> int | None:
    """The mentor's available balance in ``currency`` on the caller's connection; ``None`` if
    they never earned in it (a payout request's precondition; the reservation is the guard)."""
    found = conn.execute(SELECT_BALANCE, {"mentor_id": mentor_id, "currency": currency}).first()
    return None if found is None else int(found.available)


def balances(engine: Engine, mentor_id: str) -> list[BalanceView]:
    """Every currency the mentor has earned in."""
    with read_connection(engine) as conn:
        rows = conn.execute(
            select(_balances)
            .where(_balances.c.mentor_id == mentor_id)
            .order_by(_balances.c.currency)
        ).all()
    return [balance_view(r) for r in rows]


def history(
    engine: Engine,
    user_id: str,
    role: Literal["mentor", "mentee"],
    limit: int,
    cursor: str | None,
) -> Page[PaymentRecord]:
    """Payments of a mentor or mentee, newest first (keyset pagination on the id)."""
    if role not in ("mentor", "mentee"):
        raise InvalidRequestError("role must be 'mentor' or 'mentee'", role=role)
    if not 1 <= limit <= 500:
        raise InvalidRequestError("limit must be between 1 and 500", limit=limit)
    column = _payments.c.mentor_id if role == "mentor" else _payments.c.mentee_id
    query = select(_payments).where(column == user_id)
    if cursor is not None:
        try:
            before = int(cursor)
        except ValueError:
            raise InvalidRequestError("malformed cursor", cursor=cursor) from None
        query = query.where(_payments.c.id < before)
    query = query.order_by(_payments.c.id.desc()).limit(limit + 1)
    with read_connection(engine) as conn:
        rows = conn.execute(query).all()
    items = [payment_record(r) for r in rows[:limit]]
    next_cursor = str(items[-1].id) if len(rows) > limit else None
    return Page(items, next_cursor)


def payment(engine: Engine, payment_intent_id: str) -> PaymentRecord:
    """One recorded payment, or PaymentNotFoundError."""
    with read_connection(engine) as conn:
        row = conn.execute(
            select(_payments).where(_payments.c.payment_intent_id == payment_intent_id)
        ).first()
    if row is None:
        raise PaymentNotFoundError(
            f"no payment recorded for {payment_intent_id}", payment_intent_id=payment_intent_id
        )
    return payment_record(row)


def locked_payment(conn: Connection, payment_intent_id: str) -> PaymentState | None:
    """A payment's state with its row locked for the rest of ``conn``'s transaction (what a
    posting for it would lock: serializes with every posting), or None if not recorded."""
    row = conn.execute(LOCK_PAYMENT, {"pi": payment_intent_id}).first()
    return None if row is None else PaymentState(*row)


def review_queue(engine: Engine, limit: int) -> list[PaymentRecord]:
    """Payments whose money still sits on the suspense account, oldest first."""
    if not 1 <= limit <= 10_000:
        raise InvalidRequestError("limit must be between 1 and 10000", limit=limit)
    with read_connection(engine) as conn:
        rows = conn.execute(
            select(_payments)
            .where(_payments.c.status == "needs_review")
            .order_by(_payments.c.id)
            .limit(limit)
        ).all()
    return [payment_record(r) for r in rows]


def platform_total(engine: Engine, account: str, currency: str) -> Money:
    """A platform account's balance in one currency, summed from the journal (it is hot)."""
    cur = normalize_currency(currency)
    with read_connection(engine) as conn:
        total = conn.execute(
            select(func.coalesce(func.sum(_entries.c.amount), 0)).where(
                and_(_entries.c.account == account, _entries.c.currency == cur)
            )
        ).scalar_one()
    return Money(int(total), cur)


def _due(cutoff: datetime) -> ColumnElement[bool]:
    return and_(
        _payments.c.released_at.is_(None),
        _payments.c.release_due_at.is_not(None),
        _payments.c.release_due_at <= cutoff,
    )


def count_due(engine: Engine, cutoff: datetime) -> int:
    """How many payments are unreleased with their hold period over at ``cutoff``."""
    with read_connection(engine) as c:
        return int(
            c.execute(select(func.count()).select_from(_payments).where(_due(cutoff))).scalar_one()
        )


def due_batches(engine: Engine, cutoff: datetime, batch: int) -> Iterator[list[str]]:
    """Payment intents due for release at ``cutoff``, in id order, ``batch`` at a time (each
    batch read on its own short connection, after the previous one was processed)."""
    last_id = 0
    while True:
        with read_connection(engine) as c:
            rows = c.execute(
                select(_payments.c.id, _payments.c.payment_intent_id)
                .where(and_(_due(cutoff), _payments.c.id > last_id))
                .order_by(_payments.c.id)
                .limit(batch)
            ).all()
        if not rows:
            return
        yield [row.payment_intent_id for row in rows]
        last_id = rows[-1].id


def due_after(engine: Engine, cutoff: datetime, after_id: int) -> bool:
    """Whether any payment after ``after_id`` is due at ``cutoff`` (one index probe)."""
    with read_connection(engine) as c:
        found = c.execute(
            select(_payments.c.id).where(and_(_due(cutoff), _payments.c.id > after_id)).limit(1)
        ).first()
    return found is not None


def lock_due(conn: Connection, cutoff: datetime, after_id: int, limit: int) -> list[PaymentState]:
    """The next ``limit`` payments due at ``cutoff`` after ``after_id``, in id order, their rows
    locked for the rest of ``conn``'s transaction (one statement, on the partial due index).

    Locked in id order before anything is written, so a batch and a webhook's posting (payment
    row, then balance row) always take their locks in the same order. On PostgreSQL a row a
    concurrent posting released while we waited drops out (the WHERE clause is re-checked)."""
    rows = conn.execute(
        select(*(_payments.c[name] for name in STATE_COLUMNS))
        .where(and_(_due(cutoff), _payments.c.id > after_id))
        .order_by(_payments.c.id)
        .limit(limit)
        .with_for_update()
    ).all()
    return [PaymentState(*row) for row in rows]


def booking_payment_intents(conn: Connection, booking_id: str) -> list[str]:
    """The booking's payment intents, oldest first."""
    return list(
        conn.execute(
            select(_payments.c.payment_intent_id)
            .where(_payments.c.booking_id == booking_id)
            .order_by(_payments.c.id)
        ).scalars()
    )


# -- payments, for the modules that act on them -----------------------------------------------


def recorded_stripe_fees(
    conn: Connection, balance_transaction_ids: Sequence[str]
) -> dict[str, int]:
    """The fee posted per balance transaction id (only those posted)."""
    found: dict[str, int] = {}
    keys = [f"stripe_fee:{t}" for t in balance_transaction_ids]
    for chunk in chunked(keys):
        rows = conn.execute(
            select(_transactions.c.business_key, func.sum(_entries.c.amount))
            .join(_entries, _entries.c.transaction_id == _transactions.c.id)
            .where(
                and_(
                    _transactions.c.business_key.in_(chunk),
                    _entries.c.account == STRIPE_FEES,
                )
            )
            .group_by(_transactions.c.business_key)
        ).all()
        for key, total in rows:
            found[key.removeprefix("stripe_fee:")] = -int(total)
    return found


def intent_for_charge(conn: Connection, charge_id: str) -> str | None:
    """The payment intent of the recorded payment with this charge, if any."""
    found: str | None = conn.execute(
        select(_payments.c.payment_intent_id).where(_payments.c.charge_id == charge_id)
    ).scalar()
    return found


def paid_by(conn: Connection, booking_id: str) -> tuple[str, str] | None:
    """``(payment_intent_id, status)`` of a payment that leaves the booking paid (a status
    outside ``UNPAID_PAYMENT_STATUSES``), or None while nothing paid it."""
    row = conn.execute(
        select(_payments.c.payment_intent_id, _payments.c.status)
        .where(
            and_(
                _payments.c.booking_id == booking_id,
                _payments.c.status.not_in(UNPAID_PAYMENT_STATUSES),
            )
        )
        .limit(1)
    ).first()
    return None if row is None else (row.payment_intent_id, row.status)


class LedgerQueries:
    """The read half of :class:`~mentorpay.ledger.service.LedgerService` (which inherits it)."""

    _engine: Engine

    def balance(self, mentor_id: str, currency: str) -> BalanceView:
        """The mentor's balance in one currency: one primary-key read, zero if never credited."""
        return balance(self._engine, mentor_id, currency)

    def balances(self, mentor_id: str) -> list[BalanceView]:
        """The mentor's balances in every currency they have earned in."""
        return balances(self._engine, mentor_id)

    def history(
        self,
        user_id: str,
        role: Literal["mentor", "mentee"] = "mentor",
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[PaymentRecord]:
        """Payments a mentor earned from, or a mentee paid, newest first (keyset pagination)."""
        return history(self._engine, user_id, role, limit, cursor)

    def payment(self, payment_intent_id: str) -> PaymentRecord:
        """One recorded payment, or PaymentNotFoundError."""
        return payment(self._engine, payment_intent_id)

    def platform_commission(self, currency: str) -> Money:
        """The platform's net commission in one currency (summed: the account is hot)."""
        return platform_total(self._engine, COMMISSION, currency)

    def verify(
        self,
        *,
        full: bool = False,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> VerifyReport:
        """Recompute every balance from the journal and check every transaction balances.

        Runs on one snapshot, so it can be run beside live traffic without false alarms.
        Incremental: a clean pass checkpoints the journal's sums, and the next pass reads only
        the entries after that checkpoint. ``full=True`` reads the whole journal (the only way
        to notice an old entry changed behind the ledger's back). ``progress(done, total,
        "verifying")`` is called after each step.
        """
        clock: Callable[[], datetime] = getattr(self, "_clock", utcnow)
        return verify(self._engine, full=full, progress=progress, clock=clock)

    def review_queue(self, limit: int = 100) -> list[PaymentRecord]:
        """Payments whose money still sits on the suspense account, oldest first."""
        return review_queue(self._engine, limit)

    def stripe_fees(self, currency: str) -> Money:
        """Stripe's fees the platform paid in one currency (a cost: positive), net of returns."""
        return -platform_total(self._engine, STRIPE_FEES, currency)

    def suspense(self, currency: str) -> Money:
        """Money received that no mentor has been credited with yet, in one currency."""
        return platform_total(self._engine, SUSPENSE, currency)
