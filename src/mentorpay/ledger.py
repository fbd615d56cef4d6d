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
``platform_suspense``  money received that no mentor may be credited with yet: a payment
                       that disagreed with its booking, parked until an operator resolves it
=====================  =========================================================

Fund flow: payment -> pending -> (release) available -> (payout request) reserved -> (paid)
withdrawn; a failed or cancelled payout returns reserved -> available. Refunds and lost
disputes take the mentor's share of that payment from where it sits: pending while the payment
is unreleased, available once released; when that free share is not enough because open
disputes hold part of it (a refund during an inquiry), the rest comes out of those holds, so a
hold never outlives the money it froze.

Disputes: each dispute id holds its own share (``mentorpay_disputes``) and settles only that:
won (or an inquiry closed) gives exactly its current hold back, lost reverses exactly its
amount. Per payment the invariant is ``free share + held == payout - payout_reversed``, which is
what makes the final balances independent of the order events arrive in.

Refunds, and refunds that fail. Stripe does not document whether ``charge.amount_refunded``
drops when a refund fails later, so the ledger assumes it does not and counts both facts
separately on the payment: ``amount_refunded`` is the highest cumulative ``amount_refunded`` any
``charge.refunded`` reported (monotone, so late and duplicate events change nothing) and
``refund_failed`` the sum of the refunds reported ``failed`` or ``canceled`` (each refund id once,
under the business key ``refund_failed:{refund_id}``). The refunds the ledger counts are::

    effective = clamp(amount_refunded - refund_failed, 0, amount - lost_dispute_reversals)

stored as ``refund_applied``; ``amount_reversed`` is ``refund_applied`` plus the lost disputes.
Every refund event moves the ledger from the old effective total to the new one with cumulative
targets (the mentor's share reversed after total reversals R is ``P * R / G`` rounded once, see
:func:`~mentorpay.commission.split_refund`), so any order of ``charge.refunded`` and refund
failures, with any duplicates, ends in the same balances. A failure puts the mentor's share back
where a refund takes it from: pending while the payment is unreleased, available after. A
failure that arrives before its ``charge.refunded`` posts nothing and is remembered. Should
Stripe ever lower ``amount_refunded`` after a failure, the lower value is ignored (reconciliation
then reports the ledger above Stripe) and a later refund is counted only above the previous
high-water mark: an under-count, never a double reversal.

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
    time_binder,
)
from mentorpay.errors import (
    ConflictError,
    CurrencyMismatchError,
    InsufficientBalanceError,
    InvalidAmountError,
    InvalidRequestError,
    PaymentNotFoundError,
)
from mentorpay.models import balances_table as _balances
from mentorpay.models import disputes_table as _disputes
from mentorpay.models import entries_table as _entries
from mentorpay.models import payments_table as _payments
from mentorpay.models import transactions_table as _transactions
from mentorpay.money import Money, normalize_currency

__all__ = [
    "BALANCE_ACCOUNTS",
    "UNPAID_PAYMENT_STATUSES",
    "BalanceView",
    "LedgerService",
    "Page",
    "PaymentOutcome",
    "PaymentRecord",
    "Posting",
    "RefundChange",
    "VerifyReport",
    "payment_status",
    "refund_change",
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
SUSPENSE = "platform_suspense"

#: Mentor account -> column of the materialized balance row.
BALANCE_ACCOUNTS: dict[str, str] = {
    PENDING: "pending",
    AVAILABLE: "available",
    HELD: "held",
    RESERVED: "reserved",
    WITHDRAWN: "withdrawn",
}


#: Payment statuses that leave the booking unpaid, so paying it again is not a double payment:
#: refunded ones gave the money back, reviewed ones credited nobody. Anything else (succeeded,
#: partially refunded, disputed, dispute lost) means the booking is paid.
UNPAID_PAYMENT_STATUSES: tuple[str, ...] = ("failed", "refunded", "needs_review")

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
    "review_reason",
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
    #: Why the payment sits on the suspense account (``needs_review``), else None.
    review_reason: str | None = None

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
        review_reason=m["review_reason"],
        rounding=m["rounding"],
    )


