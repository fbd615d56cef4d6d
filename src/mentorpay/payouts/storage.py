"""Every statement on the payout requests table (``mentorpay_payout_requests``).

The service decides; these functions read and write. Each runs on the caller's connection,
inside the caller's transaction, and never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, insert, or_, select, update
from sqlalchemy.engine import Connection

from mentorpay.db import chunked
from mentorpay.errors import InvalidRequestError, PayoutNotFoundError
from mentorpay.models import payouts_table as _payouts
from mentorpay.money import Money

__all__ = [
    "by_ids",
    "by_transfer_ids",
    "find_for_transfer",
    "insert_request",
    "list_rows",
    "record_transfer",
    "reference_holder",
    "row",
    "transfers_in_flight",
    "update_status",
]


def row(conn: Connection, payout_id: int, *, lock: bool = False) -> Row[Any]:
    """Payout ``payout_id`` (``lock``: FOR UPDATE); :class:`PayoutNotFoundError` if none."""
    if isinstance(payout_id, bool) or not isinstance(payout_id, int):
        raise InvalidRequestError("payout ids are integers", payout_id=str(payout_id))
    query = select(_payouts).where(_payouts.c.id == payout_id)
    if lock:
        query = query.with_for_update()
    found = conn.execute(query).first()
    if found is None:
        raise PayoutNotFoundError(f"there is no payout request {payout_id}", payout_id=payout_id)
    return found


def list_rows(
    conn: Connection, mentor_id: str | None, status: str | None, limit: int
) -> list[Row[Any]]:
    """Payout requests, newest first, optionally of one mentor and/or in one status."""
    query = select(_payouts)
    if mentor_id is not None:
        query = query.where(_payouts.c.mentor_id == mentor_id)
    if status is not None:
        query = query.where(_payouts.c.status == status)
    return list(conn.execute(query.order_by(_payouts.c.id.desc()).limit(limit)).all())


def insert_request(
    conn: Connection,
    *,
    mentor_id: str,
    amount: Money,
    method: str,
    destination: str | None,
    now: datetime,
) -> int:
    """A new ``requested`` payout; returns its id."""
    payout_id: int = conn.execute(
        insert(_payouts)
        .values(
            mentor_id=mentor_id,
            currency=amount.currency,
            amount=amount.amount,
            status="requested",
            method=method,
            destination=destination,
            transfer_id=None,
            reference=None,
            approved_by=None,
            failure_reason=None,
            created_at=now,
            updated_at=now,
            approved_at=None,
            settled_at=None,
        )
        .returning(_payouts.c.id)
    ).scalar_one()
    return payout_id


def reference_holder(conn: Connection, reference: str, payout_id: int) -> int | None:
    """Another payout already recorded with bank transfer ``reference``, if any."""
    clash = conn.execute(
        select(_payouts.c.id).where(
            and_(_payouts.c.reference == reference, _payouts.c.id != payout_id)
        )
    ).first()
    return None if clash is None else int(clash.id)


def update_status(
    conn: Connection, payout_id: int, source: str, target: str, values: dict[str, Any]
) -> bool:
    """``source -> target`` if the row is still ``source``; False when it changed meanwhile."""
    result = conn.execute(
        update(_payouts)
        .where(and_(_payouts.c.id == payout_id, _payouts.c.status == source))
        .values(status=target, **values)
    )
    return result.rowcount == 1


def record_transfer(conn: Connection, payout_id: int, transfer_id: str, now: datetime) -> None:
    """Note the transfer of a ``processing`` payout that has none yet (else: no change)."""
    conn.execute(
        update(_payouts)
        .where(
            and_(
                _payouts.c.id == payout_id,
                _payouts.c.transfer_id.is_(None),
                _payouts.c.status == "processing",
            )
        )
        .values(transfer_id=transfer_id, updated_at=now)
    )


def find_for_transfer(conn: Connection, transfer_id: str, payout_id: int | None) -> Row[Any] | None:
    """The payout (locked) recorded with ``transfer_id``, or the transfer payout its metadata
    names (``payout_id``), the lowest id first."""
    conditions = [_payouts.c.transfer_id == transfer_id]
    if payout_id is not None:
        conditions.append(and_(_payouts.c.id == payout_id, _payouts.c.method == "stripe_transfer"))
    return conn.execute(
        select(_payouts).where(or_(*conditions)).order_by(_payouts.c.id).with_for_update()
    ).first()


def by_ids(conn: Connection, payout_ids: Sequence[int]) -> dict[int, Row[Any]]:
    """The payouts with these ids, by id."""
    found: dict[int, Row[Any]] = {}
    for chunk in chunked(payout_ids):
        for found_row in conn.execute(select(_payouts).where(_payouts.c.id.in_(chunk))):
            found[found_row.id] = found_row
    return found


def by_transfer_ids(conn: Connection, transfer_ids: Sequence[str]) -> dict[str, Row[Any]]:
    """The payouts recorded with these transfer ids, by transfer id."""
    found: dict[str, Row[Any]] = {}
    for chunk in chunked(transfer_ids):
        query = select(_payouts).where(_payouts.c.transfer_id.in_(chunk))
        for found_row in conn.execute(query):
            found[found_row.transfer_id] = found_row
    return found


def transfers_in_flight(conn: Connection, since: datetime, until: datetime) -> list[Row[Any]]:
    """Transfer payouts processing or paid, created or updated in ``[since, until)``."""
    return list(
        conn.execute(
            select(_payouts).where(
                and_(
                    _payouts.c.method == "stripe_transfer",
                    _payouts.c.status.in_(("processing", "paid")),
                    or_(
                        and_(_payouts.c.created_at >= since, _payouts.c.created_at < until),
                        and_(_payouts.c.updated_at >= since, _payouts.c.updated_at < until),
                    ),
                )
            )
        ).all()
    )
