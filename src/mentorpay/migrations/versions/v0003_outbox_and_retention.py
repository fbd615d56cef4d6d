"""outbox and sent messages (durable after-commit effects)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 16:00:00.000000

The inbox's retention (``events prune``) keeps the payload column NOT NULL: a pruned payload is
replaced by a small stub event, so no change to ``mentorpay_webhook_events`` is needed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"

down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mentorpay_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("effect_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentorpay_outbox")),
        sa.UniqueConstraint("effect_id", name=op.f("uq_mentorpay_outbox_effect_id")),
    )
    with op.batch_alter_table("mentorpay_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_mentorpay_outbox_status_id", ["status", "id"], unique=False)

    op.create_table(
        "mentorpay_sent_messages",
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("effect_id", sa.String(length=255), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_mentorpay_sent_messages")),
    )


def downgrade() -> None:
    op.drop_table("mentorpay_sent_messages")
    with op.batch_alter_table("mentorpay_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_mentorpay_outbox_status_id")
    op.drop_table("mentorpay_outbox")
