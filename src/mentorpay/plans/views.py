"""What the plans service returns: purchases with their periods and credits, and the credit a
booking was paid with. Frozen values built from rows; money as :class:`Money`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from mentorpay.money import Money
from mentorpay.plans.rules import credits_left

__all__ = ["CreditView", "PlanPeriodView", "PlanPurchaseView", "period_view", "purchase_view"]


@dataclass(frozen=True, slots=True)
class PlanPeriodView:
    """One paid period of a subscription, or a package's payment, and its credits."""

    id: int
    invoice_id: str | None
    payment_intent_id: str | None
    plan_id: str | None
    amount: Money
    status: str
    credits: int
    used: int
    #: Credits still usable: not used, not removed by a refund, not lapsed.
    left: int
    period_start: datetime | None
    period_end: datetime | None
    expires_at: datetime | None
    #: The mentor's share of this period (0 while unpaid or under review).
    mentor_payout: Money


@dataclass(frozen=True, slots=True)
class PlanPurchaseView:
    """A mentee's subscription or package: its terms, status and periods."""

    id: str
    kind: str
    plan_id: str
    mentor_id: str
    mentee_id: str
    price: Money
    sessions: int
    status: str
    subscription_id: str | None
    customer_id: str | None
    checkout_session_id: str | None
    checkout_url: str | None
    cancel_at_period_end: bool
    current_period_end: datetime | None
    canceled_at: datetime | None
    pending_plan_id: str | None
    created_at: datetime
    periods: tuple[PlanPeriodView, ...]

    @property
    def credits_left(self) -> int:
        """Credits usable now, over all periods."""
        return sum(p.left for p in self.periods)


@dataclass(frozen=True, slots=True)
class CreditView:
    """The session credit a booking was paid with, and its share of the period's payout."""

    booking_id: str
    plan_purchase_id: str
    period_id: int
    seq: int
    share: Money
    released_at: datetime | None


def period_view(row: Row[Any], now: datetime) -> PlanPeriodView:
    """A period row (joined with its payment's figures) as a view at ``now``."""
    cur = row.currency
    live = row.status == "paid" and row.expires_at is not None and row.expires_at > now
    left = credits_left(row.credits, row.used, row.amount, row.amount_reversed or 0) if live else 0
    payout = row.mentor_payout if row.status in {"paid", "expired"} else 0
    return PlanPeriodView(
        id=row.id,
        invoice_id=row.invoice_id,
        payment_intent_id=row.payment_intent_id,
        plan_id=row.plan_id,
        amount=Money(row.amount, cur),
        status=row.status,
        credits=row.credits,
        used=row.used,
        left=left,
        period_start=row.period_start,
        period_end=row.period_end,
        expires_at=row.expires_at,
        mentor_payout=Money(payout or 0, cur),
    )


def purchase_view(row: Row[Any], periods: list[Row[Any]], now: datetime) -> PlanPurchaseView:
    """A purchase row and its period rows as a view at ``now``."""
    return PlanPurchaseView(
        id=row.id,
        kind=row.kind,
        plan_id=row.plan_id,
        mentor_id=row.mentor_id,
        mentee_id=row.mentee_id,
        price=Money(row.price, row.currency),
        sessions=row.sessions,
        status=row.status,
        subscription_id=row.subscription_id,
        customer_id=row.customer_id,
        checkout_session_id=row.checkout_session_id,
        checkout_url=row.checkout_url,
        cancel_at_period_end=bool(row.cancel_at_period_end),
        current_period_end=row.current_period_end,
        canceled_at=row.canceled_at,
        pending_plan_id=row.pending_plan_id,
        created_at=row.created_at,
        periods=tuple(period_view(p, now) for p in periods),
    )
