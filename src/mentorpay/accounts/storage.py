"""Every statement on the mentor accounts table (``mentorpay_mentor_accounts``), its one owner.

Each runs on the caller's connection, inside the caller's transaction, and never commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, or_, select, update
from sqlalchemy.engine import Connection

from mentorpay.accounts.rules import AccountObject, join_due
from mentorpay.db import insert_for
from mentorpay.errors import ConflictError
from mentorpay.gateway import GatewayAccount
from mentorpay.models import mentor_accounts_table as _accounts

__all__ = ["apply_event", "by_account", "by_mentor", "claim", "list_rows", "set_account"]


def claim(conn: Connection, mentor_id: str, *, key: str, livemode: bool, now: datetime) -> Row[Any]:
    """The mentor's row: inserted now (no account yet), or the one a concurrent or earlier
    onboarding inserted. The unique mentor id decides the race before anyone calls Stripe."""
    conn.execute(
        insert_for(conn, _accounts)
        .values(
            mentor_id=mentor_id,
            account_id=None,
            idempotency_key=key,
            livemode=livemode,
            charges_enabled=False,
            payouts_enabled=False,
            details_submitted=False,
            currently_due="",
            past_due="",
            disabled_reason=None,
            event_created=None,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )
    row = by_mentor(conn, mentor_id)
    if row is None:  # pragma: no cover - rows are never deleted
        raise ConflictError("the mentor's account row vanished; try again", mentor_id=mentor_id)
    return row


def by_mentor(conn: Connection, mentor_id: str, *, lock: bool = False) -> Row[Any] | None:
    """The mentor's row, if any (``lock``: FOR UPDATE where the database has it)."""
    query = select(_accounts).where(_accounts.c.mentor_id == mentor_id)
    return conn.execute(query.with_for_update() if lock else query).first()


def by_account(conn: Connection, account_id: str, *, lock: bool = False) -> Row[Any] | None:
    """The row of the connected account ``account_id``, if mentorpay created it."""
    query = select(_accounts).where(_accounts.c.account_id == account_id)
    return conn.execute(query.with_for_update() if lock else query).first()


def list_rows(conn: Connection, limit: int, *, not_enabled: bool = False) -> list[Row[Any]]:
    """Rows by mentor id, at most ``limit``; with ``not_enabled``, only accounts that cannot
    take both charges and payouts yet (``AccountStatus.state`` other than ``enabled``)."""
    query = select(_accounts)
    if not_enabled:
        a = _accounts.c
        enabled = and_(
            a.account_id.is_not(None), a.details_submitted, a.charges_enabled, a.payouts_enabled
        )
        query = query.where(~enabled)
    return list(conn.execute(query.order_by(_accounts.c.mentor_id).limit(limit)).all())


def set_account(
    conn: Connection, mentor_id: str, account: GatewayAccount, now: datetime
) -> Row[Any]:
    """Record the account Stripe created for the mentor (once: a concurrent caller that got
    the same account from Stripe's idempotency changes nothing), with its state at creation
    unless an ``account.updated`` already told more."""
    conn.execute(
        update(_accounts)
        .where(and_(_accounts.c.mentor_id == mentor_id, _accounts.c.account_id.is_(None)))
        .values(
            account_id=account.id,
            charges_enabled=account.charges_enabled,
            payouts_enabled=account.payouts_enabled,
            details_submitted=account.details_submitted,
            currently_due=join_due(account.currently_due),
            past_due=join_due(account.past_due),
            disabled_reason=account.disabled_reason,
            updated_at=now,
        )
    )
    row = by_mentor(conn, mentor_id)
    assert row is not None
    if row.account_id != account.id:
        raise ConflictError(
            f"mentor {mentor_id} already has Stripe account {row.account_id}, and Stripe "
            f"answered with {account.id}; nothing was changed",
            mentor_id=mentor_id,
            account_id=row.account_id,
        )
    return row


def apply_event(
    conn: Connection, account_id: str, obj: AccountObject, event_created: int, now: datetime
) -> bool:
    """Store what an ``account.updated`` says, unless a newer one was applied meanwhile (the
    condition repeats the stale check, so two concurrent events cannot go back in time)."""
    requirements = obj.requirements
    result = conn.execute(
        update(_accounts)
        .where(
            and_(
                _accounts.c.account_id == account_id,
                or_(
                    _accounts.c.event_created.is_(None),
                    _accounts.c.event_created <= event_created,
                ),
            )
        )
        .values(
            charges_enabled=obj.charges_enabled,
            payouts_enabled=obj.payouts_enabled,
            details_submitted=obj.details_submitted,
            currently_due=join_due(requirements.currently_due),
            past_due=join_due(requirements.past_due),
            disabled_reason=requirements.disabled_reason,
            event_created=event_created,
            updated_at=now,
        )
    )
    return bool(result.rowcount)
