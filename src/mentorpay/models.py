"""mentorpay's tables, declared once as SQLAlchemy 2.0 typed models on mentorpay's own MetaData.

The hot paths (webhooks, postings) use SQLAlchemy Core against ``Model.__table__``: the ORM unit
of work costs several times the raw driver per event, while Core stays close to it. The ORM
classes remain for readable queries, typing, and Alembic autogeneration.

Every amount is a ``BigInteger`` in the currency's minor unit. Idempotency is a database fact:
the inbox's event id, a payment's intent id and every ledger transaction's business key are
unique, so two deliveries of one fact cannot both commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "CheckoutSession",
    "Dispute",
    "LedgerEntry",
    "LedgerTransaction",
    "MentorBalance",
    "OutboxEffect",
    "Payment",
    "PayoutRequest",
    "RefundRequest",
    "SentMessage",
    "UTCDateTime",
    "WebhookEvent",
    "balances_table",
    "checkout_sessions_table",
    "disputes_table",
    "entries_table",
    "metadata",
    "outbox_table",
    "payments_table",
    "payouts_table",
    "refund_requests_table",
    "sent_messages_table",
    "transactions_table",
    "webhook_events_table",
]

# Deterministic constraint names keep Alembic migrations identical on every database.
_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=_NAMING)

Id = String(255)  # booking, user and Stripe ids: opaque strings, Stripe allows up to 255


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite would otherwise hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("mentorpay stores aware datetimes only; pass tzinfo=UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = metadata


# Partial-index predicates, as text so the migration and create_all render the same SQL.
_UNRELEASED = text("released_at IS NULL AND release_due_at IS NOT NULL")
_NEEDS_REVIEW = text("status = 'needs_review'")


class Payment(Base):
    """One succeeded (or failed) payment for a booking, with its split frozen at capture time."""

    __tablename__ = "mentorpay_payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    payment_intent_id: Mapped[str] = mapped_column(Id, unique=True)
    checkout_session_id: Mapped[str | None] = mapped_column(Id, index=True)
    charge_id: Mapped[str | None] = mapped_column(Id, index=True)
    booking_id: Mapped[str] = mapped_column(Id, index=True)
    mentor_id: Mapped[str] = mapped_column(Id)
    mentee_id: Mapped[str] = mapped_column(Id)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    platform_fee: Mapped[int] = mapped_column(BigInteger)
    mentor_payout: Mapped[int] = mapped_column(BigInteger)
    # The policy in force at capture, so later policy changes never rewrite history.
    rate_bps: Mapped[int] = mapped_column(Integer)
    rounding: Mapped[str] = mapped_column(String(16))
    # Connect destination charge: the connected account Stripe transferred the mentor's share
    # to at capture. That share is withdrawn from the start and never paid out again.
    destination: Mapped[str | None] = mapped_column(Id)
    # Cumulative money reversed to the payer (refunds + lost disputes) and its split.
    amount_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    fee_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    payout_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    # The highest cumulative charge.amount_refunded any charge.refunded reported (monotone).
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    # Sum of the refunds Stripe reported failed or canceled (each refund id counted once), and
    # the refund total the ledger currently counts (see LedgerService.apply_refund_total); the
    # rest of amount_reversed is lost disputes. Server defaults fill rows written before them.
    refund_failed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    refund_applied: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Mentor share currently frozen by an open dispute, and the gross amount disputed.
    payout_held: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_disputed: Mapped[int] = mapped_column(BigInteger, default=0)
    # Why the payment was parked on the platform's suspense account instead of crediting a
    # mentor (it disagreed with the booking); NULL once credited, or for a normal payment.
    review_reason: Mapped[str | None] = mapped_column(Text)
    release_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_mentorpay_payments_mentor_id_id", "mentor_id", "id"),
        Index("ix_mentorpay_payments_mentee_id_id", "mentee_id", "id"),
        # What release_due walks: only unreleased payments with a due date, in id order, so a
        # batch reads what is due and never the (ever growing) released ones.
        Index(
            "ix_mentorpay_payments_due",
            "id",
            "release_due_at",
            postgresql_where=_UNRELEASED,
            sqlite_where=_UNRELEASED,
        ),
        # The review queue: a handful of payments among millions.
        Index(
            "ix_mentorpay_payments_needs_review",
            "id",
            postgresql_where=_NEEDS_REVIEW,
            sqlite_where=_NEEDS_REVIEW,
        ),
        # Period queries: stats and reconciliation (payments made in a period).
        Index("ix_mentorpay_payments_created_at", "created_at"),
        # Reconciliation looks for payments changed (refunded, disputed) in a period.
        Index("ix_mentorpay_payments_updated_at", "updated_at"),
    )


class MentorBalance(Base):
    """Materialized per-mentor, per-currency balances; updated in the posting's transaction."""

    __tablename__ = "mentorpay_mentor_balances"

    mentor_id: Mapped[str] = mapped_column(Id, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    pending: Mapped[int] = mapped_column(BigInteger, default=0)
    available: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    withdrawn: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


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


class WebhookEvent(Base):
    """The inbox: every verified Stripe event, claimed by its unique id, replayable."""

    __tablename__ = "mentorpay_webhook_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(Id, unique=True)
    type: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    # The payment intent a deferred event waits for, or that an ignored payment event (not made
    # through mentorpay) was about, so later events about that payment are ignored too.
    waiting_for: Mapped[str | None] = mapped_column(Id, index=True)
    payload: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_mentorpay_webhook_events_status_id", "status", "id"),
        # ``events list --type``: one type among millions of events, newest first.
        Index("ix_mentorpay_webhook_events_type_id", "type", "id"),
    )


