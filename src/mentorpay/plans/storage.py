"""Every statement on the plan tables (purchases, periods, credit uses). Each runs on the
caller's connection, inside the caller's transaction, and never commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.engine import Connection

from mentorpay.db import insert_for
from mentorpay.models import credit_uses_table as _uses
from mentorpay.models import payments_table as _payments
from mentorpay.models import plan_periods_table as _periods
from mentorpay.models import plan_purchases_table as _purchases

__all__ = [
    "credit_use",
    "delete_use",
    "due_periods",
    "insert_purchase",
    "insert_use",
    "list_purchases",
    "lock_purchase",
    "mark_released",
    "period",
    "period_by_intent",
    "periods_of",
    "purchase",
    "purchase_by_open_key",
    "purchase_by_subscription",
    "save_period_facts",
    "unlinked_periods",
    "update_period",
    "update_purchase",
    "usable_periods",
]

# A period joined with its payment's reversed total (credits left depend on it) and payout.
_PERIOD_COLUMNS = (
    *_periods.c,
    _payments.c.amount_reversed.label("amount_reversed"),
    _payments.c.mentor_payout.label("mentor_payout"),
    _payments.c.released_at.label("released_at"),
    _payments.c.status.label("payment_status"),
)


def _period_select() -> Any:
    return select(*_PERIOD_COLUMNS).select_from(
        _periods.outerjoin(_payments, _payments.c.payment_intent_id == _periods.c.payment_intent_id)
    )


# -- purchases ---------------------------------------------------------------------------------


def insert_purchase(conn: Connection, values: dict[str, Any]) -> bool:
    """Insert a purchase; ``False`` when another live one holds its ``open_key``."""
    result = conn.execute(
        insert_for(conn, _purchases)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(_purchases.c.id)
    )
    return result.first() is not None


def purchase(conn: Connection, purchase_id: str) -> Row[Any] | None:
    """One purchase by mentorpay's id."""
    return conn.execute(select(_purchases).where(_purchases.c.id == purchase_id)).first()


def lock_purchase(conn: Connection, purchase_id: str) -> Row[Any] | None:
    """One purchase, its row locked until the transaction ends."""
    stmt = select(_purchases).where(_purchases.c.id == purchase_id).with_for_update()
    return conn.execute(stmt).first()


def purchase_by_open_key(conn: Connection, key: str) -> Row[Any] | None:
    """The live purchase holding ``key``, if any."""
    return conn.execute(select(_purchases).where(_purchases.c.open_key == key)).first()


def purchase_by_subscription(conn: Connection, subscription_id: str) -> Row[Any] | None:
    """The purchase of a Stripe subscription, locked."""
    stmt = (
        select(_purchases).where(_purchases.c.subscription_id == subscription_id).with_for_update()
    )
    return conn.execute(stmt).first()


def update_purchase(conn: Connection, purchase_id: str, now: datetime, **values: Any) -> None:
    """Change a purchase's columns."""
    conn.execute(
        update(_purchases).where(_purchases.c.id == purchase_id).values(**values, updated_at=now)
    )


def list_purchases(
    conn: Connection,
    *,
    mentee_id: str | None = None,
    mentor_id: str | None = None,
    limit: int = 100,
) -> list[Row[Any]]:
    """Purchases of a mentee or a mentor (or all), newest first."""
    stmt = select(_purchases).order_by(_purchases.c.created_at.desc(), _purchases.c.id)
    if mentee_id is not None:
        stmt = stmt.where(_purchases.c.mentee_id == mentee_id)
    if mentor_id is not None:
        stmt = stmt.where(_purchases.c.mentor_id == mentor_id)
    return list(conn.execute(stmt.limit(limit)))


# -- periods -----------------------------------------------------------------------------------


def save_period_facts(
    conn: Connection, *, invoice_id: str, now: datetime, **facts: Any
) -> Row[Any]:
    """Record what one event knows of an invoice's period (the other half may come first):
    insert the row, or fill in the columns still empty. Returns the row, locked."""
    conn.execute(
        insert_for(conn, _periods)
        .values(invoice_id=invoice_id, created_at=now, updated_at=now, **facts)
        .on_conflict_do_nothing(index_elements=["invoice_id"])
    )
    row = conn.execute(
        select(_periods).where(_periods.c.invoice_id == invoice_id).with_for_update()
    ).one()
    missing = {k: v for k, v in facts.items() if v is not None and getattr(row, k) is None}
    if missing:
        conn.execute(
            update(_periods).where(_periods.c.id == row.id).values(**missing, updated_at=now)
        )
        row = conn.execute(select(_periods).where(_periods.c.id == row.id)).one()
    return row


