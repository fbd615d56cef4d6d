"""Payments: succeeded PaymentIntents with mentorpay's metadata at Stripe against the
``mentorpay_payments`` rows; payments recorded only locally are looked up one by one."""

from __future__ import annotations

from typing import Final

from mentorpay.db import read_connection
from mentorpay.errors import GatewayError
from mentorpay.gateway import GatewayPaymentIntent, is_missing_resource
from mentorpay.ledger.reports import payments_by_intent, payments_created
from mentorpay.money import Money
from mentorpay.reconcile._common import Found, Scope, money
from mentorpay.reconcile.report import Discrepancy, KindReport

__all__ = ["METADATA_KEYS", "check_payments"]

#: The metadata checkout puts on a PaymentIntent: without it, the payment is not mentorpay's.
METADATA_KEYS: Final = ("booking_id", "mentor_id", "mentee_id")


def check_payments(
    scope: Scope,
    *,
    report: KindReport,
    events: Found,
) -> dict[str, GatewayPaymentIntent | None]:
    """Compare payments. Returns every payment intent known to be mentorpay's (Stripe's
    listing plus local rows), for the refund and dispute comparisons."""
    stripe_side: dict[str, GatewayPaymentIntent] = {}
    for pi in scope.gateway.list_payment_intents(created_gte=scope.since, created_lt=scope.until):
        if pi.status == "succeeded" and all(pi.metadata.get(k) for k in METADATA_KEYS):
            stripe_side[pi.id] = pi
    report.checked = len(stripe_side)
    with read_connection(scope.engine) as conn:
        local = payments_by_intent(conn, list(stripe_side))
        recent = payments_created(conn, scope.since, scope.until)
    for pi in stripe_side.values():
        row = local.get(pi.id)
        stripe_amount = money(pi.amount_received or pi.amount, pi.currency)
        if row is None:
            item = Discrepancy(
                "payments",
                "missing_in_ledger",
                pi.id,
                f"booking {pi.metadata.get('booking_id')}: succeeded at Stripe, not in the ledger",
                stripe_amount=stripe_amount,
                payment_intent_id=pi.id,
                event_type="payment_intent.succeeded",
                event_id=f"evt_reconcile_{pi.id}",
            )
            report.add(item)
            events.append((item, pi.raw))
            continue
        ledger_amount = Money(row.amount, row.currency)
        if ledger_amount != stripe_amount:
            report.add(
                Discrepancy(
                    "payments",
                    "amount_mismatch",
                    pi.id,
                    f"Stripe received {stripe_amount}, the ledger recorded {ledger_amount}",
                    stripe_amount=stripe_amount,
                    ledger_amount=ledger_amount,
                    payment_intent_id=pi.id,
                )
            )
    known: dict[str, GatewayPaymentIntent | None] = dict(stripe_side)
    for row in recent:
        pi_id = row.payment_intent_id
        known.setdefault(pi_id, None)
        if pi_id in stripe_side:
            continue
        ledger_amount = Money(row.amount, row.currency)
        try:
            found = scope.gateway.retrieve_payment_intent(pi_id)
        except GatewayError as exc:
            if not is_missing_resource(exc):
                raise
            report.add(
                Discrepancy(
                    "payments",
                    "missing_in_stripe",
                    pi_id,
                    "recorded in the ledger, unknown to Stripe",
                    ledger_amount=ledger_amount,
                    payment_intent_id=pi_id,
                )
            )
            continue
        known[pi_id] = found
        if found.status != "succeeded":
            report.add(
                Discrepancy(
                    "payments",
                    "missing_in_stripe",
                    pi_id,
                    f"recorded as paid in the ledger, Stripe says {found.status}",
                    stripe_amount=money(found.amount_received, found.currency),
                    ledger_amount=ledger_amount,
                    payment_intent_id=pi_id,
                )
            )
        elif money(found.amount_received or found.amount, found.currency) != ledger_amount:
            report.add(
                Discrepancy(
                    "payments",
                    "amount_mismatch",
                    pi_id,
                    "Stripe and the ledger disagree on the amount",
                    stripe_amount=money(found.amount_received, found.currency),
                    ledger_amount=ledger_amount,
                    payment_intent_id=pi_id,
                )
            )
    return known
