"""Plan purchases, their paid periods and the session credits spent from them (owned by
:mod:`mentorpay.plans.storage`)."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from mentorpay.models._base import Base, Id, UTCDateTime

__all__ = [
    "CreditUse",
    "PlanPeriod",
    "PlanPurchase",
    "credit_uses_table",
    "plan_periods_table",
    "plan_purchases_table",
]


class PlanPurchase(Base):
    """One mentee's purchase of a plan: a Stripe subscription (renewed every period) or a
    prepaid package (paid once). Its terms are what mentorpay asked Stripe to charge, copied
    from the host's plan at checkout, so a later change of the plan never rewrites them.

    Status: ``creating`` (claimed before calling Stripe; kept when the answer was lost, so a
    retry replays the same request), ``checkout`` (a session is open), ``active``,
    ``past_due`` (a renewal failed; Stripe retries), ``canceled``, ``abandoned`` (its checkout
    expired unpaid) and, for a package, ``paid``. ``open_key`` is set while the purchase
    blocks another one (an open checkout, a live subscription): one per mentee and plan.
    """

    __tablename__ = "mentorpay_plan_purchases"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    plan_id: Mapped[str] = mapped_column(Id)
    mentor_id: Mapped[str] = mapped_column(Id, index=True)
    mentee_id: Mapped[str] = mapped_column(Id, index=True)
    currency: Mapped[str] = mapped_column(String(3))
    price: Mapped[int] = mapped_column(BigInteger)
    sessions: Mapped[int] = mapped_column(Integer)
    interval: Mapped[str] = mapped_column(String(8))
    interval_count: Mapped[int] = mapped_column(Integer)
    validity_seconds: Mapped[int] = mapped_column(BigInteger)
    carry_over_periods: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    stripe_price_id: Mapped[str | None] = mapped_column(Id)
    destination: Mapped[str | None] = mapped_column(Id)
    application_fee: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    open_key: Mapped[str | None] = mapped_column(String(600), unique=True)
    checkout_session_id: Mapped[str | None] = mapped_column(Id, unique=True)
    checkout_url: Mapped[str | None] = mapped_column(Text)
    checkout_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    subscription_id: Mapped[str | None] = mapped_column(Id, unique=True)
    customer_id: Mapped[str | None] = mapped_column(Id)
    item_id: Mapped[str | None] = mapped_column(Id)
    #: A plan change mentorpay asked Stripe for: it applies from the next invoice naming it.
    pending_plan_id: Mapped[str | None] = mapped_column(Id)
    pending_price: Mapped[int | None] = mapped_column(BigInteger)
    pending_sessions: Mapped[int | None] = mapped_column(Integer)
    plan_changes: Mapped[int] = mapped_column(Integer, default=0)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The ``created`` time of the newest subscription event applied: an older one arriving
    #: late never overwrites a newer state.
    stripe_seen_at: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PlanPeriod(Base):
    """One paid period of a subscription (an invoice) or a package's payment: a ledger payment
    (``payment_intent_id``) split like a booking's, and the session credits it grants.

    An invoice's facts may arrive in two events in any order (newer API versions: ``invoice.paid``
    names the subscription and period, ``invoice_payment.paid`` the payment intent); the row
    collects them and the payment is recorded when both are known. Status: ``pending`` (waiting
    for the other half), ``paid`` (recorded), ``needs_review`` (recorded on suspense: it
    disagreed), ``expired`` (its credits lapsed and the rest of its share was released).
    Credits left = ``credits - used - removed``, where a refund or lost dispute removes the
    unused credits its money paid for (see :mod:`mentorpay.plans.rules`).
    """

    __tablename__ = "mentorpay_plan_periods"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    purchase_id: Mapped[str | None] = mapped_column(
        ForeignKey("mentorpay_plan_purchases.id"), index=True
    )
    invoice_id: Mapped[str | None] = mapped_column(Id, unique=True)
    #: The subscription the invoice bills: a period whose subscription is not linked to a
    #: purchase yet (its checkout's completion has not arrived) waits under it.
    subscription_id: Mapped[str | None] = mapped_column(Id, index=True)
    payment_intent_id: Mapped[str | None] = mapped_column(Id, unique=True)
    plan_id: Mapped[str | None] = mapped_column(Id)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    credits: Mapped[int] = mapped_column(Integer, default=0)
    used: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    # expire_due walks the paid periods whose credits have lapsed.
    __table_args__ = (Index("ix_mentorpay_plan_periods_status_expires_at", "status", "expires_at"),)


class CreditUse(Base):
    """One session credit spent on a booking: the ``seq``-th credit of its period, whose share
    of the period's mentor payout (``allocate``) is released when the session took place."""

    __tablename__ = "mentorpay_plan_credit_uses"

    booking_id: Mapped[str] = mapped_column(Id, primary_key=True)
    period_id: Mapped[int] = mapped_column(ForeignKey("mentorpay_plan_periods.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


plan_purchases_table = cast(Table, PlanPurchase.__table__)
plan_periods_table = cast(Table, PlanPeriod.__table__)
credit_uses_table = cast(Table, CreditUse.__table__)
