"""The ledger's writer: appends balanced journal transactions, moves the materialized balances,
locks payment rows into :class:`~mentorpay.ledger.rules.PaymentState` and writes a rule's
:class:`~mentorpay.ledger.rules.Plan`. Owns the ledger-side writes to the payments,
transactions, entries, balances and disputes tables; never commits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection

from mentorpay.db import driver_execute
from mentorpay.errors import InvalidAmountError, PaymentNotFoundError
from mentorpay.ledger._sql import _BALANCE_COLUMNS, OPEN_HOLDS, Statements
from mentorpay.ledger.queries import locked_payment
from mentorpay.ledger.rules import BALANCE_ACCOUNTS, Leg, Plan
from mentorpay.ledger.state import PaymentState
from mentorpay.ledger.views import Posting
from mentorpay.models import disputes_table as _disputes
from mentorpay.models import payments_table as _payments
from mentorpay.money import Money

#: Balance account -> its column's position in ``_BALANCE_COLUMNS``.
_BALANCE_INDEX = {account: _BALANCE_COLUMNS.index(c) for account, c in BALANCE_ACCOUNTS.items()}


class Journal:
    """Writes inside the caller's transaction; see the package docstring for the rules.

    :class:`~mentorpay.ledger.service.LedgerService` is one (``post`` is public); the postings
    reach the underscored helpers through it."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._statements: Statements | None = None

    def _sql_for(self, conn: Connection) -> Statements:
        """The prebuilt statements (built on first use: the dialect needs a connection)."""
        if self._statements is None:
            self._statements = Statements(conn)
        return self._statements

    def post(
        self,
        conn: Connection,
        *,
        business_key: str,
        kind: str,
        currency: str,
        legs: Sequence[Leg],
        mentor_id: str | None = None,
        payment_intent_id: str | None = None,
        payout_request_id: int | None = None,
        apply_balances: bool = True,
        stamp: Any = None,
    ) -> Posting:
        """Append one balanced journal transaction unless its business key already exists.

        ``apply_balances=False`` is for callers that already moved the materialized balance
        with a conditional update (payout reservation). ``stamp``: the clock already bound
        (a posting that stamped its other rows with it binds the clock once). Never commits.
        """
        if sum(amount for _, _, amount in legs) != 0:
            raise InvalidAmountError(
                "a journal transaction must balance", business_key=business_key, kind=kind
            )
        sql = self._sql_for(conn)
        if stamp is None:
            stamp = sql.bind_time(self._clock())
        # RETURNING, not rowcount: psycopg reports -1 for ON CONFLICT DO NOTHING without it.
        claimed = driver_execute(
            conn,
            sql.claim_transaction,
            (business_key, kind, currency, mentor_id, payment_intent_id, payout_request_id, stamp),
        )
        if not claimed:
            return Posting(business_key, created=False)
        txn_id = int(claimed[0][0])
        params: list[Any] = []
        for account, owner, amount in legs:
            if amount != 0:
                params += (txn_id, account, owner, currency, amount)
        if params:
            driver_execute(conn, sql.insert_entries(len(params) // 5), params)
        if apply_balances:
            self._apply_balances(conn, currency, legs, stamp)
        return Posting(business_key, created=True, transaction_id=txn_id)

    def _apply_balances(
        self, conn: Connection, currency: str, legs: Sequence[Leg], stamp: Any
    ) -> None:
        # Mentor id -> the deltas in _BALANCE_COLUMNS order (one upsert per mentor).
        deltas: dict[str, list[int]] = {}
        for account, owner, amount in legs:
            index = _BALANCE_INDEX.get(account)
            if index is not None and amount != 0:
                if owner is None:
                    raise InvalidAmountError(f"mentor account {account} needs a mentor id")
                row = deltas.get(owner)
                if row is None:
                    row = deltas[owner] = [0] * len(_BALANCE_COLUMNS)
                row[index] += amount
        upsert = self._sql_for(conn).upsert_balance
        for owner, row in deltas.items():
            driver_execute(conn, upsert, (owner, currency, *row, stamp))

    def _lock(self, conn: Connection, payment_intent_id: str) -> PaymentState:
        """The payment's state, its row locked until the transaction ends."""
        state = locked_payment(conn, payment_intent_id)
        if state is None:
            raise PaymentNotFoundError(
                f"no payment recorded for {payment_intent_id}", payment_intent_id=payment_intent_id
            )
        return state

    def _update_payment(
        self, conn: Connection, s: PaymentState, values: dict[str, Any], now: datetime | None = None
    ) -> None:
        """Write a rule's new columns on the payment row, stamped ``now`` (default: the clock)."""
        conn.execute(
            update(_payments)
            .where(_payments.c.id == s.id)
            .values(**values, updated_at=now or self._clock())
        )

    def _shrink_holds(self, conn: Connection, payment_intent_id: str, amount: int) -> None:
        """Take ``amount`` out of the payment's open dispute holds, in dispute-id order."""
        rows = conn.execute(OPEN_HOLDS, {"pi": payment_intent_id}).all()
        now = self._clock()
        for dispute_id, held in rows:
            if amount <= 0:
                break
            take = min(held, amount)
            amount -= take
            conn.execute(
                update(_disputes)
                .where(_disputes.c.id == dispute_id)
                .values(held=held - take, updated_at=now)
            )

    def _write_plan(
        self,
        conn: Connection,
        s: PaymentState,
        plan: Plan,
        *,
        key: str,
        kind: str,
        mentor_id: str | None,
        now: datetime | None = None,
    ) -> Posting:
        """Write a plan: shrink the holds it consumed, post its legs under ``key`` (unless it
        has none), then update the payment row. The returned posting carries the plan's
        amount; ``mentor_id`` is the one the journal transaction names, ``now`` the row's
        ``updated_at`` when the effect stamped other rows with it."""
        if plan.from_held:
            self._shrink_holds(conn, s.payment_intent_id, plan.from_held)
        posting = Posting(key, created=False)
        if plan.legs is not None:
            posting = self.post(
                conn,
                business_key=key,
                kind=kind,
                currency=s.currency,
                mentor_id=mentor_id,
                payment_intent_id=s.payment_intent_id,
                legs=plan.legs,
            )
        self._update_payment(conn, s, plan.updates, now)
        return Posting(key, posting.created, posting.transaction_id, Money(plan.amount, s.currency))