def payment_status(
    *, amount: int, reversed_total: int, refunded: int, disputed: int, in_review: bool = False
) -> str:
    """A payment's label, derived from its amounts so the order events arrived in never matters.

    ``needs_review`` while its money sits on the suspense account (``refunded`` once all of it
    went back). ``refunded`` is the refund total the ledger counts (``refund_applied``: refunds
    net of failed ones), ``reversed_total`` that plus lost disputes. ``disputed`` while a
    dispute is open; ``dispute_lost`` once a lost dispute took money back (more was reversed
    than refunded); else ``refunded``, ``partially_refunded`` or ``succeeded`` by how much was
    reversed.
    """
    if in_review:
        return "refunded" if reversed_total >= amount else "needs_review"
    if disputed > 0:
        return "disputed"
    if reversed_total > refunded:
        return "dispute_lost"
    if reversed_total == 0:
        return "succeeded"
    return "refunded" if reversed_total >= amount else "partially_refunded"


@dataclass(frozen=True, slots=True)
class RefundChange:
    """What moving a payment to a new refund state posts: ``delta`` leaves clearing (negative:
    comes back), ``fee`` is taken from the commission and ``payout`` from the mentor's share
    (negative: given back). ``values`` are the payment row's new columns."""

    delta: int
    fee: int
    payout: int
    values: dict[str, Any]


def refund_change(m: Any, *, amount_refunded: int, refund_failed: int) -> RefundChange:
    """The pure posting rule for refunds and failed refunds (see the module docstring).

    ``m`` is the payment row's mapping; the new state is Stripe's high-water ``amount_refunded``
    and the failed refunds seen. Cumulative targets make every path to one state post the same
    totals, and a negative difference undoes exactly what a refund took.
    """
    amount, reversed_before = m["amount"], m["amount_reversed"]
    lost = reversed_before - m["refund_applied"]
    effective = min(max(amount_refunded - refund_failed, 0), amount - lost)
    delta = effective - m["refund_applied"]
    reversed_after = reversed_before + delta
    cur = m["currency"]
    split = Split(
        Money(amount, cur),
        Money(m["platform_fee"], cur),
        Money(m["mentor_payout"], cur),
        m["rate_bps"],
        m["rounding"],
    )
    zero = Money(0, cur)

    def target(total: int) -> int:
        return split_refund(split, zero, Money(total, cur)).mentor_payout.amount

    payout = target(reversed_after) - target(reversed_before)
    fee = delta - payout
    values = {
        "amount_refunded": amount_refunded,
        "refund_failed": refund_failed,
        "refund_applied": effective,
        "amount_reversed": reversed_after,
        "fee_reversed": m["fee_reversed"] + fee,
        "payout_reversed": m["payout_reversed"] + payout,
        "status": payment_status(
            amount=amount,
            reversed_total=reversed_after,
            refunded=effective,
            disputed=m["amount_disputed"],
            in_review=m["review_reason"] is not None,
        ),
    }
    return RefundChange(delta, fee, payout, values)


