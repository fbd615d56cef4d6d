"""reconciliation runs, and disputes by creation time

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 19:00:00.000000

The operator dashboard shows the last reconciliation (``mentorpay_reconcile_runs``, one row per
run) and the disputes opened per day (an index on ``mentorpay_disputes.created_at``, so a
period's disputes are not found by reading them all).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mentorpay_reconcile_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("discrepancies", sa.Integer(), nullable=False),
        sa.Column("events_applied", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentorpay_reconcile_runs")),
    )
    with op.batch_alter_table("mentorpay_disputes", schema=None) as batch_op:
        batch_op.create_index("ix_mentorpay_disputes_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mentorpay_disputes", schema=None) as batch_op:
        batch_op.drop_index("ix_mentorpay_disputes_created_at")
    op.drop_table("mentorpay_reconcile_runs")
