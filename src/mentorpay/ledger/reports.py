"""The ledger's reads for reports: what reconciliation compares with Stripe (payments of a
period, posted dispute phases), the period totals of ``stats``, and the per-day series of the
operator dashboard. Read-only, on the caller's connection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, Select, and_, case, func, select
from sqlalchemy.engine import Connection

from mentorpay.db import chunked
from mentorpay.ledger.rules import (
    AVAILABLE,
    CLEARING,
    COMMISSION,
    HELD,
    PENDING,
    STRIPE_FEES,
)
from mentorpay.models import disputes_table as _disputes
from mentorpay.models import entries_table as _entries
from mentorpay.models import payments_table as _payments
from mentorpay.models import transactions_table as _transactions

# -- disputes, for reconciliation -----------------------------------------------------------------

DisputePhase = Literal["opened", "won", "lost"]
_DISPUTE_PHASES: tuple[DisputePhase, ...] = ("opened", "won", "lost")


def posted_dispute_phases(
    conn: Connection, dispute_ids: Sequence[str]
) -> dict[str, set[DisputePhase]]:
    """For each of these disputes, the phases the ledger posted (opened, won, lost); a dispute
    the ledger never posted is absent."""
    phase_of = {
        f"dispute:{d}:{phase}": (d, phase) for d in dispute_ids for phase in _DISPUTE_PHASES
    }
    keys = list(phase_of)
    posted: dict[str, set[DisputePhase]] = {}
    for chunk in chunked(keys):
        for key in conn.execute(
            select(_transactions.c.business_key).where(_transactions.c.business_key.in_(chunk))
        ).scalars():
            dispute_id, phase = phase_of[key]
            posted.setdefault(dispute_id, set()).add(phase)
    return posted


def disputes_opened_between(
    conn: Connection, since: datetime, until: datetime
) -> list[tuple[str, str | None]]:
    """``(dispute_id, payment_intent_id)`` of every dispute whose opening the ledger posted in
    ``[since, until)``."""
    rows: Any = conn.execute(
        select(_transactions.c.business_key, _transactions.c.payment_intent_id).where(
            and_(
                _transactions.c.kind == "dispute_opened",
                _transactions.c.created_at >= since,
                _transactions.c.created_at < until,
            )
        )
    ).all()
    # The key is dispute:{dispute_id}:opened; Stripe ids contain no colon.
    return [(key.split(":")[1], pi) for key, pi in rows]


# -- payments, for reconciliation ------------------------------------------------------------------


def payments_by_intent(conn: Connection, intents: Sequence[str]) -> dict[str, Any]:
    """The payment rows of these payment intents, by payment intent id."""
    found: dict[str, Any] = {}
    for chunk in chunked(intents):
        for row in conn.execute(select(_payments).where(_payments.c.payment_intent_id.in_(chunk))):
            found[row.payment_intent_id] = row
    return found


def payments_created(conn: Connection, since: datetime, until: datetime) -> list[Any]:
    """Payments recorded in ``[since, until)`` (every status: nothing writes "failed")."""
    period = and_(_payments.c.created_at >= since, _payments.c.created_at < until)
    return list(conn.execute(select(_payments).where(period)).all())


def payments_refunded(conn: Connection, since: datetime, until: datetime) -> list[Any]:
    """Payments with refunds applied, updated in ``[since, until)``."""
    return list(
        conn.execute(
            select(_payments).where(
                and_(
                    _payments.c.amount_refunded > 0,
                    _payments.c.updated_at >= since,
                    _payments.c.updated_at < until,
                )
            )
        ).all()
    )


def period_totals_query(since: datetime, until: datetime) -> Select[Any]:
    """Per currency, for payments created in ``[since, until)``: count, gross, platform fee,
    mentor earnings, reversed, fee reversed, refunded / open-dispute / lost-dispute counts,
    Stripe's fees posted."""
    p = _payments.c
    in_period = and_(p.created_at >= since, p.created_at < until)
    # refund_applied: refunds net of failed ones; the rest of amount_reversed is lost disputes.
    refunded = case((p.refund_applied > 0, 1), else_=0)
    open_disputes = case((p.amount_disputed > 0, 1), else_=0)
    lost = case((p.amount_reversed > p.refund_applied, 1), else_=0)
    return (
        select(
            p.currency,
            func.count(),
            func.sum(p.amount),
            func.sum(p.platform_fee),
            func.sum(p.mentor_payout - p.payout_reversed),
            func.sum(p.amount_reversed),
            func.sum(p.fee_reversed),
            func.sum(refunded),
            func.sum(open_disputes),
            func.sum(lost),
            func.sum(p.stripe_fee),
        )
        .where(in_period)
        .group_by(p.currency)
        .order_by(p.currency)
    )