def _same_currency(m: Any, money: Money, what: str) -> None:
    """A refund in another currency than its payment can never apply: a permanent error."""
    if money.currency != m["currency"]:
        raise CurrencyMismatchError(
            f"{what} of {m['payment_intent_id']} is in {money.currency}, the payment in "
            f"{m['currency']}",
            payment_currency=m["currency"],
            refund_currency=money.currency,
            currency=m["currency"],
            other_currency=money.currency,
        )


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
    def _share_account(m: Any) -> str:
        """Where a payment's free mentor share sits: withdrawn (destination charge), pending
        (unreleased) or available (released)."""
        if m["destination"] is not None:
            return WITHDRAWN
        return PENDING if m["released_at"] is None else AVAILABLE

    @staticmethod
    def _platform_account(m: Any) -> str:
        """The platform's side of a payment: its commission, or suspense while under review."""
        return SUSPENSE if m["review_reason"] is not None else COMMISSION

    def _take_back(self, conn: Connection, m: Any, amount: int) -> tuple[list[Leg], int]:
        """Legs taking ``amount`` of one payment's mentor share back (refund, lost dispute).

        The free share goes first; what it cannot cover comes out of that payment's open dispute
        holds (a refund during an inquiry consumes the money the inquiry froze), shrinking them
        in dispute-id order; anything beyond (inconsistent data only) overdraws available.
        Returns the legs and how much came out of holds (the caller lowers ``payout_held``).
        ``m`` is the payment row's mapping (or its state with a closing dispute's hold removed).
        """
        mentor = m["mentor_id"]
        if amount <= 0:
            return [], 0
        free = max(0, m["mentor_payout"] - m["payout_reversed"] - m["payout_held"])
        from_free = min(free, amount)
        from_held = min(amount - from_free, m["payout_held"])
        overflow = amount - from_free - from_held
        legs: list[Leg] = []
        if from_free:
            legs.append((self._share_account(m), mentor, -from_free))
        if from_held:
            legs.append((HELD, mentor, -from_held))
            self._shrink_holds(conn, m["payment_intent_id"], from_held)
        if overflow:
            legs.append((AVAILABLE, mentor, -overflow))
        return legs, from_held

    def _shrink_holds(self, conn: Connection, payment_intent_id: str, amount: int) -> None:
        rows = conn.execute(
            select(_disputes.c.id, _disputes.c.held)
            .where(
                _disputes.c.payment_intent_id == payment_intent_id,
                _disputes.c.status == "open",
                _disputes.c.held > 0,
            )
            .order_by(_disputes.c.id)
        ).all()
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
        review_reason: str | None = None,
        conn: Connection | None = None,
    ) -> PaymentOutcome:
        """Record a succeeded payment and credit the mentor's pending balance, exactly once.

        ``review_reason``: the payment disagreed with its booking. Its money goes to the
        platform's suspense account and no mentor is credited (stored as a split with the whole
        gross on the platform's side, so refunds and disputes of it reverse suspense) until
        :meth:`credit_review` or a refund settles it.

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
        if review_reason is not None:
            split = Split(gross, gross, Money.zero(gross.currency), 10_000, split.rounding)
            destination = None
        elif platform_fee is not None and platform_fee != split.platform_fee:
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
                "status": "succeeded" if review_reason is None else "needs_review",
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
                "review_reason": review_reason,
                "release_due_at": None if destination or review_reason else release_due_at,
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
            if sql.record_payment_cte is not None and destination is None and not review_reason:
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
                            (COMMISSION if review_reason is None else SUSPENSE, None, fee),
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
                status=str(values["status"]),
                gross=gross,
                platform_fee=split.platform_fee,
                mentor_payout=split.mentor_payout,
                refunded=Money.zero(gross.currency),
                rate_bps=split.rate_bps,
                created_at=now,
                released_at=now if destination else None,
                review_reason=review_reason,
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

    def release_due(
        self,
        now: datetime | None = None,
        *,
        batch: int = 500,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> list[Posting]:
        """Release every payment whose hold period has elapsed, one transaction per payment.

        ``progress(done, total, "releasing")`` is called after each payment (the total is
        counted once at the start, only when ``progress`` is given)."""
        cutoff = now or self._clock()
        if cutoff.tzinfo is None:
            raise InvalidRequestError("release_due needs an aware datetime (tzinfo=UTC)")
        due = and_(
            _payments.c.released_at.is_(None),
            _payments.c.release_due_at.is_not(None),
            _payments.c.release_due_at <= cutoff,
        )
        total = done = 0
        if progress is not None:
            with read_connection(self._engine) as c:
                total = c.execute(
                    select(func.count()).select_from(_payments).where(due)
                ).scalar_one()
        released: list[Posting] = []
        last_id = 0
        while True:
            with read_connection(self._engine) as c:
                rows = c.execute(
                    select(_payments.c.id, _payments.c.payment_intent_id)
                    .where(and_(due, _payments.c.id > last_id))
                    .order_by(_payments.c.id)
                    .limit(batch)
                ).all()
            if not rows:
                return released
            for row in rows:
                posting = self.release_payment(row.payment_intent_id)
                if posting.created:
                    released.append(posting)
                if progress is not None:
                    done += 1
                    progress(done, max(total, done), "releasing")
            last_id = rows[-1].id

    # -- payments parked for review ------------------------------------------------------------

    def credit_review(
        self,
        payment_intent_id: str,
        *,
        booking_id: str,
        mentor_id: str,
        mentee_id: str,
        policy: CommissionPolicy,
        release_due_at: datetime | None = None,
        conn: Connection | None = None,
    ) -> Posting:
        """An operator accepts a reviewed payment for a booking: suspense -> fee + mentor share.

        What was actually paid is split under ``policy`` (minus anything already refunded, by
        the same cumulative targets a refund uses). Refused while a dispute is open.
        """

        def do(c: Connection) -> Posting:
            row = self._payment_row(c, payment_intent_id)
            m = row._mapping
            key = f"review:{payment_intent_id}:credit"
            if m["review_reason"] is None:
                return Posting(key, created=False)
            if m["amount_disputed"] > 0:
                raise ConflictError(
                    f"payment {payment_intent_id} has an open dispute; resolve it after the "
                    "dispute closes",
                    payment_intent_id=payment_intent_id,
                )
            cur = m["currency"]
            gross = Money(m["amount"], cur)
            remaining = m["amount"] - m["amount_reversed"]
            if remaining <= 0:
                raise ConflictError(
                    f"payment {payment_intent_id} was refunded in full; nothing to credit",
                    payment_intent_id=payment_intent_id,
                )
            split = policy.split(gross)
            reversed_part = split_refund(split, Money.zero(cur), Money(m["amount_reversed"], cur))
            fee = split.platform_fee.amount - reversed_part.platform_fee.amount
            payout = split.mentor_payout.amount - reversed_part.mentor_payout.amount
            now = self._clock()
            c.execute(
                update(_payments)
                .where(_payments.c.id == m["id"])
                .values(
                    booking_id=booking_id,
                    mentor_id=mentor_id,
                    mentee_id=mentee_id,
                    platform_fee=split.platform_fee.amount,
                    mentor_payout=split.mentor_payout.amount,
                    rate_bps=split.rate_bps,
                    rounding=split.rounding,
                    fee_reversed=reversed_part.platform_fee.amount,
                    payout_reversed=reversed_part.mentor_payout.amount,
                    review_reason=None,
                    status=payment_status(
                        amount=m["amount"],
                        reversed_total=m["amount_reversed"],
                        refunded=m["refund_applied"],
                        disputed=0,
                    ),
                    release_due_at=release_due_at,
                    updated_at=now,
                )
            )
            posting = self.post(
                c,
                business_key=key,
                kind="review_credit",
                currency=cur,
                mentor_id=mentor_id,
                payment_intent_id=payment_intent_id,
                legs=[
                    (SUSPENSE, None, -remaining),
                    (COMMISSION, None, fee),
                    (PENDING, mentor_id, payout),
                ],
            )
            return Posting(key, posting.created, posting.transaction_id, Money(payout, cur))

        return self._run(conn, do)

    def refund_review(self, payment_intent_id: str, *, conn: Connection | None = None) -> Posting:
        """Stripe accepted the refund of a whole reviewed payment: suspense -> back to the payer.

        Recorded as Stripe's cumulative ``amount_refunded`` reaching the amount, so the
        ``charge.refunded`` webhook that follows changes nothing more.
        """

        def do(c: Connection) -> Posting:
            row = self._payment_row(c, payment_intent_id)
            m = row._mapping
            key = f"refund:{payment_intent_id}:{m['amount']}"
            if m["review_reason"] is None:
                raise ConflictError(
                    f"payment {payment_intent_id} is not under review",
                    payment_intent_id=payment_intent_id,
                )
            return (
                self.apply_refund_total(
                    payment_intent_id, Money(m["amount"], m["currency"]), conn=c
                )
                if m["amount_refunded"] < m["amount"]
                else Posting(key, created=False)
            )

        return self._run(conn, do)

    def review_queue(self, limit: int = 100) -> list[PaymentRecord]:
        """Payments whose money still sits on the suspense account, oldest first."""
        if not 1 <= limit <= 10_000:
            raise InvalidRequestError("limit must be between 1 and 10000", limit=limit)
        with read_connection(self._engine) as conn:
            rows = conn.execute(
                select(_payments)
                .where(_payments.c.status == "needs_review")
                .order_by(_payments.c.id)
                .limit(limit)
            ).all()
        return [_record(r) for r in rows]

    def suspense(self, currency: str) -> Money:
        """Money received that no mentor has been credited with yet, in one currency."""
        return self._platform_total(SUSPENSE, currency)

    # -- refunds and disputes ---------------------------------------------------------------

    def apply_refund_total(
        self,
        payment_intent_id: str,
        amount_refunded: Money,
        *,
        conn: Connection | None = None,
    ) -> Posting:
        """Bring the ledger up to Stripe's cumulative ``amount_refunded`` for the charge.

        Only a new high of ``amount_refunded`` changes anything; the ledger then moves to the new
        effective refund total (see the module docstring), under a key naming the cumulative
        state, so duplicates and older events arriving late change nothing. Raises
        :class:`CurrencyMismatchError` (permanent) for another currency than the payment's.
        """

        def do(c: Connection) -> Posting:
            row = self._payment_row(c, payment_intent_id)
            m = row._mapping
            _same_currency(m, amount_refunded, "refund")
            key = f"refund:{payment_intent_id}:{amount_refunded.amount}"
            if amount_refunded.amount <= m["amount_refunded"]:
                return Posting(key, created=False)
            change = refund_change(
                m, amount_refunded=amount_refunded.amount, refund_failed=m["refund_failed"]
            )
            if change.values["refund_applied"] < amount_refunded.amount - m["refund_failed"]:
                # Stripe never refunds more than was charged net of a lost dispute; if it says
                # so anyway, reverse what is left rather than fail the event forever.
                logger.warning(
                    "refunds of %s exceed what remains on %s; counting %s",
                    amount_refunded,
                    payment_intent_id,
                    change.values["refund_applied"],
                )
            posting = Posting(key, created=False)
            from_held = 0
            if change.delta != 0:
                legs, from_held = self._refund_legs(c, row, change)
                posting = self.post(
                    c,
                    business_key=key,
                    kind="refund",
                    currency=m["currency"],
                    mentor_id=m["mentor_id"] or None,
                    payment_intent_id=payment_intent_id,
                    legs=legs,
                )
            self._store_refund_change(c, m, change, from_held)
            return Posting(
                key, posting.created, posting.transaction_id, Money(change.delta, m["currency"])
            )

        return self._run(conn, do)

    def apply_refund_failure(
        self,
        payment_intent_id: str,
        refund_id: str,
        amount: Money,
        *,
        conn: Connection | None = None,
    ) -> Posting:
        """A refund failed or was canceled at Stripe: undo its ledger effect, exactly once.

        The failure is counted once per ``refund_id`` (business key ``refund_failed:{id}``,
        written even when nothing moves, so it is remembered). It takes the effective refund
        total down (see the module docstring): the payer's money comes back to clearing, the
        commission back to the platform, the mentor's share back to pending (unreleased) or
        available (released). The returned posting's ``amount`` is what was un-refunded; 0 when
        the failure overtook its ``charge.refunded``. Raises :class:`CurrencyMismatchError`
        (permanent) for another currency than the payment's.
        """
        if not amount.is_positive():
            raise InvalidAmountError(
                "a failed refund must be positive", amount=amount.amount, currency=amount.currency
            )

        def do(c: Connection) -> Posting:
            row = self._payment_row(c, payment_intent_id)
            m = row._mapping
            _same_currency(m, amount, "failed refund")
            key = f"refund_failed:{refund_id}"
            change = refund_change(
                m,
                amount_refunded=m["amount_refunded"],
                refund_failed=m["refund_failed"] + amount.amount,
            )
            # A failure only gives money back (payout <= 0): no dispute hold is touched.
            legs, from_held = self._refund_legs(c, row, change)
            posting = self.post(
                c,
                business_key=key,
                kind="refund_failed",
                currency=m["currency"],
                mentor_id=m["mentor_id"] or None,
                payment_intent_id=payment_intent_id,
                legs=legs,
            )
            if not posting.created:
                return Posting(key, created=False)
            self._store_refund_change(c, m, change, from_held)
            return Posting(key, True, posting.transaction_id, Money(-change.delta, m["currency"]))

        return self._run(conn, do)

    def _refund_legs(
        self, c: Connection, row: Row[Any], change: RefundChange
    ) -> tuple[list[Leg], int]:
        """Money leaves (or comes back through) clearing; fee and share follow the targets.

        A share taken back may come out of open dispute holds (see :meth:`_take_back`); the
        second value is how much, for :meth:`_store_refund_change` to lower ``payout_held``.
        """
        m = row._mapping
        from_held = 0
        if change.payout >= 0:
            share, from_held = self._take_back(c, m, change.payout)
        else:
            share = self._free_legs(row, -change.payout, +1)
        platform = self._platform_account(m)
        return [(CLEARING, None, change.delta), (platform, None, -change.fee), *share], from_held

    def _store_refund_change(
        self, c: Connection, m: Any, change: RefundChange, from_held: int = 0
    ) -> None:
        c.execute(
            update(_payments)
            .where(_payments.c.id == m["id"])
            .values(
                **change.values,
                payout_held=m["payout_held"] - from_held,
                updated_at=self._clock(),
            )
        )

    def open_dispute(
        self,
        payment_intent_id: str,
        dispute_id: str,
        amount: Money,
        *,
        conn: Connection | None = None,
    ) -> Posting:
        """Freeze this dispute's share of the mentor's money (free share -> held), once.

        Each dispute id holds its own share: the payout target of the disputed amount on top of
        what is already reversed or held by other disputes, never more than is still free.
        """

        def do(c: Connection) -> Posting:
            row = self._payment_row(c, payment_intent_id)
            m = row._mapping
            key = f"dispute:{dispute_id}:opened"
            if amount.currency != m["currency"]:
                raise CurrencyMismatchError(
                    "dispute currency differs from the payment's",
                    payment_currency=m["currency"],
                    dispute_currency=amount.currency,
                )
            if c.execute(select(_disputes.c.id).where(_disputes.c.id == dispute_id)).first():
                return Posting(key, created=False)
            gross = m["amount"]
            # Clamped by what is still unreversed only: whether another dispute is open at this
            # moment must not change what this one covers (the order events arrive in).
            disputed = max(0, min(amount.amount, gross - m["amount_reversed"]))
            original = self._original_split(m)
            cur = m["currency"]
            zero = Money.zero(cur)

            def target(total: int) -> int:
                capped = Money(min(gross, total), cur)
                return split_refund(original, zero, capped).mentor_payout.amount

            covered = m["amount_reversed"] + m["amount_disputed"]
            free = max(0, m["mentor_payout"] - m["payout_reversed"] - m["payout_held"])
            hold = min(target(covered + disputed) - target(covered), free)
            now = self._clock()
            c.execute(
                _disputes.insert().values(
                    id=dispute_id,
                    payment_intent_id=payment_intent_id,
                    currency=cur,
                    amount=disputed,
                    held=hold,
                    status="open",
                    created_at=now,
                    updated_at=now,
                )
            )
            if disputed == 0:
                # Nothing left to dispute (refunded in full): tracked, but nothing moves.
                return Posting(key, created=False)
            mentor = m["mentor_id"]
            legs: list[Leg] = []
            if hold:
                legs = [(self._share_account(m), mentor, -hold), (HELD, mentor, hold)]
            posting = self.post(
                c,
                business_key=key,
                kind="dispute_opened",
                currency=cur,
                mentor_id=mentor or None,
                payment_intent_id=payment_intent_id,
                legs=legs,
            )
            disputed_total = m["amount_disputed"] + disputed
            c.execute(
                update(_payments)
                .where(_payments.c.id == m["id"])
                .values(
                    payout_held=m["payout_held"] + hold,
                    amount_disputed=disputed_total,
                    status=payment_status(
                        amount=m["amount"],
                        reversed_total=m["amount_reversed"],
                        refunded=m["refund_applied"],
                        disputed=disputed_total,
                        in_review=m["review_reason"] is not None,
                    ),
                    updated_at=now,
                )
            )
            return Posting(key, posting.created, posting.transaction_id, Money(hold, cur))

        return self._run(conn, do)

    def close_dispute(
        self,
        payment_intent_id: str,
        dispute_id: str,
        *,
        won: bool,
        conn: Connection | None = None,
    ) -> Posting:
        """Settle one dispute: won gives its hold back; lost reverses its amount like a refund.

        Only this dispute's own hold and amount move; other open disputes keep theirs.
        """

        def do(c: Connection) -> Posting:
            row = self._payment_row(c, payment_intent_id)
            m = row._mapping
            key = f"dispute:{dispute_id}:{'won' if won else 'lost'}"
            dispute = c.execute(
                select(_disputes).where(_disputes.c.id == dispute_id).with_for_update()
            ).first()
            if dispute is None or dispute.status != "open":
                return Posting(key, created=False)
            now = self._clock()
            # Closed first, so taking back a shortfall below never shrinks its own hold.
            c.execute(
                update(_disputes)
                .where(_disputes.c.id == dispute_id)
                .values(status="won" if won else "lost", updated_at=now)
            )
            held, disputed = dispute.held, dispute.amount
            mentor, cur = m["mentor_id"], m["currency"]
            disputed_left = m["amount_disputed"] - disputed
            values: dict[str, Any] = {
                "payout_held": m["payout_held"] - held,
                "amount_disputed": disputed_left,
            }
            if won:
                legs: list[Leg] = [(HELD, mentor, -held), *self._free_legs(row, held, +1)]
                reversed_total = m["amount_reversed"]
            else:
                applied = max(0, min(disputed, m["amount"] - m["amount_reversed"]))
                part = split_refund(
                    self._original_split(m),
                    Money(m["amount_reversed"], cur),
                    Money(applied, cur),
                )
                fee, payout = part.platform_fee.amount, part.mentor_payout.amount
                legs = [(HELD, mentor, -held)] if held else []
                # The hold was fixed when the dispute opened; refunds since (or rounding of the
                # cumulative targets) can leave it above or below this dispute's exact payout
                # share, and the difference is settled against the payment's free share.
                diff = held - payout
                if diff > 0:
                    legs += self._free_legs(row, diff, +1)
                elif diff < 0:
                    # The free share first, then other disputes' holds (when overlapping
                    # disputes cover more than was charged), as a refund would.
                    # This dispute's hold leaves with the reversal: it counts as reversed, not
                    # as free, and the other disputes' holds stay available to draw on.
                    consumed = {
                        **m,
                        "payout_reversed": m["payout_reversed"] + held,
                        "payout_held": m["payout_held"] - held,
                    }
                    more, from_other_holds = self._take_back(c, consumed, -diff)
                    legs += more
                    values["payout_held"] -= from_other_holds
                legs += [(CLEARING, None, applied), (self._platform_account(m), None, -fee)]
                reversed_total = m["amount_reversed"] + applied
                values.update(
                    amount_reversed=reversed_total,
                    fee_reversed=m["fee_reversed"] + fee,
                    payout_reversed=m["payout_reversed"] + payout,
                )
            values["status"] = payment_status(
                amount=m["amount"],
                reversed_total=reversed_total,
                refunded=m["refund_applied"],
                disputed=disputed_left,
                in_review=m["review_reason"] is not None,
            )
            posting = self.post(
                c,
                business_key=key,
                kind="dispute_won" if won else "dispute_lost",
                currency=cur,
                mentor_id=mentor or None,
                payment_intent_id=payment_intent_id,
                legs=legs,
            )
            values["updated_at"] = now
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
        return self._platform_total(COMMISSION, currency)

    def _platform_total(self, account: str, currency: str) -> Money:
        """A platform account's balance in one currency, summed from the journal."""
        cur = normalize_currency(currency)
        with read_connection(self._engine) as conn:
            total = conn.execute(
                select(func.coalesce(func.sum(_entries.c.amount), 0)).where(
                    and_(_entries.c.account == account, _entries.c.currency == cur)
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
            for account, column in (
                (COMMISSION, "fee"),
                (SUSPENSE, "suspense"),
                (CLEARING, "clearing"),
            ):
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
        query: Any
        if kind == "clearing":
            expr = -func.sum(_payments.c.amount - _payments.c.amount_reversed)
            query = select(_payments.c.currency, expr)
        else:
            # A reviewed payment's whole gross is stored as its "fee": it sits on suspense.
            expr = func.sum(_payments.c.platform_fee - _payments.c.fee_reversed)
            in_review = _payments.c.review_reason.is_not(None)
            query = select(_payments.c.currency, expr).where(
                in_review if kind == "suspense" else _payments.c.review_reason.is_(None)
            )
        expected: dict[str, Any] = dict(conn.execute(query.group_by(_payments.c.currency)).all())
        for cur in set(journal) | set(expected):
            got, want = int(journal.get(cur) or 0), int(expected.get(cur) or 0)
            if got != want:
                problems.append(f"{account} {cur}: journal {got}, payments table {want}")
