"""mentorpay's tables, declared once as SQLAlchemy 2.0 typed models on mentorpay's own MetaData.

The hot paths (webhooks, postings) use SQLAlchemy Core against ``Model.__table__``: the ORM unit
of work costs several times the raw driver per event, while Core stays close to it. The ORM
classes remain for readable queries, typing, and Alembic autogeneration.

Every amount is a ``BigInteger`` in the currency's minor unit. Idempotency is a database fact:
the inbox's event id, a payment's intent id and every ledger transaction's business key are
unique, so two deliveries of one fact cannot both commit.
"""

from mentorpay.models._base import Base, Id, UTCDateTime, metadata
from mentorpay.models.inbox import (
    OutboxEffect,
    SentMessage,
    WebhookEvent,
    outbox_table,
    sent_messages_table,
    webhook_events_table,
)
from mentorpay.models.ledger import (
    Dispute,
    LedgerCheckpoint,
    LedgerEntry,
    LedgerTransaction,
    MentorBalance,
    Payment,
    balances_table,
    disputes_table,
    entries_table,
    ledger_checkpoints_table,
    payments_table,
    transactions_table,
)
from mentorpay.models.marketplace import (
    Cancellation,
    CheckoutSession,
    MentorAccount,
    PayoutRequest,
    ReconcileRun,
    RefundRequest,
    cancellations_table,
    checkout_sessions_table,
    mentor_accounts_table,
    payouts_table,
    reconcile_runs_table,
    refund_requests_table,
)
from mentorpay.models.plans import (
    CreditUse,
    PlanPeriod,
    PlanPurchase,
    credit_uses_table,
    plan_periods_table,
    plan_purchases_table,
)

__all__ = [
    "Base",
    "Cancellation",
    "CheckoutSession",
    "CreditUse",
    "Dispute",
    "Id",
    "LedgerCheckpoint",
    "LedgerEntry",
    "LedgerTransaction",
    "MentorAccount",
    "MentorBalance",
    "OutboxEffect",
    "Payment",
    "PayoutRequest",
    "PlanPeriod",
    "PlanPurchase",
    "ReconcileRun",
    "RefundRequest",
    "SentMessage",
    "UTCDateTime",
    "WebhookEvent",
    "balances_table",
    "cancellations_table",
    "checkout_sessions_table",
    "credit_uses_table",
    "disputes_table",
    "entries_table",
    "ledger_checkpoints_table",
    "mentor_accounts_table",
    "metadata",
    "outbox_table",
    "payments_table",
    "payouts_table",
    "plan_periods_table",
    "plan_purchases_table",
    "reconcile_runs_table",
    "refund_requests_table",
    "sent_messages_table",
    "transactions_table",
    "webhook_events_table",
]