# -- per-day series, for the operator dashboard ----------------------------------------------------

#: Transaction kinds whose legs touch the commission or clearing accounts (never payouts or
#: releases, which only move a mentor's money between their own accounts).
_MONEY_KINDS: Final = (
    "payment",
    "review_credit",
    "refund",
    "refund_failed",
    "dispute_opened",
    "dispute_won",
    "dispute_lost",
    "stripe_fee",
)


def utc_day(column: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column, as ``YYYY-MM-DD`` text on every backend
    (PostgreSQL's own ``date()`` would follow the session's time zone)."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.substr(column, 1, 10)  # SQLite stores UTC as 'YYYY-MM-DD HH:MM:SS...'


def daily_journal_query(since: datetime, until: datetime, dialect: str) -> Select[Any]:
    """Per UTC day, currency, transaction kind and platform account (clearing, commission):
    the sum of the legs posted in ``[since, until)``. Walks the ``(kind, created_at)`` index."""
    t, e = _transactions.c, _entries.c
    day = utc_day(t.created_at, dialect).label("day")
    return (
        select(day, t.currency, t.kind, e.account, func.sum(e.amount))
        .select_from(_transactions.join(_entries, e.transaction_id == t.id))
        .where(
            and_(
                t.kind.in_(_MONEY_KINDS),
                t.created_at >= since,
                t.created_at < until,
                e.account.in_((CLEARING, COMMISSION, STRIPE_FEES)),
            )
        )
        .group_by(day, t.currency, t.kind, e.account)
    )


def daily_disputes_query(since: datetime, until: datetime, dialect: str) -> Select[Any]:
    """Per UTC day and currency: how many disputes (inquiries included) opened in
    ``[since, until)`` and the amount they cover."""
    d = _disputes.c
    day = utc_day(d.created_at, dialect).label("day")
    return (
        select(day, d.currency, func.count(), func.sum(d.amount))
        .where(and_(d.created_at >= since, d.created_at < until))
        .group_by(day, d.currency)
    )


def daily_mentor_query(
    mentor_id: str, since: datetime, until: datetime, dialect: str
) -> Select[Any]:
    """Per UTC day and currency: what the mentor's earnings changed by in ``[since, until)``
    (credits of payments, less refunds and lost disputes; a dispute's hold nets to zero, as do
    releases and payouts, which are not read). Walks the entries' mentor index."""
    t, e = _transactions.c, _entries.c
    day = utc_day(t.created_at, dialect).label("day")
    return (
        select(day, e.currency, func.sum(e.amount))
        .select_from(_entries.join(_transactions, e.transaction_id == t.id))
        .where(
            and_(
                e.mentor_id == mentor_id,
                e.account.in_((PENDING, AVAILABLE, HELD)),
                t.kind.in_(_MONEY_KINDS),
                t.created_at >= since,
                t.created_at < until,
            )
        )
        .group_by(day, e.currency)
    )


def review_count_query() -> Select[Any]:
    """How many payments wait for an operator's review (the partial index counts them)."""
    return select(func.count()).where(_payments.c.status == "needs_review")
