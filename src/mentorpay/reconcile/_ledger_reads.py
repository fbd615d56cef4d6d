"""The ledger's side of reconciliation: what the payments and journal tables recorded.

These tables belong to the ledger; reconciliation only reads them, here and nowhere else, so
the reads can move behind the ledger's own queries without touching the checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, select
from sqlalchemy.engine import Connection

from mentorpay.db import chunked
from mentorpay.models import payments_table as _payments
from mentorpay.models import transactions_table as _transactions

__all__ = [
    "_locally_opened_disputes",
    "payments_by_intent",
    "payments_created",
    "payments_refunded",
    "posted_keys",
]


def payments_by_intent(conn: Connection, intents: Sequence[str]) -> dict[str, Any]:
    """The payment rows of these payment intents, by payment intent id."""
    found: dict[str, Any] = {}
    for chunk in chunked(intents):
        for row in conn.execute(select(_payments).where(_payments.c.payment_intent_id.in_(chunk))):
            found[row.payment_intent_id] = row
    return found


def payments_created(conn: Connection, since: datetime, until: datetime) -> list[Row[Any]]:
    """Payments recorded in ``[since, until)``."""
    return list(
        conn.execute(
            select(_payments).where(
                and_(
                    _payments.c.created_at >= since,
                    _payments.c.created_at < until,
                    # No code writes "failed" to a payment row (issue 10); the filter is kept
                    # as it was, so this refactoring changes nothing.
                    _payments.c.status != "failed",
                )
            )
        ).all()
    )


def payments_refunded(conn: Connection, since: datetime, until: datetime) -> list[Row[Any]]:
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
        )
    )


def posted_keys(conn: Connection, keys: Sequence[str]) -> set[str]:
    """Which of these journal business keys were posted."""
    posted: set[str] = set()
    for chunk in chunked(keys):
        posted.update(
            conn.execute(
                select(_transactions.c.business_key).where(_transactions.c.business_key.in_(chunk))
            ).scalars()
        )
    return posted


def _locally_opened_disputes(
    conn: Connection, since: datetime, until: datetime
) -> list[tuple[str, str | None]]:
    """(dispute id, payment intent id) of the disputes the ledger opened in ``[since, until)``."""
    # The dispute id is read out of the business key (dispute:<id>:opened): the one place
    # that parses ledger keys, kept alone so a ledger query can replace its body.
    rows = conn.execute(
        select(_transactions.c.business_key, _transactions.c.payment_intent_id).where(
            and_(
                _transactions.c.kind == "dispute_opened",
                _transactions.c.created_at >= since,
                _transactions.c.created_at < until,
            )
        )
    ).all()
    return [(business_key.split(":")[1], pi_id) for business_key, pi_id in rows]
