"""ledger checkpoints: the journal's sums up to an entry id, so verify() reads only newer entries

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 19:10:00.000000

A new table, written only by ``LedgerService.verify()`` after a clean pass; no data changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mentorpay_ledger_checkpoints",
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("mentor_id", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("upto_entry_id", sa.BigInteger(), nullable=False),
        sa.Column("upto_transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("transactions", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account", "mentor_id", "currency"),
    )


def downgrade() -> None:
    op.drop_table("mentorpay_ledger_checkpoints")
