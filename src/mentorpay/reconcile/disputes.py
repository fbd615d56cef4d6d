"""Disputes: disputes created at Stripe in the period against the ledger's
``dispute:<id>:opened|won|lost`` postings; disputes the ledger opened locally are looked up at
Stripe one by one."""

from __future__ import annotations

from collections.abc import Mapping

from mentorpay.db import read_connection
from mentorpay.errors import GatewayError
from mentorpay.gateway import (
    GatewayDispute,
    GatewayPaymentIntent,
    is_missing_resource,
)
from mentorpay.ledger.reports import (
    DisputePhase,
    disputes_opened_between,
    payments_by_intent,
    posted_dispute_phases,
)
from mentorpay.reconcile._common import Found, Scope, money
from mentorpay.reconcile.report import Discrepancy, KindReport

__all__ = ["check_disputes"]


def check_disputes(
    scope: Scope,
    *,
    ours: Mapping[str, GatewayPaymentIntent | None],
    report: KindReport,
    events: Found,
) -> None:
    """Compare disputes of the period; ``ours``: payment intents known to be mentorpay's."""
    disputes = [
        d
        for d in scope.gateway.list_disputes(created_gte=scope.since, created_lt=scope.until)
        if d.payment_intent_id is not None
    ]
    with read_connection(scope.engine) as conn:
        local_payments = payments_by_intent(
            conn, sorted({d.payment_intent_id for d in disputes if d.payment_intent_id})
        )
        disputes = [
            d
            for d in disputes
            if d.payment_intent_id in ours or d.payment_intent_id in local_payments
        ]
        posted = posted_dispute_phases(conn, [d.id for d in disputes])
        local_opened = disputes_opened_between(conn, scope.since, scope.until)
    report.checked = len(disputes)
    for dispute in disputes:
        _compare_dispute(dispute, posted, report, events)
    seen = {d.id for d in disputes}
    for dispute_id, pi_id in local_opened:
        if dispute_id in seen:
            continue
        try:
            scope.gateway.retrieve_dispute(dispute_id)
        except GatewayError as exc:
            if not is_missing_resource(exc):
                raise
            report.add(
                Discrepancy(
                    "disputes",
                    "missing_in_stripe",
                    dispute_id,
                    "the ledger holds funds for a dispute Stripe does not know",
                    payment_intent_id=pi_id,
                )
            )


def _compare_dispute(
    dispute: GatewayDispute,
    posted: Mapping[str, set[DisputePhase]],
    report: KindReport,
    events: Found,
) -> None:
    amount = money(dispute.amount, dispute.currency)
    phases = posted.get(dispute.id, set())
    if "opened" not in phases:
        item = Discrepancy(
            "disputes",
            "missing_in_ledger",
            dispute.id,
            f"dispute ({dispute.status}) not recorded in the ledger",
            stripe_amount=amount,
            payment_intent_id=dispute.payment_intent_id,
            event_type="charge.dispute.created",
            event_id=f"evt_reconcile_{dispute.id}_created",
        )
        report.add(item)
        events.append((item, dispute.raw))
    if not dispute.closed:
        return
    # The ledger keys the outcome as won or lost; an inquiry closed without a chargeback
    # and a prevented dispute kept the money, so they are "won".
    outcome = "lost" if dispute.status == "lost" else "won"
    other = "lost" if outcome == "won" else "won"
    if other in phases:
        report.add(
            Discrepancy(
                "disputes",
                "amount_mismatch",
                dispute.id,
                f"Stripe says the dispute ended {dispute.status}, the ledger recorded it {other}",
                stripe_amount=amount,
                payment_intent_id=dispute.payment_intent_id,
            )
        )
    elif outcome not in phases:
        item = Discrepancy(
            "disputes",
            "missing_in_ledger",
            dispute.id,
            f"dispute {dispute.status} at Stripe, still open in the ledger",
            stripe_amount=amount,
            payment_intent_id=dispute.payment_intent_id,
            event_type="charge.dispute.closed",
            event_id=f"evt_reconcile_{dispute.id}_closed",
        )
        report.add(item)
        events.append((item, dispute.raw))