class OutboxEffect(Base):
    """A business effect for the host's callbacks, written in the ledger change's transaction.

    ``pending`` until every callback of its kind ran without raising, then ``delivered``.
    ``claimed_until``: a deliverer working on it (the writer right after commit, or
    ``deliver_pending``); others leave it alone until then, and take it over after a crash.
    """

    __tablename__ = "mentorpay_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: Stable across retries: the host deduplicates on it.
    effect_id: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_mentorpay_outbox_status_id", "status", "id"),)


class SentMessage(Base):
    """Messages the ready-made mailer path sent, by Message-ID, so a redelivery skips them."""

    __tablename__ = "mentorpay_sent_messages"

    message_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    effect_id: Mapped[str] = mapped_column(String(255))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerTransaction(Base):
    """One balanced journal transaction; its business key makes each effect happen once."""

    __tablename__ = "mentorpay_ledger_transactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    business_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    mentor_id: Mapped[str | None] = mapped_column(Id)
    payment_intent_id: Mapped[str | None] = mapped_column(Id, index=True)
    payout_request_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    # Reconciliation: one kind of posting (disputes opened) made in a period.
    __table_args__ = (
        Index("ix_mentorpay_ledger_transactions_kind_created_at", "kind", "created_at"),
    )


class LedgerEntry(Base):
    """One leg of a transaction. Signed: the legs of a transaction sum to zero.

    Convention: a positive amount increases the account's balance as its owner sees it
    (mentor accounts, platform commission); ``stripe_clearing`` is the counter-account for money
    entering (negative) or leaving (positive) through Stripe.
    """

    __tablename__ = "mentorpay_ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transaction_id: Mapped[int] = mapped_column(
        ForeignKey("mentorpay_ledger_transactions.id"), index=True
    )
    account: Mapped[str] = mapped_column(String(32))
    mentor_id: Mapped[str | None] = mapped_column(Id)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_mentorpay_ledger_entries_mentor", "mentor_id", "currency", "account"),
    )


class Dispute(Base):
    """One dispute (or inquiry) of a payment, holding its own share of the mentor's money.

    A charge can see several disputes over its life; each holds and settles only its own
    amount, so closing one never releases or reverses another's hold.
    """

    __tablename__ = "mentorpay_disputes"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    payment_intent_id: Mapped[str] = mapped_column(Id, index=True)
    currency: Mapped[str] = mapped_column(String(3))
    #: The gross amount this dispute covers (clamped to what was still unreversed).
    amount: Mapped[int] = mapped_column(BigInteger)
    #: The mentor's share currently frozen for it (a refund meanwhile may shrink it).
    held: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


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


class LedgerCheckpoint(Base):
    """The journal's sums per account, mentor and currency up to an entry id, written by
    ``verify()`` after a clean pass so the next one reads only newer entries.

    ``mentor_id`` is ``""`` for the platform's accounts; one header row (``account = ""``)
    carries the horizon even when the journal is empty. Every row of one checkpoint has the
    same ``upto_entry_id``, ``upto_transaction_id`` and ``transactions`` (transactions up to
    that id)."""

    __tablename__ = "mentorpay_ledger_checkpoints"

    account: Mapped[str] = mapped_column(String(32), primary_key=True)
    mentor_id: Mapped[str] = mapped_column(Id, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger)
    upto_entry_id: Mapped[int] = mapped_column(BigInteger)
    upto_transaction_id: Mapped[int] = mapped_column(BigInteger)
    transactions: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# Typed Core handles for the statement-level code paths (``Model.__table__`` is typed as a
# FromClause, which has no ``insert()``/``c`` of the right types for mypy).
payments_table = cast(Table, Payment.__table__)
balances_table = cast(Table, MentorBalance.__table__)
payouts_table = cast(Table, PayoutRequest.__table__)
webhook_events_table = cast(Table, WebhookEvent.__table__)
transactions_table = cast(Table, LedgerTransaction.__table__)
entries_table = cast(Table, LedgerEntry.__table__)
checkout_sessions_table = cast(Table, CheckoutSession.__table__)
disputes_table = cast(Table, Dispute.__table__)
outbox_table = cast(Table, OutboxEffect.__table__)
sent_messages_table = cast(Table, SentMessage.__table__)
refund_requests_table = cast(Table, RefundRequest.__table__)
ledger_checkpoints_table = cast(Table, LedgerCheckpoint.__table__)
