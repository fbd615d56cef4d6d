"""refund requests; failed refunds on payments

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 16:00:00.000000

Adds ``mentorpay_refund_requests`` (a refund's idempotency key is claimed before Stripe is
called) and, on payments, ``refund_failed`` (failed or canceled refunds seen) and
``refund_applied`` (the refund total the ledger counts). ``refund_applied`` of existing payments
is what their refund postings moved through ``stripe_clearing``, so lost disputes stay apart.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mentorpay_refund_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("full_refund", sa.Boolean(), nullable=False),
        sa.Column("request_key", sa.String(length=255), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("refund_id", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentorpay_refund_requests")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_mentorpay_refund_requests_idempotency_key")
        ),
        sa.UniqueConstraint(
            "payment_intent_id",
            "request_key",
            name=op.f("uq_mentorpay_refund_requests_payment_intent_id_request_key"),
        ),
        sa.UniqueConstraint("refund_id", name=op.f("uq_mentorpay_refund_requests_refund_id")),
    )
    with op.batch_alter_table("mentorpay_refund_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mentorpay_refund_requests_payment_intent_id_status",
            ["payment_intent_id", "status"],
            unique=False,
        )
    with op.batch_alter_table("mentorpay_payments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("refund_failed", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("refund_applied", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.execute(
        "UPDATE mentorpay_payments SET refund_applied = COALESCE(("
        " SELECT SUM(e.amount) FROM mentorpay_ledger_entries e"
        " JOIN mentorpay_ledger_transactions t ON t.id = e.transaction_id"
        " WHERE t.kind = 'refund' AND e.account = 'stripe_clearing'"
        " AND t.payment_intent_id = mentorpay_payments.payment_intent_id), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("mentorpay_payments", schema=None) as batch_op:
        batch_op.drop_column("refund_applied")
        batch_op.drop_column("refund_failed")
    with op.batch_alter_table("mentorpay_refund_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_mentorpay_refund_requests_payment_intent_id_status")
    op.drop_table("mentorpay_refund_requests")
