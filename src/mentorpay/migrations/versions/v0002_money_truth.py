"""money truth: a hold per dispute, payments parked for review

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mentorpay_disputes",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentorpay_disputes")),
    )
    with op.batch_alter_table("mentorpay_disputes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mentorpay_disputes_payment_intent_id"),
            ["payment_intent_id"],
            unique=False,
        )
    with op.batch_alter_table("mentorpay_payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mentorpay_payments", schema=None) as batch_op:
        batch_op.drop_column("review_reason")
    with op.batch_alter_table("mentorpay_disputes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mentorpay_disputes_payment_intent_id"))
    op.drop_table("mentorpay_disputes")
