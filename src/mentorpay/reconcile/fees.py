"""Stripe's fees: the processing fee of each payment recorded in the period and the fees of
each dispute opened in it, from their balance transactions, against what the ledger posted on
``stripe_fees``.

Fees are fetched here rather than at capture: webhooks stay free of Stripe calls (one
transaction, nothing slow under a row lock), and a charge's balance transaction may not exist
yet when ``checkout.session.completed`` arrives (bank debits). A payment's charge comes from
one listing of the period's charges (``balance_transaction`` is an id on each; a charge
outside the listing is asked of its payment intent), then one
``GET /v1/balance_transactions/txn_...`` per charge; a dispute's balance transactions arrive
expanded on the dispute itself, so they cost nothing more.

A fee the ledger lacks is ``missing_in_ledger`` and ``apply`` posts it; a posted fee that
differs from Stripe's is an ``amount_mismatch`` for a human. A fee settled in another currency
than its payment (a charge in EUR on a GBP platform) cannot be posted against it and is
reported as a mismatch naming both currencies.
"""

from __future__ import annotations

from dataclasses import dataclass

from mentorpay.db import read_connection
from mentorpay.errors import GatewayError
from mentorpay.gateway import GatewayBalanceTransaction, is_missing_resource
from mentorpay.ledger.queries import recorded_stripe_fees
from mentorpay.ledger.reports import payments_by_intent, payments_created
from mentorpay.money import Money
from mentorpay.reconcile._common import Scope, money
from mentorpay.reconcile.report import Discrepancy, KindReport

__all__ = ["FeeToPost", "check_fees"]


@dataclass(frozen=True, slots=True)
class FeeToPost:
    """A fee ``apply`` posts: the discrepancy and what the ledger is told."""

    item: Discrepancy
    payment_intent_id: str
    balance_transaction_id: str
    fee: Money


def check_fees(scope: Scope, *, report: KindReport, to_post: list[FeeToPost]) -> None:
    """Compare Stripe's fees of the period with the ledger's ``stripe_fees`` postings."""
    gateway = scope.gateway
    # Payment intent -> its balance transactions (charge first, then disputes).
    found: dict[str, list[GatewayBalanceTransaction]] = {}
    listed = list(gateway.list_charges(created_gte=scope.since, created_lt=scope.until))
    txn_of_charge = {c.id: c.balance_transaction_id for c in listed}
    charge_of_intent = {c.payment_intent_id: c.id for c in listed if c.payment_intent_id}
    with read_connection(scope.engine) as conn:
        rows = {r.payment_intent_id: r for r in payments_created(conn, scope.since, scope.until)}
    for pi_id, row in sorted(rows.items()):
        # A payment recorded from its Checkout Session may not know its charge yet.
        charge_id = row.charge_id or charge_of_intent.get(pi_id) or _latest_charge(scope, pi_id)
        if charge_id is None:
            continue
        txn_id = txn_of_charge.get(charge_id)
        if txn_id is None:
            txn_id = _charge_txn(scope, charge_id)
        if txn_id is not None:
            txn = gateway.retrieve_balance_transaction(txn_id)
            found.setdefault(pi_id, []).append(txn)
    disputes = list(gateway.list_disputes(created_gte=scope.since, created_lt=scope.until))
    with read_connection(scope.engine) as conn:
        intents = sorted({d.payment_intent_id for d in disputes if d.payment_intent_id})
        rows.update(payments_by_intent(conn, intents))
        for dispute in disputes:
            pi_id = dispute.payment_intent_id
            if pi_id is not None and pi_id in rows:
                found.setdefault(pi_id, []).extend(dispute.balance_transactions)
        recorded = recorded_stripe_fees(conn, [t.id for txns in found.values() for t in txns])
    for pi_id, txns in sorted(found.items()):
        currency = rows[pi_id].currency
        for txn in txns:
            report.checked += 1
            _compare(
                pi_id, currency, txn, posted=recorded.get(txn.id), report=report, to_post=to_post
            )


def _latest_charge(scope: Scope, pi_id: str) -> str | None:
    """The payment intent's charge, asked of Stripe (a charge outside the period's listing)."""
    try:
        return scope.gateway.retrieve_payment_intent(pi_id).latest_charge
    except GatewayError as exc:
        if not is_missing_resource(exc):
            raise
        return None


def _charge_txn(scope: Scope, charge_id: str) -> str | None:
    """The charge's balance transaction id, for a charge outside the period's listing."""
    try:
        return scope.gateway.retrieve_charge(charge_id).balance_transaction_id
    except GatewayError as exc:
        if not is_missing_resource(exc):
            raise
        return None


def _compare(
    pi_id: str,
    currency: str,
    txn: GatewayBalanceTransaction,
    *,
    posted: int | None,
    report: KindReport,
    to_post: list[FeeToPost],
) -> None:
    stripe_fee = money(txn.fee, txn.currency or currency)
    if txn.currency and txn.currency != currency:
        report.add(
            Discrepancy(
                "fees",
                "amount_mismatch",
                txn.id,
                f"Stripe's fee on {pi_id} is settled in {txn.currency}, the payment is in "
                f"{currency}: record it by hand",
                stripe_amount=stripe_fee,
                payment_intent_id=pi_id,
            )
        )
        return
    if posted is None:
        if txn.fee == 0:
            return  # nothing to post
        item = Discrepancy(
            "fees",
            "missing_in_ledger",
            txn.id,
            f"Stripe's {txn.type or 'fee'} fee on {pi_id} is not posted",
            stripe_amount=stripe_fee,
            payment_intent_id=pi_id,
        )
        report.add(item)
        to_post.append(FeeToPost(item, pi_id, txn.id, Money(txn.fee, currency)))
    elif posted != txn.fee:
        report.add(
            Discrepancy(
                "fees",
                "amount_mismatch",
                txn.id,
                f"the ledger posted a different fee for {pi_id} than Stripe kept",
                stripe_amount=stripe_fee,
                ledger_amount=money(posted, currency),
                payment_intent_id=pi_id,
            )
        )
