"""The marketplace's own records: checkout sessions, refund requests, payout requests, mentor
accounts, cancellations and reconciliation runs (each owned by its service)."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from mentorpay.models._base import Base, Id, UTCDateTime

__all__ = [
    "Cancellation",
    "CheckoutSession",
    "MentorAccount",
    "PayoutRequest",
    "ReconcileRun",
    "RefundRequest",
    "cancellations_table",
    "checkout_sessions_table",
    "mentor_accounts_table",
    "payouts_table",
    "reconcile_runs_table",
    "refund_requests_table",
]


class CheckoutSession(Base):
    """A Stripe Checkout Session created for a booking, so an open one is reused, not duplicated.

    Status: ``creating`` (claimed before calling Stripe; kept when Stripe's answer was lost so
    the retry replays the same idempotent request), ``open``, ``awaiting_payment`` (completed
    with a delayed payment method that has not settled: no second checkout meanwhile),
    ``complete``, ``payment_failed`` (the delayed payment failed: the booking is free again),
    ``expired``, and ``abandoned`` (its idempotency key conflicted; the next attempt uses a
    fresh key). Its booking, mentor, mentee, amount and currency are what mentorpay asked Stripe
    to charge: the webhook credits a payment of this session only when they agree.
    """

    __tablename__ = "mentorpay_checkout_sessions"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    booking_id: Mapped[str] = mapped_column(Id, index=True)
    mentee_id: Mapped[str] = mapped_column(Id)
    mentor_id: Mapped[str] = mapped_column(Id)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    platform_fee: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    # Stats: the Checkout conversion of sessions created in a period.
    __table_args__ = (Index("ix_mentorpay_checkout_sessions_created_at", "created_at"),)


class RefundRequest(Base):
    """A platform refund, claimed before Stripe is called so its idempotency key never changes.

    ``request_key`` is the caller's ``request_id`` or a generated one, unique per payment.
    Status: ``creating`` (claimed; Stripe's answer not received, so a retry resends this very
    request), ``pending`` / ``succeeded`` (Stripe's status), ``failed`` (refused by Stripe, or
    failed later per ``refund.failed``) and ``canceled``. Refund events link a request whose
    answer was lost by the ``mentorpay_refund_request`` metadata sent with it.
    """

    __tablename__ = "mentorpay_refund_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    payment_intent_id: Mapped[str] = mapped_column(Id)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    #: Asked as "everything still refundable" (amount=None): a retry of that matches this row.
    full_refund: Mapped[bool] = mapped_column(Boolean)
    request_key: Mapped[str] = mapped_column(String(255))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    refund_id: Mapped[str | None] = mapped_column(Id, unique=True)
    reason: Mapped[str | None] = mapped_column(String(32))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    #: When a caller of refund() received this request's outcome; until then a call for the
    #: same payment and amount is a retry of it.
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("payment_intent_id", "request_key"),
        Index(
            "ix_mentorpay_refund_requests_payment_intent_id_status", "payment_intent_id", "status"
        ),
    )


class PayoutRequest(Base):
    """A mentor's withdrawal, moved by an explicit state machine (see ``payouts.TRANSITIONS``).

    requested -> approved | cancelled; approved -> processing | cancelled | paid (manual mode);
    processing -> paid | failed; paid -> reversed.
    """

    __tablename__ = "mentorpay_payout_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mentor_id: Mapped[str] = mapped_column(Id)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str | None] = mapped_column(Id)
    transfer_id: Mapped[str | None] = mapped_column(Id, unique=True)
    #: Manual mode: the platform's own bank transfer reference.
    reference: Mapped[str | None] = mapped_column(Id, unique=True)
    approved_by: Mapped[str | None] = mapped_column(Id)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_mentorpay_payout_requests_mentor_id_id", "mentor_id", "id"),
        Index("ix_mentorpay_payout_requests_status", "status"),
    )


class MentorAccount(Base):
    """The mentor's Stripe Express connected account, claimed before Stripe is called.

    One row per mentor (the primary key), written before the account is created at Stripe
    under ``idempotency_key`` (derived from the mentor), so concurrent or retried onboarding
    makes one account. ``account_id`` is ``NULL`` until Stripe answered. The flags and what is
    due are Stripe's, from the last ``account.updated`` applied (``event_created``: its
    ``created``, so an older event never overwrites a newer state). ``currently_due`` and
    ``past_due`` are space-separated requirement names.
    """

    __tablename__ = "mentorpay_mentor_accounts"

    mentor_id: Mapped[str] = mapped_column(Id, primary_key=True)
    account_id: Mapped[str | None] = mapped_column(Id, unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    livemode: Mapped[bool] = mapped_column(Boolean)
    charges_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    payouts_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    details_submitted: Mapped[bool] = mapped_column(Boolean, default=False)
    currently_due: Mapped[str] = mapped_column(Text, default="")
    past_due: Mapped[str] = mapped_column(Text, default="")
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    event_created: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Cancellation(Base):
    """A booking's cancellation, once per booking (owned by :mod:`mentorpay.cancellations`):
    who cancelled, when, what the policy refunded and why, and the refund request it made."""

    __tablename__ = "mentorpay_cancellations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    booking_id: Mapped[str] = mapped_column(Id, unique=True)
    payment_intent_id: Mapped[str | None] = mapped_column(Id)
    cancelled_by: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    cancelled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refund_bps: Mapped[int] = mapped_column(Integer)
    fee_kept: Mapped[bool] = mapped_column(Boolean)
    currency: Mapped[str | None] = mapped_column(String(3))
    refund_amount: Mapped[int] = mapped_column(BigInteger)
    rule: Mapped[str] = mapped_column(Text)
    request_key: Mapped[str | None] = mapped_column(Id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReconcileRun(Base):
    """One reconciliation run as the operator dashboard shows it (written by
    :mod:`mentorpay.reconcile.runs`, its one owner)."""

    __tablename__ = "mentorpay_reconcile_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    until: Mapped[datetime] = mapped_column(UTCDateTime())
    applied: Mapped[bool] = mapped_column(Boolean)
    ok: Mapped[bool] = mapped_column(Boolean)
    discrepancies: Mapped[int] = mapped_column(Integer)
    events_applied: Mapped[int] = mapped_column(Integer)
    #: JSON: the count of discrepancies per kind (payments, refunds, disputes, transfers).
    summary: Mapped[str] = mapped_column(Text)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())


# Typed Core handles for the statement-level code paths (``Model.__table__`` is typed as a
# FromClause, which has no ``insert()``/``c`` of the right types for mypy).


checkout_sessions_table = cast(Table, CheckoutSession.__table__)
refund_requests_table = cast(Table, RefundRequest.__table__)
payouts_table = cast(Table, PayoutRequest.__table__)
mentor_accounts_table = cast(Table, MentorAccount.__table__)
cancellations_table = cast(Table, Cancellation.__table__)
reconcile_runs_table = cast(Table, ReconcileRun.__table__)
