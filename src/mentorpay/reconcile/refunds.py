"""Refunds: the cumulative ``amount_refunded`` of each charge refunded at Stripe in the period,
or whose refunds the ledger applied in it, against the payment's ``amount_refunded``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mentorpay.db import read_connection
from mentorpay.errors import GatewayError
from mentorpay.gateway import (
    GatewayCharge,
    GatewayPaymentIntent,
    PaymentGateway,
    is_missing_resource,
)
from mentorpay.ledger.reports import payments_by_intent, payments_refunded
from mentorpay.reconcile._common import Found, Scope, money
from mentorpay.reconcile.report import Discrepancy, KindReport

__all__ = ["check_refunds"]


def check_refunds(
    scope: Scope,
    *,
    ours: Mapping[str, GatewayPaymentIntent | None],
    report: KindReport,
    events: Found,
) -> None:
    """Compare refunds of the period; ``ours``: payment intents known to be mentorpay's."""
    # Charges to check: those refunded at Stripe in the period, and those whose refunds the
    # ledger applied in the period; each is compared by its cumulative amount_refunded.
    charge_of: dict[str, str | None] = {}
    for refund in scope.gateway.list_refunds(created_gte=scope.since, created_lt=scope.until):
        if refund.payment_intent_id is not None:
            charge_of[refund.payment_intent_id] = refund.charge_id
    with read_connection(scope.engine) as conn:
        rows = payments_by_intent(conn, sorted(charge_of))
        for local in payments_refunded(conn, scope.since, scope.until):
            rows.setdefault(local.payment_intent_id, local)
            charge_of.setdefault(local.payment_intent_id, local.charge_id)
    for pi_id, known_charge in sorted(charge_of.items()):
        if pi_id not in ours and pi_id not in rows:
            continue  # a refund of a payment not made through mentorpay
        row = rows.get(pi_id)
        ledger_refunded = row.amount_refunded if row is not None else 0
        charge_id = known_charge or _latest_charge(scope.gateway, pi_id, ours.get(pi_id))
        charge: GatewayCharge | None = None
        if charge_id is not None:
            try:
                charge = scope.gateway.retrieve_charge(charge_id)
            except GatewayError as exc:
                if not is_missing_resource(exc):
                    raise
        if charge is None:
            if ledger_refunded:
                report.add(_missing_charge(pi_id, row))
            continue
        report.checked += 1
        _compare_refund(
            charge,
            pi_id,
            row=row,
            ledger_refunded=ledger_refunded,
            report=report,
            events=events,
        )


def _latest_charge(
    gateway: PaymentGateway, pi_id: str, known: GatewayPaymentIntent | None
) -> str | None:
    if known is None:
        try:
            known = gateway.retrieve_payment_intent(pi_id)
        except GatewayError as exc:
            if not is_missing_resource(exc):
                raise
            return None
    return known.latest_charge


def _missing_charge(pi_id: str, row: Any) -> Discrepancy:
    return Discrepancy(
        "refunds",
        "missing_in_stripe",
        pi_id,
        "the ledger applied refunds to a charge Stripe does not know",
        ledger_amount=money(row.amount_refunded, row.currency) if row is not None else None,
        payment_intent_id=pi_id,
    )


def _compare_refund(
    charge: GatewayCharge,
    pi_id: str,
    *,
    row: Any,
    ledger_refunded: int,
    report: KindReport,
    events: Found,
) -> None:
    stripe_amount = money(charge.amount_refunded, charge.currency)
    ledger_amount = money(ledger_refunded, charge.currency)
    if charge.amount_refunded > ledger_refunded:
        item = Discrepancy(
            "refunds",
            "missing_in_ledger",
            charge.id,
            f"Stripe refunded {stripe_amount} in total, the ledger applied {ledger_amount}"
            + ("" if row is not None else " (payment not recorded either)"),
            stripe_amount=stripe_amount,
            ledger_amount=ledger_amount,
            payment_intent_id=pi_id,
            event_type="charge.refunded",
            event_id=f"evt_reconcile_{charge.id}_refunded_{charge.amount_refunded}",
        )
        report.add(item)
        raw = dict(charge.raw)
        # The refund handler finds the payment through the charge's payment intent.
        raw.setdefault("payment_intent", pi_id)
        events.append((item, raw))
    elif charge.amount_refunded < ledger_refunded:
        report.add(
            Discrepancy(
                "refunds",
                "amount_mismatch",
                charge.id,
                f"the ledger applied {ledger_amount} of refunds, Stripe only {stripe_amount}",
                stripe_amount=stripe_amount,
                ledger_amount=ledger_amount,
                payment_intent_id=pi_id,
            )
        )
