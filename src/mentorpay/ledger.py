"""The double-entry ledger: postings, materialized mentor balances, verification and queries.

Accounts (signed legs; the legs of one transaction sum to zero):

=====================  =========================================================
``stripe_clearing``    counter-account for money entering (-) or leaving (+) via Stripe
``platform_commission``  the platform's fees (never materialized: it is hot, so it is summed)
``mentor_pending``     earned, waiting for the session to take place / the hold period
``mentor_available``   withdrawable; may go negative after a refund of released money
``mentor_held``        frozen by an open dispute
``mentor_reserved``    requested for payout, not yet paid
``mentor_withdrawn``   paid out to the mentor
=====================  =========================================================

Fund flow: payment -> pending -> (release) available -> (payout request) reserved -> (paid)
withdrawn; a failed or cancelled payout returns reserved -> available. Refunds and lost
disputes take the mentor's share of that payment from where it sits: pending while the payment
is unreleased (overflow from available), available once released.

Every posting has a business key that is unique in the database: posting an effect twice writes
nothing the second time and reports ``created=False``. Every posting also updates the mentor's
materialized balance row in the same transaction, so ``balance()`` is one primary-key read.

Transactions: posting methods take an optional ``conn``. Given one, they run inside the caller's
transaction and never commit (the webhook processor composes several postings into one event).
Without one, they open their own transaction, retried on serialization failures.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import Engine, Row, and_, bindparam, func, select, update
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.commission import CommissionPolicy, Rounding, Split, split_refund
from mentorpay.db import (
    DEFAULT_RETRIES,
    driver_execute,
    insert_constructor,
    placeholder,
    read_connection,
    run_in_transaction,
)
from mentorpay.errors import (
    CurrencyMismatchError,
    InsufficientBalanceError,
    InvalidAmountError,
    InvalidRequestError,
    PaymentNotFoundError,
)
from mentorpay.models import UTCDateTime
from mentorpay.models import balances_table as _balances
from mentorpay.models import entries_table as _entries
from mentorpay.models import payments_table as _payments
from mentorpay.models import transactions_table as _transactions
from mentorpay.money import Money, normalize_currency

__all__ = [
    "BALANCE_ACCOUNTS",
    "BalanceView",
    "LedgerService",
    "Page",
    "PaymentOutcome",
    "PaymentRecord",
    "Posting",
    "VerifyReport",
    "payment_status",
]

logger = logging.getLogger("mentorpay.ledger")

T = TypeVar("T")

CLEARING = "stripe_clearing"
COMMISSION = "platform_commission"
PENDING = "mentor_pending"
AVAILABLE = "mentor_available"
HELD = "mentor_held"
RESERVED = "mentor_reserved"
WITHDRAWN = "mentor_withdrawn"

#: Mentor account -> column of the materialized balance row.
BALANCE_ACCOUNTS: dict[str, str] = {
    PENDING: "pending",
    AVAILABLE: "available",
    HELD: "held",
    RESERVED: "reserved",
    WITHDRAWN: "withdrawn",
}


Leg = tuple[str, str | None, int]  # (account, mentor_id or None for platform accounts, amount)


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
    "release_due_at",
    "released_at",
    "created_at",
    "updated_at",
)
_BALANCE_COLUMNS = tuple(BALANCE_ACCOUNTS.values())


class _Statements:
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
        self.bind_time: Callable[[datetime | None], Any] = (
            UTCDateTime().bind_processor(conn.dialect) or _identity
        )
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


def _identity(value: Any) -> Any:
    return value


_SELECT_BALANCE = select(_balances).where(
    _balances.c.mentor_id == bindparam("mentor_id"),
    _balances.c.currency == bindparam("currency"),
)


@dataclass(frozen=True, slots=True)
class BalanceView:
    """A mentor's balance in one currency."""

    mentor_id: str
    currency: str
    pending: Money
    available: Money
    held: Money
    reserved: Money
    withdrawn: Money

    @property
    def total_earned(self) -> Money:
        """Everything earned net of refunds and lost disputes, wherever it sits now."""
        return self.pending + self.available + self.held + self.reserved + self.withdrawn

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: minor-unit integers plus a display string per field."""
        out: dict[str, Any] = {"mentor_id": self.mentor_id, "currency": self.currency}
        for name in ("total_earned", "pending", "available", "held", "reserved", "withdrawn"):
            money: Money = getattr(self, name)
            out[name] = money.amount
            out[f"{name}_display"] = str(money)
        return out


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """A recorded payment as the API shows it."""

    id: int
    payment_intent_id: str
    booking_id: str
    mentor_id: str
    mentee_id: str
    status: str
    gross: Money
    platform_fee: Money
    mentor_payout: Money
    refunded: Money
    rate_bps: int
    created_at: datetime
    released_at: datetime | None
    rounding: Rounding = "half_even"

    @property
    def split(self) -> Split:
        """The split frozen at capture, with the payment's own rounding (refunds reuse it)."""
        return Split(
            self.gross, self.platform_fee, self.mentor_payout, self.rate_bps, self.rounding
        )

    def as_dict(self, role: Literal["mentor", "mentee"] = "mentor") -> dict[str, Any]:
        """JSON-ready; a mentee does not see the platform's commission breakdown."""
        out: dict[str, Any] = {
            "id": self.id,
            "payment_intent_id": self.payment_intent_id,
            "booking_id": self.booking_id,
            "status": self.status,
            "currency": self.gross.currency,
            "amount": self.gross.amount,
            "amount_display": str(self.gross),
            "refunded": self.refunded.amount,
            "created_at": self.created_at.isoformat(),
        }
        if role == "mentor":
            out.update(
                mentee_id=self.mentee_id,
                platform_fee=self.platform_fee.amount,
                mentor_payout=self.mentor_payout.amount,
                released=self.released_at is not None,
            )
        else:
            out["mentor_id"] = self.mentor_id
        return out


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated listing; pass ``next_cursor`` to get the next one."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of recomputing every balance from the journal."""

    ok: bool
    problems: list[str]
    transactions: int
    balances: int


