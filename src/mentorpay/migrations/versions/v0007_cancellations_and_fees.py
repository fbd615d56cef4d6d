"""cancellations; fee kept on payments

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 19:10:00.000000

Adds ``mentorpay_cancellations`` (one row per cancelled booking: who, when, what the policy
refunded and why) and, on payments, ``fee_kept`` (refunds the platform keeps its fee on, taken
from the mentor's share only; existing payments keep 0: their refunds stay pro rata) and
``stripe_fee`` (Stripe's fees posted to the ``stripe_fees`` account, so ``verify`` can check
``stripe_clearing`` and ``stripe_fees`` against the payments table).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mentorpay_cancellations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("booking_id", sa.String(length=255), nullable=False),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("cancelled_by", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refund_bps", sa.Integer(), nullable=False),
        sa.Column("fee_kept", sa.Boolean(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("refund_amount", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("request_key", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentorpay_cancellations")),
        sa.UniqueConstraint("booking_id", name=op.f("uq_mentorpay_cancellations_booking_id")),
    )
    with op.batch_alter_table("mentorpay_payments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fee_kept", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("stripe_fee", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("mentorpay_payments", schema=None) as batch_op:
        batch_op.drop_column("stripe_fee")
        batch_op.drop_column("fee_kept")
    op.drop_table("mentorpay_cancellations")
