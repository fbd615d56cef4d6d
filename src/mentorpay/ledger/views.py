"""The ledger's read models: what postings and queries return (frozen, JSON-ready)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import Row

from mentorpay.commission import Rounding, Split
from mentorpay.ledger.rules import BALANCE_ACCOUNTS
from mentorpay.money import Money

T = TypeVar("T")


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
    """Result of recomputing every balance from the journal.

    ``incremental``: the pass started from a checkpoint and read only the ``entries_read``
    entries after it (a full pass reads them all)."""

    ok: bool
    problems: list[str]
    transactions: int
    balances: int
    incremental: bool = False
    entries_read: int = 0


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


def payment_record(r: Any) -> PaymentRecord:
    """From a payments row or a :class:`~mentorpay.ledger.rules.PaymentState` (same names)."""
    cur = r.currency
    return PaymentRecord(
        id=r.id,
        payment_intent_id=r.payment_intent_id,
        booking_id=r.booking_id,
        mentor_id=r.mentor_id,
        mentee_id=r.mentee_id,
        status=r.status,
        gross=Money(r.amount, cur),
        platform_fee=Money(r.platform_fee, cur),
        mentor_payout=Money(r.mentor_payout, cur),
        refunded=Money(r.amount_reversed, cur),
        rate_bps=r.rate_bps,
        created_at=r.created_at,
        released_at=r.released_at,
        review_reason=r.review_reason,
        rounding=r.rounding,
    )


def balance_view(row: Row[Any]) -> BalanceView:
    """From a materialized balance row."""
    m = row._mapping
    cur = m["currency"]
    return BalanceView(
        mentor_id=m["mentor_id"],
        currency=cur,
        **{col: Money(m[col], cur) for col in BALANCE_ACCOUNTS.values()},
    )
