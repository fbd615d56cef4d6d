"""indexes for period queries, what is due for release and the review queue

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 18:30:00.000000

Indexes only; no data changes. ``tests/test_query_plans.py`` shows what needed them: stats and
reconciliation read payments, Checkout Sessions and disputes-opened postings by ``created_at``
(whole-table scans before), ``payments review`` looked for ``needs_review`` among every payment,
and ``events list --type`` for one type among every event. ``release_due`` now walks a partial
index of unreleased payments with a due date instead of ``(released_at, release_due_at)``, which
also held every released payment.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UNRELEASED = "released_at IS NULL AND release_due_at IS NOT NULL"
NEEDS_REVIEW = "status = 'needs_review'"


def _partial(predicate: str) -> dict[str, sa.TextClause]:
    return {"postgresql_where": sa.text(predicate), "sqlite_where": sa.text(predicate)}


def upgrade() -> None:
    with op.batch_alter_table("mentorpay_payments", schema=None) as batch_op:
        batch_op.drop_index("ix_mentorpay_payments_release_due")
        batch_op.create_index(
            "ix_mentorpay_payments_due",
            ["id", "release_due_at"],
            unique=False,
            **_partial(UNRELEASED),
        )
        batch_op.create_index(
            "ix_mentorpay_payments_needs_review", ["id"], unique=False, **_partial(NEEDS_REVIEW)
        )
        batch_op.create_index("ix_mentorpay_payments_created_at", ["created_at"], unique=False)
    with op.batch_alter_table("mentorpay_webhook_events", schema=None) as batch_op:
        batch_op.create_index("ix_mentorpay_webhook_events_type_id", ["type", "id"], unique=False)
    with op.batch_alter_table("mentorpay_ledger_transactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mentorpay_ledger_transactions_kind_created_at",
            ["kind", "created_at"],
            unique=False,
        )
    with op.batch_alter_table("mentorpay_checkout_sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mentorpay_checkout_sessions_created_at", ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("mentorpay_checkout_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_mentorpay_checkout_sessions_created_at")
    with op.batch_alter_table("mentorpay_ledger_transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_mentorpay_ledger_transactions_kind_created_at")
    with op.batch_alter_table("mentorpay_webhook_events", schema=None) as batch_op:
        batch_op.drop_index("ix_mentorpay_webhook_events_type_id")
    with op.batch_alter_table("mentorpay_payments", schema=None) as batch_op:
        batch_op.drop_index("ix_mentorpay_payments_created_at")
        batch_op.drop_index("ix_mentorpay_payments_needs_review")
        batch_op.drop_index("ix_mentorpay_payments_due")
        batch_op.create_index(
            "ix_mentorpay_payments_release_due", ["released_at", "release_due_at"], unique=False
        )
