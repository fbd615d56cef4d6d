"""Transfers: transfers whose metadata names a payout against the payout requests and their
status; transfer payouts in flight locally are looked up at Stripe one by one."""

from __future__ import annotations

from typing import Any

from mentorpay.db import read_connection
from mentorpay.errors import GatewayError
from mentorpay.gateway import GatewayTransfer, is_missing_resource
from mentorpay.money import Money
from mentorpay.payouts import storage as payout_storage
from mentorpay.payouts.rules import METADATA_PAYOUT_ID
from mentorpay.reconcile._common import Found, Scope, money
from mentorpay.reconcile.report import Discrepancy, KindReport

__all__ = ["check_transfers"]


def check_transfers(
    scope: Scope,
    *,
    report: KindReport,
    events: Found,
) -> None:
    """Compare payout transfers of the period."""
    transfers = [
        t
        for t in scope.gateway.list_transfers(created_gte=scope.since, created_lt=scope.until)
        if t.metadata.get(METADATA_PAYOUT_ID, "").isdigit()
    ]
    report.checked = len(transfers)
    with read_connection(scope.engine) as conn:
        ids = sorted({int(t.metadata[METADATA_PAYOUT_ID]) for t in transfers})
        by_id = payout_storage.by_ids(conn, ids)
        by_transfer = payout_storage.by_transfer_ids(conn, [t.id for t in transfers])
        recent = payout_storage.transfers_in_flight(conn, scope.since, scope.until)
    for transfer in transfers:
        payout = by_transfer.get(transfer.id) or by_id.get(
            int(transfer.metadata[METADATA_PAYOUT_ID])
        )
        _compare_transfer(transfer, payout, report, events)
    seen = {t.id for t in transfers}
    named = {int(t.metadata[METADATA_PAYOUT_ID]) for t in transfers}
    for row in recent:
        if row.transfer_id in seen or row.id in named:
            continue
        ledger_amount = Money(row.amount, row.currency)
        if row.transfer_id is None:
            report.add(
                Discrepancy(
                    "transfers",
                    "missing_in_stripe",
                    f"payout {row.id}",
                    "processing, but no transfer for it was found at Stripe in the period; "
                    "call execute() again (the same idempotency key replays it)",
                    ledger_amount=ledger_amount,
                    payout_id=row.id,
                )
            )
            continue
        try:
            found = scope.gateway.retrieve_transfer(row.transfer_id)
        except GatewayError as exc:
            if not is_missing_resource(exc):
                raise
            report.add(
                Discrepancy(
                    "transfers",
                    "missing_in_stripe",
                    row.transfer_id,
                    f"payout {row.id} is {row.status} with a transfer Stripe does not know",
                    ledger_amount=ledger_amount,
                    payout_id=row.id,
                )
            )
            continue
        _compare_transfer(found, row, report, events)


def _compare_transfer(
    transfer: GatewayTransfer,
    row: Any,
    report: KindReport,
    events: Found,
) -> None:
    stripe_amount = money(transfer.amount, transfer.currency)
    if row is None:
        report.add(
            Discrepancy(
                "transfers",
                "missing_in_ledger",
                transfer.id,
                f"transfer names payout {transfer.metadata.get(METADATA_PAYOUT_ID)}, which "
                "mentorpay does not have",
                stripe_amount=stripe_amount,
            )
        )
        return
    ledger_amount = Money(row.amount, row.currency)
    if ledger_amount != stripe_amount:
        report.add(
            Discrepancy(
                "transfers",
                "amount_mismatch",
                transfer.id,
                f"payout {row.id} is {ledger_amount}, its transfer {stripe_amount}",
                stripe_amount=stripe_amount,
                ledger_amount=ledger_amount,
                payout_id=row.id,
            )
        )
        return
    fully_reversed = transfer.reversed or (
        transfer.amount > 0 and transfer.amount_reversed >= transfer.amount
    )
    expected: tuple[str, ...]
    if fully_reversed:
        expected, event_type, suffix = ("reversed", "failed"), "transfer.reversed", "reversed"
    else:
        expected, event_type, suffix = (
            ("paid", "reversed", "failed"),
            "transfer.created",
            "created",
        )
    if row.status in expected:
        if transfer.amount_reversed and not fully_reversed:
            report.add(
                Discrepancy(
                    "transfers",
                    "amount_mismatch",
                    transfer.id,
                    f"{money(transfer.amount_reversed, transfer.currency)} of the transfer "
                    f"for payout {row.id} was reversed; mentorpay only applies full reversals",
                    stripe_amount=stripe_amount,
                    ledger_amount=ledger_amount,
                    payout_id=row.id,
                )
            )
        return
    if row.status not in ("processing", "paid"):
        report.add(
            Discrepancy(
                "transfers",
                "missing_in_ledger",
                transfer.id,
                f"Stripe transferred the money of payout {row.id}, which mentorpay has as "
                f"{row.status}",
                stripe_amount=stripe_amount,
                ledger_amount=ledger_amount,
                payout_id=row.id,
            )
        )
        return
    item = Discrepancy(
        "transfers",
        "missing_in_ledger",
        transfer.id,
        f"payout {row.id} is {row.status}, its transfer is "
        f"{'reversed' if fully_reversed else 'paid'}",
        stripe_amount=stripe_amount,
        ledger_amount=ledger_amount,
        payout_id=row.id,
        event_type=event_type,
        event_id=f"evt_reconcile_{transfer.id}_{suffix}",
    )
    report.add(item)
    events.append((item, transfer.raw))
