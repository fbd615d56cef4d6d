"""The ledger's SQL: the posting path's statements, built once per dialect and run on the
driver, and the prebuilt Core selects the service locks and reads rows with."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from mentorpay.db import insert_constructor, placeholder, time_binder
from mentorpay.ledger.rules import BALANCE_ACCOUNTS
from mentorpay.ledger.state import STATE_COLUMNS
from mentorpay.models import balances_table as _balances
from mentorpay.models import disputes_table as _disputes
from mentorpay.models import payments_table as _payments

_PAYMENT_COLUMNS = (
    "payment_intent_id",
    "checkout_session_id",
    "charge_id",
    "destination",
    "booking_id",
    "mentor_id",
    "mentee_id",
    "currency",
    "status",
    "amount",
    "platform_fee",
    "mentor_payout",
    "rate_bps",
    "rounding",
    "amount_reversed",
    "fee_reversed",
    "payout_reversed",
    "amount_refunded",
    "payout_held",
    "amount_disputed",
    "review_reason",
    "release_due_at",
    "released_at",
    "created_at",
    "updated_at",
)
_BALANCE_COLUMNS = tuple(BALANCE_ACCOUNTS.values())


class Statements:
    """The posting path's SQL, built once per dialect and run on the driver.

    Postings run several statements per webhook; through SQLAlchemy Core each costs several
    times the driver call, so these go straight to the DBAPI cursor inside the caller's
    transaction (see :func:`mentorpay.db.driver_execute`). ON CONFLICT and RETURNING are common
    to SQLite >= 3.35, PostgreSQL and PostgreSQL-wire distributed SQL.
    """

    def __init__(self, conn: Connection) -> None:
        insert_constructor(conn.dialect.name)  # refuses unsupported databases
        p = placeholder(conn)
        self._p = p
        # The dialect's own processor: SQLite stores exactly what Core stores.
        self.bind_time: Callable[[datetime | None], Any] = time_binder(conn.dialect)
        self.insert_payment = (
            f"INSERT INTO mentorpay_payments ({', '.join(_PAYMENT_COLUMNS)})"
            f" VALUES ({', '.join([p] * len(_PAYMENT_COLUMNS))})"
            " ON CONFLICT (payment_intent_id) DO NOTHING RETURNING id"
        )
        self.claim_transaction = (
            "INSERT INTO mentorpay_ledger_transactions (business_key, kind, currency, mentor_id,"
            f" payment_intent_id, payout_request_id, created_at) VALUES ({p}, {p}, {p}, {p}, {p},"
            f" {p}, {p}) ON CONFLICT (business_key) DO NOTHING RETURNING id"
        )
        updates = ", ".join(
            f"{c} = mentorpay_mentor_balances.{c} + excluded.{c}" for c in _BALANCE_COLUMNS
        )
        # One atomic upsert: concurrent postings add, they never overwrite each other.
        self.upsert_balance = (
            f"INSERT INTO mentorpay_mentor_balances (mentor_id, currency,"
            f" {', '.join(_BALANCE_COLUMNS)}, updated_at)"
            f" VALUES ({', '.join([p] * (len(_BALANCE_COLUMNS) + 3))})"
            f" ON CONFLICT (mentor_id, currency) DO UPDATE SET {updates},"
            " updated_at = excluded.updated_at"
        )
        self._insert_entries: dict[int, str] = {}
        # PostgreSQL: the payment, its journal transaction, its three legs and the balance in
        # one round trip through data-modifying CTEs (the other databases run them one by one).
        # Each step reads the previous one's RETURNING, so a duplicate payment writes nothing.
        self.record_payment_cte: str | None = None
        if conn.dialect.name == "postgresql":
            self.record_payment_cte = (
                f"WITH p AS ({self.insert_payment}),"
                " t AS (INSERT INTO mentorpay_ledger_transactions (business_key, kind, currency,"
                " mentor_id, payment_intent_id, payout_request_id, created_at)"
                " SELECT %s, 'payment', %s, %s, %s, NULL, %s FROM p"
                " ON CONFLICT (business_key) DO NOTHING RETURNING id),"
                " e AS (INSERT INTO mentorpay_ledger_entries"
                " (transaction_id, account, mentor_id, currency, amount)"
                " SELECT t.id, v.account, v.mentor_id, v.currency, v.amount FROM t,"
                " (VALUES ('stripe_clearing', NULL::varchar, %s::varchar, %s::bigint),"
                " ('platform_commission', NULL, %s, %s), ('mentor_pending', %s, %s, %s))"
                " AS v (account, mentor_id, currency, amount) WHERE v.amount <> 0),"
                " b AS (INSERT INTO mentorpay_mentor_balances (mentor_id, currency, pending,"
                " available, held, reserved, withdrawn, updated_at)"
                " SELECT %s, %s, %s::bigint, 0, 0, 0, 0, %s FROM t WHERE %s::bigint <> 0"
                " ON CONFLICT (mentor_id, currency) DO UPDATE SET"
                " pending = mentorpay_mentor_balances.pending + excluded.pending,"
                " updated_at = excluded.updated_at)"
                " SELECT (SELECT id FROM p), (SELECT id FROM t)"
            )

    def insert_entries(self, rows: int) -> str:
        """One multi-row INSERT for a transaction's legs (one round trip, not executemany)."""
        sql = self._insert_entries.get(rows)
        if sql is None:
            p = self._p
            values = ", ".join([f"({p}, {p}, {p}, {p}, {p})"] * rows)
            sql = self._insert_entries[rows] = (
                "INSERT INTO mentorpay_ledger_entries"
                f" (transaction_id, account, mentor_id, currency, amount) VALUES {values}"
            )
        return sql


SELECT_BALANCE = select(_balances).where(
    _balances.c.mentor_id == bindparam("mentor_id"),
    _balances.c.currency == bindparam("currency"),
)

#: A payment's state, locked for the rest of the transaction (columns in PaymentState's order).
LOCK_PAYMENT = (
    select(*(_payments.c[name] for name in STATE_COLUMNS))
    .where(_payments.c.payment_intent_id == bindparam("pi"))
    .with_for_update()
)

#: A payment's open dispute holds, in the order a take-back shrinks them.
OPEN_HOLDS = (
    select(_disputes.c.id, _disputes.c.held)
    .where(
        _disputes.c.payment_intent_id == bindparam("pi"),
        _disputes.c.status == "open",
        _disputes.c.held > 0,
    )
    .order_by(_disputes.c.id)
)
