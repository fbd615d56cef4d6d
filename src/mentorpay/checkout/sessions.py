"""Every statement on the checkout sessions table (``mentorpay_checkout_sessions``): checkout's
own, and the status changes Stripe's checkout events make (:func:`settle`).

Each runs on the caller's connection, inside the caller's transaction, and never commits.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, and_, bindparam, case, delete, func, select, update
from sqlalchemy.engine import Connection

from mentorpay.checkout.request import ABANDONED, CREATING, OPEN, CheckoutRequest
from mentorpay.db import insert_for
from mentorpay.errors import ConflictError
from mentorpay.gateway import GatewayCheckoutSession
from mentorpay.models import checkout_sessions_table as _sessions

__all__ = [
    "booking_sessions",
    "claim",
    "delete_claim",
    "finalize",
    "funnel_query",
    "mark",
    "set_claim_status",
    "settle",
]


def booking_sessions(conn: Connection, booking_id: str) -> list[Row[Any]]:
    """Every session row of the booking, oldest first."""
    return list(
        conn.execute(
            select(_sessions)
            .where(_sessions.c.booking_id == booking_id)
            .order_by(_sessions.c.created_at, _sessions.c.id)
        ).all()
    )


def claim(
    conn: Connection,
    request: CheckoutRequest,
    *,
    key: str,
    expires_at: datetime,
    now: datetime,
) -> Row[Any]:
    """A ``creating`` row under idempotency ``key``, or the concurrent caller's row holding it."""
    conn.execute(
        insert_for(conn, _sessions)
        .values(
            id="claim:" + hashlib.sha256(key.encode()).hexdigest(),
            booking_id=request.booking.id,
            mentee_id=request.booking.mentee_id,
            mentor_id=request.booking.mentor_id,
            currency=request.price.currency,
            amount=request.price.amount,
            platform_fee=request.platform_fee.amount,
            status=CREATING,
            url=None,
            idempotency_key=key,
            expires_at=expires_at,
            created_at=now,
            updated_at=now,
        )
        # A concurrent caller that claimed the same attempt wins; this one adopts its row.
        .on_conflict_do_nothing()
    )
    row = conn.execute(select(_sessions).where(_sessions.c.idempotency_key == key)).first()
    if row is None:  # pragma: no cover - the conflicting claim vanished in between
        raise ConflictError("a concurrent checkout attempt was withdrawn; try again")
    return row


def delete_claim(conn: Connection, key: str) -> None:
    """Drop the ``creating`` claim under ``key`` (Stripe refused: nothing may stay written)."""
    conn.execute(
        delete(_sessions).where(
            and_(_sessions.c.idempotency_key == key, _sessions.c.status == CREATING)
        )
    )


def set_claim_status(conn: Connection, key: str, status: str, now: datetime) -> None:
    """Move the ``creating`` claim under ``key`` to ``status``."""
    conn.execute(
        update(_sessions)
        .where(and_(_sessions.c.idempotency_key == key, _sessions.c.status == CREATING))
        .values(status=status, updated_at=now)
    )


def finalize(
    conn: Connection, claim_row: Row[Any], session: GatewayCheckoutSession, now: datetime
) -> Row[Any]:
    """Turn the claim into the open session Stripe returned (idempotent across callers)."""
    result = conn.execute(
        update(_sessions)
        .where(
            and_(
                _sessions.c.idempotency_key == claim_row.idempotency_key,
                # Abandoned by a conflicting adopter while this call got the session.
                _sessions.c.status.in_((CREATING, ABANDONED)),
            )
        )
        .values(id=session.id, status=OPEN, url=session.url, updated_at=now)
    )
    if result.rowcount == 0:
        # Another caller finalized it first, or a refusal elsewhere deleted the claim
        # while this call succeeded: record the session Stripe says exists.
        values = {c.name: claim_row._mapping[c.name] for c in _sessions.c}
        values.update(id=session.id, status=OPEN, url=session.url, updated_at=now)
        conn.execute(insert_for(conn, _sessions).values(**values).on_conflict_do_nothing())
    row = conn.execute(select(_sessions).where(_sessions.c.id == session.id)).first()
    assert row is not None
    return row


def mark(conn: Connection, session_id: str, status: str, now: datetime) -> None:
    """Move the open session ``session_id`` to ``status``."""
    conn.execute(
        update(_sessions)
        .where(and_(_sessions.c.id == session_id, _sessions.c.status == OPEN))
        .values(status=status, updated_at=now)
    )


# Built once: it runs on the webhook path for every checkout event.
_SETTLE = (
    update(_sessions)
    .where(
        _sessions.c.id == bindparam("b_id"),
        _sessions.c.status != bindparam("b_status"),
        _sessions.c.status.not_in(bindparam("b_keep", expanding=True)),
    )
    .values(status=bindparam("b_status"), updated_at=bindparam("b_now"))
    .returning(_sessions.c.booking_id, _sessions.c.mentor_id, _sessions.c.mentee_id)
)


def settle(
    conn: Connection, session_id: str, status: str, now: datetime, *, unless: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """Set the status Stripe reported for mentorpay's session row, if there is one; its booking,
    mentor and mentee if the status changed.

    ``unless``: statuses that a late, older event must not overwrite (a ``completed`` with an
    unpaid delayed method arriving after the payment settled, say).
    """
    row = conn.execute(
        _SETTLE, {"b_id": session_id, "b_status": status, "b_now": now, "b_keep": list(unless)}
    ).first()
    return None if row is None else dict(row._mapping)


def funnel_query(since: datetime, until: datetime) -> Select[Any]:
    """Sessions created in ``[since, until)``: how many, how many completed, how many expired."""
    s = _sessions.c
    session_period = and_(
        s.created_at >= since,
        s.created_at < until,
        # awaiting_payment / payment_failed: completed with a bank debit not (yet) paid.
        s.status.in_(("open", "complete", "expired", "awaiting_payment", "payment_failed")),
    )
    return select(
        func.count(),
        func.coalesce(func.sum(case((s.status == "complete", 1), else_=0)), 0),
        func.coalesce(func.sum(case((s.status == "expired", 1), else_=0)), 0),
    ).where(session_period)
