"""The ledger's tables: payments, mentor balances, journal transactions and entries, disputes
(owned by :mod:`mentorpay.ledger`)."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from mentorpay.models._base import Base, Id, UTCDateTime

__all__ = [
    "Dispute",
    "LedgerCheckpoint",
    "LedgerEntry",
    "LedgerTransaction",
    "MentorBalance",
    "Payment",
    "balances_table",
    "disputes_table",
    "entries_table",
    "ledger_checkpoints_table",
    "payments_table",
    "transactions_table",
]

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
    #: Refunds (gross) the platform keeps its fee on: they come out of the mentor's share only
    #: (a mentee's late cancellation under a policy that keeps the fee; see ledger.rules).
    fee_kept: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: Stripe's fees on this payment (processing, disputes; net of fees returned), posted from
    #: its balance transactions to the ``stripe_fees`` account.
    stripe_fee: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: Plan periods: the part of the mentor's share moved to available by the sessions
    #: released one by one while the payment as a whole is unreleased (``released_at`` NULL).
    payout_released: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
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

    # The operator dashboard: disputes opened per day of a period.
    __table_args__ = (Index("ix_mentorpay_disputes_created_at", "created_at"),)


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


payments_table = cast(Table, Payment.__table__)
balances_table = cast(Table, MentorBalance.__table__)
transactions_table = cast(Table, LedgerTransaction.__table__)
entries_table = cast(Table, LedgerEntry.__table__)
disputes_table = cast(Table, Dispute.__table__)
ledger_checkpoints_table = cast(Table, LedgerCheckpoint.__table__)