@dataclass(frozen=True, slots=True)
class Posting:
    """What a posting did: ``created`` is False when its business key already existed."""

    business_key: str
    created: bool
    transaction_id: int | None = None
    amount: Money | None = None


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """Result of recording a payment: the stored record and whether this call created it."""

    payment: PaymentRecord
    created: bool
    split: Split
    extra: dict[str, Any] = field(default_factory=dict)


def _record(row: Row[Any]) -> PaymentRecord:
    m = row._mapping
    cur = m["currency"]
    return PaymentRecord(
        id=m["id"],
        payment_intent_id=m["payment_intent_id"],
        booking_id=m["booking_id"],
        mentor_id=m["mentor_id"],
        mentee_id=m["mentee_id"],
        status=m["status"],
        gross=Money(m["amount"], cur),
        platform_fee=Money(m["platform_fee"], cur),
        mentor_payout=Money(m["mentor_payout"], cur),
        refunded=Money(m["amount_reversed"], cur),
        rate_bps=m["rate_bps"],
        created_at=m["created_at"],
        released_at=m["released_at"],
        rounding=m["rounding"],
    )


def payment_status(*, amount: int, reversed_total: int, refunded: int, disputed: int) -> str:
    """A payment's label, derived from its amounts so the order events arrived in never matters.

    ``disputed`` while a dispute is open; ``dispute_lost`` once a lost dispute took money back
    (more was reversed than refunded); else ``refunded``, ``partially_refunded`` or
    ``succeeded`` by how much was refunded.
    """
    if disputed > 0:
        return "disputed"
    if reversed_total > refunded:
        return "dispute_lost"
    if reversed_total == 0:
        return "succeeded"
    return "refunded" if reversed_total >= amount else "partially_refunded"


