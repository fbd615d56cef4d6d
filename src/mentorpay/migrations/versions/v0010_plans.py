"""mentorship plans: purchases, paid periods, session credits; per-session releases

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 21:00:00.000000

Monthly subscriptions and prepaid packages (``mentorpay_plan_purchases``), each paid period
or package (``mentorpay_plan_periods``, one ledger payment each) and the session credits spent
on bookings (``mentorpay_plan_credit_uses``). ``mentorpay_payments.payout_released`` is the
part of a period's mentor share released session by session.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "mentorpay_plan_purchases",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("plan_id", sa.String(length=255), nullable=False),
        sa.Column("mentor_id", sa.String(length=255), nullable=False),
        sa.Column("mentee_id", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("interval", sa.String(length=8), nullable=False),
        sa.Column("interval_count", sa.Integer(), nullable=False),
        sa.Column("validity_seconds", sa.BigInteger(), nullable=False),
        sa.Column("carry_over_periods", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("stripe_price_id", sa.String(length=255), nullable=True),
        sa.Column("destination", sa.String(length=255), nullable=True),
        sa.Column("application_fee", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("open_key", sa.String(length=600), nullable=True),
        sa.Column("checkout_session_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_url", sa.Text(), nullable=True),
        _time("checkout_expires_at", nullable=False),
        sa.Column("subscription_id", sa.String(length=255), nullable=True),
        sa.Column("customer_id", sa.String(length=255), nullable=True),
        sa.Column("item_id", sa.String(length=255), nullable=True),
        sa.Column("pending_plan_id", sa.String(length=255), nullable=True),
        sa.Column("pending_price", sa.BigInteger(), nullable=True),
        sa.Column("pending_sessions", sa.Integer(), nullable=True),
        sa.Column("plan_changes", sa.Integer(), nullable=False),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        _time("current_period_end"),
        _time("canceled_at"),
        sa.Column("stripe_seen_at", sa.BigInteger(), nullable=False),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentorpay_plan_purchases")),
        sa.UniqueConstraint(
            "checkout_session_id", name=op.f("uq_mentorpay_plan_purchases_checkout_session_id")
        ),
        sa.UniqueConstraint("open_key", name=op.f("uq_mentorpay_plan_purchases_open_key")),
        sa.UniqueConstraint(
            "subscription_id", name=op.f("uq_mentorpay_plan_purchases_subscription_id")
        ),
    )
    with op.batch_alter_table("mentorpay_plan_purchases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mentorpay_plan_purchases_mentee_id"), ["mentee_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_mentorpay_plan_purchases_mentor_id"), ["mentor_id"], unique=False
        )
    op.create_table(
        "mentorpay_plan_periods",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("purchase_id", sa.String(length=64), nullable=True),
        sa.Column("invoice_id", sa.String(length=255), nullable=True),
        sa.Column("subscription_id", sa.String(length=255), nullable=True),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("plan_id", sa.String(length=255), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _time("period_start"),
        _time("period_end"),
        _time("expires_at"),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["mentorpay_plan_purchases.id"],
            name=op.f("fk_mentorpay_plan_periods_purchase_id_mentorpay_plan_purchases"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentorpay_plan_periods")),
        sa.UniqueConstraint("invoice_id", name=op.f("uq_mentorpay_plan_periods_invoice_id")),
        sa.UniqueConstraint(
            "payment_intent_id", name=op.f("uq_mentorpay_plan_periods_payment_intent_id")
        ),
    )
    with op.batch_alter_table("mentorpay_plan_periods", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mentorpay_plan_periods_purchase_id"), ["purchase_id"], unique=False
        )
        batch_op.create_index(
            "ix_mentorpay_plan_periods_status_expires_at", ["status", "expires_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_mentorpay_plan_periods_subscription_id"),
            ["subscription_id"],
            unique=False,
        )
    op.create_table(
        "mentorpay_plan_credit_uses",
        sa.Column("booking_id", sa.String(length=255), nullable=False),
        sa.Column("period_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        _time("released_at"),
        _time("created_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["period_id"],
            ["mentorpay_plan_periods.id"],
            name=op.f("fk_mentorpay_plan_credit_uses_period_id_mentorpay_plan_periods"),
        ),
        sa.PrimaryKeyConstraint("booking_id", name=op.f("pk_mentorpay_plan_credit_uses")),
    )
    with op.batch_alter_table("mentorpay_plan_credit_uses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mentorpay_plan_credit_uses_period_id"), ["period_id"], unique=False
        )
    with op.batch_alter_table("mentorpay_payments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("payout_released", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("mentorpay_payments", schema=None) as batch_op:
        batch_op.drop_column("payout_released")
    op.drop_table("mentorpay_plan_credit_uses")
    op.drop_table("mentorpay_plan_periods")
    op.drop_table("mentorpay_plan_purchases")
