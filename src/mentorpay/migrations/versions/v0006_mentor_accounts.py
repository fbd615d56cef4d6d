"""mentors' Stripe connected accounts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 19:00:00.000000

One row per mentor, claimed before the Express account is created at Stripe (so concurrent or
retried onboarding makes one account), holding what the last ``account.updated`` said.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mentorpay_mentor_accounts",
        sa.Column("mentor_id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("charges_enabled", sa.Boolean(), nullable=False),
        sa.Column("payouts_enabled", sa.Boolean(), nullable=False),
        sa.Column("details_submitted", sa.Boolean(), nullable=False),
        sa.Column("currently_due", sa.Text(), nullable=False),
        sa.Column("past_due", sa.Text(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=255), nullable=True),
        sa.Column("event_created", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mentor_id", name=op.f("pk_mentorpay_mentor_accounts")),
        sa.UniqueConstraint("account_id", name=op.f("uq_mentorpay_mentor_accounts_account_id")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_mentorpay_mentor_accounts_idempotency_key")
        ),
    )


def downgrade() -> None:
    op.drop_table("mentorpay_mentor_accounts")