def insert_package_period(conn: Connection, values: dict[str, Any]) -> None:
    """A package's one period (keyed by its payment intent), once."""
    conn.execute(
        insert_for(conn, _periods)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["payment_intent_id"])
    )


def update_period(conn: Connection, period_id: int, now: datetime, **values: Any) -> None:
    """Change a period's columns."""
    conn.execute(
        update(_periods).where(_periods.c.id == period_id).values(**values, updated_at=now)
    )


def period(conn: Connection, period_id: int, *, lock: bool = False) -> Row[Any] | None:
    """One period with its payment's figures."""
    stmt = _period_select().where(_periods.c.id == period_id)
    if lock:
        stmt = stmt.with_for_update(of=_periods)
    return conn.execute(stmt).first()


def unlinked_periods(conn: Connection, subscription_id: str) -> list[Row[Any]]:
    """Periods of a subscription that no purchase claimed yet, oldest first, locked."""
    stmt = (
        select(_periods)
        .where(_periods.c.subscription_id == subscription_id, _periods.c.purchase_id.is_(None))
        .order_by(_periods.c.id)
        .with_for_update()
    )
    return list(conn.execute(stmt))


def period_by_intent(conn: Connection, payment_intent_id: str) -> Row[Any] | None:
    """The period a payment intent paid, if any."""
    stmt = select(_periods).where(_periods.c.payment_intent_id == payment_intent_id)
    return conn.execute(stmt).first()


def periods_of(conn: Connection, purchase_id: str) -> list[Row[Any]]:
    """A purchase's periods with their payments' figures, oldest first."""
    stmt = _period_select().where(_periods.c.purchase_id == purchase_id)
    return list(conn.execute(stmt.order_by(_periods.c.id)))


def usable_periods(conn: Connection, purchase_id: str, now: datetime) -> list[Row[Any]]:
    """A purchase's paid periods whose credits have not lapsed, soonest to lapse first, locked
    (the credits left are computed by the caller from the payment's reversed total)."""
    stmt = (
        _period_select()
        .where(
            _periods.c.purchase_id == purchase_id,
            _periods.c.status == "paid",
            _periods.c.expires_at > now,
            _periods.c.used < _periods.c.credits,
        )
        .order_by(_periods.c.expires_at, _periods.c.id)
        .with_for_update(of=_periods)
    )
    return list(conn.execute(stmt))


def due_periods(conn: Connection, now: datetime, after_id: int, limit: int) -> list[Row[Any]]:
    """Paid periods whose credits lapsed by ``now``, in id order after ``after_id``, locked."""
    stmt = (
        select(_periods)
        .where(
            _periods.c.status == "paid",
            _periods.c.expires_at <= now,
            _periods.c.id > after_id,
        )
        .order_by(_periods.c.id)
        .limit(limit)
        .with_for_update()
    )
    return list(conn.execute(stmt))


# -- credit uses -------------------------------------------------------------------------------


def insert_use(
    conn: Connection, *, booking_id: str, period_id: int, seq: int, now: datetime
) -> bool:
    """Spend the ``seq``-th credit of a period on a booking; ``False`` if the booking has one."""
    result = conn.execute(
        insert_for(conn, _uses)
        .values(booking_id=booking_id, period_id=period_id, seq=seq, created_at=now)
        .on_conflict_do_nothing()
        .returning(_uses.c.booking_id)
    )
    return result.first() is not None


def credit_use(conn: Connection, booking_id: str, *, lock: bool = False) -> Row[Any] | None:
    """The credit a booking was paid with, if any."""
    stmt = select(_uses).where(_uses.c.booking_id == booking_id)
    if lock:
        stmt = stmt.with_for_update()
    return conn.execute(stmt).first()


def free_seq(conn: Connection, period_id: int) -> int:
    """The lowest credit number of a period no booking holds (credits given back are reused)."""
    taken = {
        seq for (seq,) in conn.execute(select(_uses.c.seq).where(_uses.c.period_id == period_id))
    }
    seq = 0
    while seq in taken:
        seq += 1
    return seq


def mark_released(conn: Connection, booking_id: str, now: datetime) -> bool:
    """Mark a credit's session released, once."""
    result = conn.execute(
        update(_uses)
        .where(_uses.c.booking_id == booking_id, _uses.c.released_at.is_(None))
        .values(released_at=now)
    )
    return result.rowcount == 1


def delete_use(conn: Connection, booking_id: str) -> None:
    """Give an unreleased credit back (its booking was cancelled)."""
    conn.execute(
        delete(_uses).where(_uses.c.booking_id == booking_id, _uses.c.released_at.is_(None))
    )