class LedgerService:
    """Postings and queries over mentorpay's journal. See the module docstring for the rules."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._retries = retries
        self._statements: _Statements | None = None

    # -- plumbing ---------------------------------------------------------------------------

    def _sql(self, conn: Connection) -> _Statements:
        # Built on first use: the dialect is only known once a connection exists.
        if self._statements is None:
            self._statements = _Statements(conn)
        return self._statements

    def _run(self, conn: Connection | None, fn: Callable[[Connection], T]) -> T:
        if conn is not None:
            return fn(conn)
        return run_in_transaction(self._engine, fn, retries=self._retries)

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
    ) -> Posting:
        """Append one balanced journal transaction unless its business key already exists.

        ``apply_balances=False`` is for callers that already moved the materialized balance
        with a conditional update (payout reservation). Never commits.
        """
        if sum(amount for _, _, amount in legs) != 0:
            raise InvalidAmountError(
                "a journal transaction must balance", business_key=business_key, kind=kind
            )
        now = self._clock()
        sql = self._sql(conn)
        stamp = sql.bind_time(now)
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
        deltas: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for account, owner, amount in legs:
            column = BALANCE_ACCOUNTS.get(account)
            if column is not None and amount != 0:
                if owner is None:
                    raise InvalidAmountError(f"mentor account {account} needs a mentor id")
                deltas[owner][column] += amount
        upsert = self._sql(conn).upsert_balance
        for owner, cols in deltas.items():
            deltas_in_order = [cols.get(c, 0) for c in _BALANCE_COLUMNS]
            driver_execute(conn, upsert, (owner, currency, *deltas_in_order, stamp))

    def _payment_row(self, conn: Connection, payment_intent_id: str) -> Row[Any]:
        row = conn.execute(
            select(_payments)
            .where(_payments.c.payment_intent_id == payment_intent_id)
            .with_for_update()
        ).first()
        if row is None:
            raise PaymentNotFoundError(
                f"no payment recorded for {payment_intent_id}", payment_intent_id=payment_intent_id
            )
        return row

    @staticmethod
    def _free_legs(row: Row[Any], amount: int, sign: int) -> list[Leg]:
        """Legs taking (sign=-1) or returning (sign=+1) the mentor's share of one payment.

        Unreleased payments hold their share in pending; taking more than the payment's free
        pending share overflows into available, which may go negative.
        """
        m = row._mapping
        mentor = m["mentor_id"]
        if amount == 0:
            return []
        if m["destination"] is not None:
            # Destination charge: the share sits with the mentor's connected account.
            return [(WITHDRAWN, mentor, sign * amount)]
        if m["released_at"] is not None or sign > 0:
            account = PENDING if m["released_at"] is None else AVAILABLE
            return [(account, mentor, sign * amount)]
        free = max(0, m["mentor_payout"] - m["payout_reversed"] - m["payout_held"])
        from_pending = min(free, amount)
        legs: list[Leg] = [(PENDING, mentor, -from_pending)]
        if amount > from_pending:
            legs.append((AVAILABLE, mentor, -(amount - from_pending)))
        return legs

    @staticmethod
    def _original_split(m: Any) -> Split:
        cur = m["currency"]
        return Split(
            Money(m["amount"], cur),
            Money(m["platform_fee"], cur),
            Money(m["mentor_payout"], cur),
            m["rate_bps"],
            m["rounding"],
        )

    # -- payments -----------------------------------------------------------------------------

    def record_payment(
        self,
        *,
        payment_intent_id: str,
        booking_id: str,
        mentor_id: str,
        mentee_id: str,
        gross: Money,
        policy: CommissionPolicy,
        checkout_session_id: str | None = None,
        charge_id: str | None = None,
        release_due_at: datetime | None = None,
        destination: str | None = None,
        platform_fee: Money | None = None,
        conn: Connection | None = None,
    ) -> PaymentOutcome:
        """Record a succeeded payment and credit the mentor's pending balance, exactly once.

        A second call for the same payment intent writes nothing and returns ``created=False``.
        ``release_due_at`` schedules the automatic release (``release_due``) after a hold.

        ``destination``: a Connect destination charge, whose mentor share Stripe transferred to
        that connected account at capture. The share is posted straight to withdrawn (there is
        nothing to release or pay out again) and refunds take it back from there, as Stripe's
        ``reverse_transfer`` does. ``platform_fee``: the fee Stripe actually kept (a destination
        charge's application fee), recorded instead of recomputing it from ``policy``.
        """
        if not gross.is_positive():
            raise InvalidAmountError(
                "a payment must be positive", amount=gross.amount, currency=gross.currency
            )
        split = policy.split(gross)
        if platform_fee is not None and platform_fee != split.platform_fee:
            # What Stripe kept wins: the policy may have changed since checkout.
            split = Split(gross, platform_fee, gross - platform_fee, split.rate_bps, split.rounding)

        def do(c: Connection) -> PaymentOutcome:
            now = self._clock()
            values = {
                "payment_intent_id": payment_intent_id,
                "checkout_session_id": checkout_session_id,
                "charge_id": charge_id,
                "destination": destination,
                "booking_id": booking_id,
                "mentor_id": mentor_id,
                "mentee_id": mentee_id,
                "currency": gross.currency,
                "status": "succeeded",
                "amount": gross.amount,
                "platform_fee": split.platform_fee.amount,
                "mentor_payout": split.mentor_payout.amount,
                "rate_bps": split.rate_bps,
                "rounding": split.rounding,
                "amount_reversed": 0,
                "fee_reversed": 0,
                "payout_reversed": 0,
                "amount_refunded": 0,
                "payout_held": 0,
                "amount_disputed": 0,
                "release_due_at": None if destination else release_due_at,
                "released_at": now if destination else None,
                "created_at": now,
                "updated_at": now,
            }
            sql = self._sql(c)
            stamp = sql.bind_time(now)
            row: list[Any] = [values[name] for name in _PAYMENT_COLUMNS]
            for column in ("release_due_at", "released_at"):
                index = _PAYMENT_COLUMNS.index(column)
                row[index] = sql.bind_time(row[index])
            row[-2:] = [stamp, stamp]
            key = f"payment:{payment_intent_id}"
            cur, fee, payout = gross.currency, split.platform_fee.amount, split.mentor_payout.amount
            new_id: int | None
            if sql.record_payment_cte is not None and destination is None:
                found = driver_execute(
                    c,
                    sql.record_payment_cte,
                    [
                        *row,
                        *(key, cur, mentor_id, payment_intent_id, stamp),
                        *(cur, -gross.amount, cur, fee, mentor_id, cur, payout),
                        *(mentor_id, cur, payout, stamp, payout),
                    ],
                )
                new_id = found[0][0] if found else None
            else:
                inserted = driver_execute(c, sql.insert_payment, row)
                new_id = int(inserted[0][0]) if inserted else None
                if new_id is not None:
                    self.post(
                        c,
                        business_key=key,
                        kind="payment",
                        currency=cur,
                        mentor_id=mentor_id,
                        payment_intent_id=payment_intent_id,
                        legs=[
                            (CLEARING, None, -gross.amount),
                            (COMMISSION, None, fee),
                            (WITHDRAWN if destination else PENDING, mentor_id, payout),
                        ],
                    )
            if new_id is None:
                existing = self._payment_row(c, payment_intent_id)
                return PaymentOutcome(
                    _record(existing), False, self._original_split(existing._mapping)
                )
            values["id"] = new_id
            record = PaymentRecord(
                id=new_id,
                payment_intent_id=payment_intent_id,
                booking_id=booking_id,
                mentor_id=mentor_id,
                mentee_id=mentee_id,
                status="succeeded",
                gross=gross,
                platform_fee=split.platform_fee,
                mentor_payout=split.mentor_payout,
                refunded=Money.zero(gross.currency),
                rate_bps=split.rate_bps,
                created_at=now,
                released_at=now if destination else None,
                rounding=split.rounding,
            )
            return PaymentOutcome(record, True, split)

        return self._run(conn, do)

    def set_release_due(
        self, payment_intent_id: str, due_at: datetime, *, conn: Connection | None = None
    ) -> None:
        """Schedule automatic release (``release_due``) for a payment."""

        def do(c: Connection) -> None:
            c.execute(
                update(_payments)
                .where(_payments.c.payment_intent_id == payment_intent_id)
                .values(release_due_at=due_at)
            )

        self._run(conn, do)

    def release_payment(self, payment_intent_id: str, *, conn: Connection | None = None) -> Posting:
        """Move one payment's remaining mentor share from pending to available, once."""

        def do(c: Connection) -> Posting:
            row = self._payment_row(c, payment_intent_id)
            m = row._mapping
            key = f"release:{payment_intent_id}"
            if m["released_at"] is not None:
                return Posting(key, created=False)
            amount = max(0, m["mentor_payout"] - m["payout_reversed"] - m["payout_held"])
            now = self._clock()
            c.execute(
                update(_payments)
                .where(_payments.c.id == m["id"])
                .values(released_at=now, updated_at=now)
            )
            posting = self.post(
                c,
                business_key=key,
                kind="release",
                currency=m["currency"],
                mentor_id=m["mentor_id"],
                payment_intent_id=payment_intent_id,
                legs=[(PENDING, m["mentor_id"], -amount), (AVAILABLE, m["mentor_id"], amount)],
            )
            return Posting(
                key, posting.created, posting.transaction_id, Money(amount, m["currency"])
            )

        return self._run(conn, do)

    def release(self, booking_id: str, *, conn: Connection | None = None) -> list[Posting]:
        """The booking's session took place: release all of its payments (one transaction)."""

        def do(c: Connection) -> list[Posting]:
            intents = c.execute(
                select(_payments.c.payment_intent_id)
                .where(_payments.c.booking_id == booking_id)
                .order_by(_payments.c.id)
            ).scalars()
            return [self.release_payment(pi, conn=c) for pi in list(intents)]

        return self._run(conn, do)

    def release_due(self, now: datetime | None = None, *, batch: int = 500) -> list[Posting]:
        """Release every payment whose hold period has elapsed, one transaction per payment."""
        cutoff = now or self._clock()
        if cutoff.tzinfo is None:
            raise InvalidRequestError("release_due needs an aware datetime (tzinfo=UTC)")
        released: list[Posting] = []
        last_id = 0
        while True:
            with read_connection(self._engine) as c:
                rows = c.execute(
                    select(_payments.c.id, _payments.c.payment_intent_id)
                    .where(
                        and_(
                            _payments.c.released_at.is_(None),
                            _payments.c.release_due_at.is_not(None),
                            _payments.c.release_due_at <= cutoff,
                            _payments.c.id > last_id,
                        )
                    )
                    .order_by(_payments.c.id)
                    .limit(batch)
                ).all()
            if not rows:
                return released
            for row in rows:
                posting = self.release_payment(row.payment_intent_id)
                if posting.created:
                    released.append(posting)
            last_id = rows[-1].id

    # -- refunds and disputes ---------------------------------------------------------------

    def apply_refund_total(
        self,
        payment_intent_id: str,
        amount_refunded: Money,
        *,
        conn: Connection | None = None,
    ) -> Posting:
        """Bring the ledger up to Stripe's cumulative ``amount_refunded`` for the charge.

        Only the difference from what is already applied is posted, under a key naming the
        cumulative state, so duplicates and older events arriving late change nothing.
        """

        def do(c: Connection) -> Posting:
            row = self._payment_row(c, payment_intent_id)
            m = row._mapping
            if amount_refunded.currency != m["currency"]:
                raise CurrencyMismatchError(
                    "refund currency differs from the payment's",
                    payment_currency=m["currency"],
                    refund_currency=amount_refunded.currency,
                )
            key = f"refund:{payment_intent_id}:{amount_refunded.amount}"
            delta = amount_refunded.amount - m["amount_refunded"]
            if delta <= 0:
                return Posting(key, created=False)
            room = m["amount"] - m["amount_reversed"]
            if delta > room:
                # Stripe never refunds more than was charged net of a lost dispute; if it says
                # so anyway, reverse what is left rather than fail the event forever.
                logger.warning(
                    "refund of %s exceeds what remains on %s; clamping to %s",
                    delta,
                    payment_intent_id,
                    room,
                )
            applied = min(delta, room)
            part = split_refund(
                self._original_split(m),
                Money(m["amount_reversed"], m["currency"]),
                Money(applied, m["currency"]),
            )
            fee, payout = part.platform_fee.amount, part.mentor_payout.amount
            now = self._clock()
            reversed_total = m["amount_reversed"] + applied
            status = payment_status(
                amount=m["amount"],
                reversed_total=reversed_total,
                refunded=amount_refunded.amount,
                disputed=m["amount_disputed"],
            )
            c.execute(
                update(_payments)
                .where(_payments.c.id == m["id"])
                .values(
                    amount_refunded=amount_refunded.amount,
                    amount_reversed=reversed_total,
                    fee_reversed=m["fee_reversed"] + fee,
                    payout_reversed=m["payout_reversed"] + payout,
                    status=status,
                    updated_at=now,
                )
            )
            posting = self.post(
                c,
                business_key=key,
                kind="refund",
                currency=m["currency"],
                mentor_id=m["mentor_id"],
                payment_intent_id=payment_intent_id,
                legs=[
                    (CLEARING, None, applied),
                    (COMMISSION, None, -fee),
                    *self._free_legs(row, payout, -1),
                ],
            )
            return Posting(key, posting.created, posting.transaction_id, part.gross)

        return self._run(conn, do)

    def open_dispute(
        self,
        payment_intent_id: str,
        dispute_id: str,
        amount: Money,
        *,
        conn: Connection | None = None,
    ) -> Posting:
        """Freeze the mentor's share of a disputed amount (pending/available -> held)."""

        def do(c: Connection) -> Posting:
            row = self._payment_row(c, payment_intent_id)
            m = row._mapping
            key = f"dispute:{dispute_id}:opened"
            if amount.currency != m["currency"]:
                raise CurrencyMismatchError("dispute currency differs from the payment's")
            disputed = min(amount.amount, m["amount"] - m["amount_reversed"])
            if disputed <= 0 or m["amount_disputed"] > 0:
                return Posting(key, created=False)
            hold = split_refund(
                self._original_split(m),
                Money(m["amount_reversed"], m["currency"]),
                Money(disputed, m["currency"]),
            ).mentor_payout.amount
            legs = [*self._free_legs(row, hold, -1), (HELD, m["mentor_id"], hold)]
            posting = self.post(
                c,
                business_key=key,
                kind="dispute_opened",
                currency=m["currency"],
                mentor_id=m["mentor_id"],
                payment_intent_id=payment_intent_id,
                legs=legs,
            )
            if posting.created:
                c.execute(
                    update(_payments)
                    .where(_payments.c.id == m["id"])
                    .values(
                        payout_held=hold,
                        amount_disputed=disputed,
                        status="disputed",
                        updated_at=self._clock(),
                    )
                )
            return Posting(key, posting.created, posting.transaction_id, Money(hold, m["currency"]))

        return self._run(conn, do)

    def close_dispute(
        self,
        payment_intent_id: str,
        dispute_id: str,
        *,
        won: bool,
        conn: Connection | None = None,
    ) -> Posting:
        """Won: the held share goes back. Lost: the disputed amount is reversed like a refund."""

        def do(c: Connection) -> Posting:
            row = self._payment_row(c, payment_intent_id)
            m = row._mapping
            key = f"dispute:{dispute_id}:{'won' if won else 'lost'}"
            held, disputed = m["payout_held"], m["amount_disputed"]
            mentor, cur = m["mentor_id"], m["currency"]
            if disputed == 0:
                return Posting(key, created=False)
            values: dict[str, Any] = {"payout_held": 0, "amount_disputed": 0}
            if won:
                legs: list[Leg] = [(HELD, mentor, -held), *self._free_legs(row, held, +1)]
                values["status"] = payment_status(
                    amount=m["amount"],
                    reversed_total=m["amount_reversed"],
                    refunded=m["amount_refunded"],
                    disputed=0,
                )
            else:
                applied = min(disputed, m["amount"] - m["amount_reversed"])
                part = split_refund(
                    self._original_split(m),
                    Money(m["amount_reversed"], cur),
                    Money(applied, cur),
                )
                fee, payout = part.platform_fee.amount, part.mentor_payout.amount
                # The hold was computed when the dispute opened; a refund in between may shift
                # the exact cumulative target by a unit, settled against the payment's share.
                diff = held - payout
                legs = [(HELD, mentor, -held)]
                if diff:
                    legs += self._free_legs(row, abs(diff), 1 if diff > 0 else -1)
                legs += [(CLEARING, None, applied), (COMMISSION, None, -fee)]
                values.update(
                    amount_reversed=m["amount_reversed"] + applied,
                    fee_reversed=m["fee_reversed"] + fee,
                    payout_reversed=m["payout_reversed"] + payout,
                    status=payment_status(
                        amount=m["amount"],
                        reversed_total=m["amount_reversed"] + applied,
                        refunded=m["amount_refunded"],
                        disputed=0,
                    ),
                )
            posting = self.post(
                c,
                business_key=key,
                kind="dispute_won" if won else "dispute_lost",
                currency=cur,
                mentor_id=mentor,
                payment_intent_id=payment_intent_id,
                legs=legs,
            )
            if posting.created:
                values["updated_at"] = self._clock()
                c.execute(update(_payments).where(_payments.c.id == m["id"]).values(**values))
            return Posting(key, posting.created, posting.transaction_id, Money(held, cur))

        return self._run(conn, do)

    # -- payouts ------------------------------------------------------------------------------

    def reserve_payout(
        self, conn: Connection, payout_request_id: int, mentor_id: str, amount: Money
    ) -> Posting:
        """available -> reserved, refused unless available covers it (atomic, race-free)."""
        if not amount.is_positive():
            raise InvalidAmountError(
                "a payout must be positive", amount=amount.amount, currency=amount.currency
            )
        now = self._clock()
        # The WHERE clause is the check: concurrent requests cannot both pass it, because
        # PostgreSQL re-evaluates it on the locked row and SQLite serializes writers.
        result = conn.execute(
            update(_balances)
            .where(
                and_(
                    _balances.c.mentor_id == mentor_id,
                    _balances.c.currency == amount.currency,
                    _balances.c.available >= amount.amount,
                )
            )
            .values(
                available=_balances.c.available - amount.amount,
                reserved=_balances.c.reserved + amount.amount,
                updated_at=now,
            )
        )
        if result.rowcount != 1:
            current = self._balance_row(conn, mentor_id, amount.currency)
            available = current.available if current is not None else Money.zero(amount.currency)
            raise InsufficientBalanceError(
                f"requested {amount} but only {available} is available",
                mentor_id=mentor_id,
                requested=amount.amount,
                available=available.amount,
                currency=amount.currency,
            )
        return self.post(
            conn,
            business_key=f"payout:{payout_request_id}:reserve",
            kind="payout_reserve",
            currency=amount.currency,
            mentor_id=mentor_id,
            payout_request_id=payout_request_id,
            legs=[(AVAILABLE, mentor_id, -amount.amount), (RESERVED, mentor_id, amount.amount)],
            apply_balances=False,
        )

    def settle_payout(
        self,
        conn: Connection,
        payout_request_id: int,
        mentor_id: str,
        amount: Money,
        *,
        outcome: Literal["paid", "returned", "reversed"],
    ) -> Posting:
        """paid: reserved -> withdrawn; returned (failed/cancelled): reserved -> available;
        reversed (a paid transfer came back): withdrawn -> available."""
        source, target = {
            "paid": (RESERVED, WITHDRAWN),
            "returned": (RESERVED, AVAILABLE),
            "reversed": (WITHDRAWN, AVAILABLE),
        }[outcome]
        return self.post(
            conn,
            business_key=f"payout:{payout_request_id}:{outcome}",
            kind=f"payout_{outcome}",
            currency=amount.currency,
            mentor_id=mentor_id,
            payout_request_id=payout_request_id,
            legs=[(source, mentor_id, -amount.amount), (target, mentor_id, amount.amount)],
        )

    # -- queries ------------------------------------------------------------------------------

    def _balance_row(self, conn: Connection, mentor_id: str, currency: str) -> BalanceView | None:
        row = conn.execute(_SELECT_BALANCE, {"mentor_id": mentor_id, "currency": currency}).first()
        if row is None:
            return None
        return self._view(row)

    @staticmethod
    def _view(row: Row[Any]) -> BalanceView:
        m = row._mapping
        cur = m["currency"]
        return BalanceView(
            mentor_id=m["mentor_id"],
            currency=cur,
            **{col: Money(m[col], cur) for col in BALANCE_ACCOUNTS.values()},
        )

    def balance(self, mentor_id: str, currency: str) -> BalanceView:
        """The mentor's balance in one currency: one primary-key read, zero if never credited."""
        cur = normalize_currency(currency)
        with read_connection(self._engine) as conn:
            view = self._balance_row(conn, mentor_id, cur)
        if view is not None:
            return view
        zero = Money.zero(cur)
        return BalanceView(mentor_id, cur, zero, zero, zero, zero, zero)

    def balances(self, mentor_id: str) -> list[BalanceView]:
        """The mentor's balances in every currency they have earned in."""
        with read_connection(self._engine) as conn:
            rows = conn.execute(
                select(_balances)
                .where(_balances.c.mentor_id == mentor_id)
                .order_by(_balances.c.currency)
            ).all()
        return [self._view(r) for r in rows]

    def history(
        self,
        user_id: str,
        role: Literal["mentor", "mentee"] = "mentor",
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[PaymentRecord]:
        """Payments a mentor earned from, or a mentee paid, newest first (keyset pagination)."""
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
        with read_connection(self._engine) as conn:
            rows = conn.execute(query).all()
        items = [_record(r) for r in rows[:limit]]
        next_cursor = str(items[-1].id) if len(rows) > limit else None
        return Page(items, next_cursor)

    def payment(self, payment_intent_id: str) -> PaymentRecord:
        """One recorded payment, or PaymentNotFoundError."""
        with read_connection(self._engine) as conn:
            row = conn.execute(
                select(_payments).where(_payments.c.payment_intent_id == payment_intent_id)
            ).first()
        if row is None:
            raise PaymentNotFoundError(
                f"no payment recorded for {payment_intent_id}", payment_intent_id=payment_intent_id
            )
        return _record(row)

    def platform_commission(self, currency: str) -> Money:
        """The platform's net commission in one currency (summed: the account is hot)."""
        cur = normalize_currency(currency)
        with read_connection(self._engine) as conn:
            total = conn.execute(
                select(func.coalesce(func.sum(_entries.c.amount), 0)).where(
                    and_(_entries.c.account == COMMISSION, _entries.c.currency == cur)
                )
            ).scalar_one()
        return Money(int(total), cur)

    def verify(self) -> VerifyReport:
        """Recompute every balance from the journal and check every transaction balances.

        Runs on one snapshot, so it can be run beside live traffic without false alarms.
        """
        problems: list[str] = []
        with read_connection(self._engine, snapshot=True) as conn:
            unbalanced = conn.execute(
                select(_entries.c.transaction_id, _entries.c.currency, func.sum(_entries.c.amount))
                .group_by(_entries.c.transaction_id, _entries.c.currency)
                .having(func.sum(_entries.c.amount) != 0)
            ).all()
            for txn_id, cur, total in unbalanced:
                problems.append(f"transaction {txn_id} does not balance in {cur}: {total}")
            sums: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for mentor, cur, account, total in conn.execute(
                select(
                    _entries.c.mentor_id,
                    _entries.c.currency,
                    _entries.c.account,
                    func.sum(_entries.c.amount),
                )
                .where(_entries.c.mentor_id.is_not(None))
                .group_by(_entries.c.mentor_id, _entries.c.currency, _entries.c.account)
            ):
                column = BALANCE_ACCOUNTS.get(account)
                if column is None:
                    problems.append(f"entry for mentor {mentor} on platform account {account}")
                    continue
                sums[(mentor, cur)][column] += int(total)
            rows = conn.execute(select(_balances)).all()
            seen: set[tuple[str, str]] = set()
            for row in rows:
                m = row._mapping
                key = (m["mentor_id"], m["currency"])
                seen.add(key)
                for column in BALANCE_ACCOUNTS.values():
                    expected = sums.get(key, {}).get(column, 0)
                    if m[column] != expected:
                        problems.append(
                            f"mentor {key[0]} {key[1]} {column}: stored {m[column]}, "
                            f"entries say {expected}"
                        )
            for key, cols in sums.items():
                if key not in seen and any(cols.values()):
                    problems.append(f"mentor {key[0]} {key[1]} has entries but no balance row")
            for account, column in ((COMMISSION, "fee"), (CLEARING, "clearing")):
                self._check_against_payments(conn, account, column, problems)
            transactions = conn.execute(select(func.count()).select_from(_transactions)).scalar()
        return VerifyReport(not problems, problems, int(transactions or 0), len(rows))

    @staticmethod
    def _check_against_payments(
        conn: Connection, account: str, kind: str, problems: list[str]
    ) -> None:
        """Platform accounts must equal what the payments table says they should be."""
        journal: dict[str, Any] = dict(
            conn.execute(
                select(_entries.c.currency, func.sum(_entries.c.amount))
                .where(_entries.c.account == account)
                .group_by(_entries.c.currency)
            ).all()
        )
        expr: Any
        if kind == "fee":
            expr = func.sum(_payments.c.platform_fee - _payments.c.fee_reversed)
        else:
            expr = -func.sum(_payments.c.amount - _payments.c.amount_reversed)
        expected: dict[str, Any] = dict(
            conn.execute(select(_payments.c.currency, expr).group_by(_payments.c.currency)).all()
        )
        for cur in set(journal) | set(expected):
            got, want = int(journal.get(cur) or 0), int(expected.get(cur) or 0)
            if got != want:
                problems.append(f"{account} {cur}: journal {got}, payments table {want}")
