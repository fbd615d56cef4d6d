"""Reconciler: runs the four comparisons over a period and, with ``apply``, records what the
ledger lacks by replaying Stripe's own objects as events (see :mod:`mentorpay.reconcile`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from mentorpay._clock import utcnow
from mentorpay.config import MentorpayConfig
from mentorpay.errors import InvalidRequestError, MentorpayError, PaymentNotFoundError
from mentorpay.gateway import PaymentGateway
from mentorpay.ledger import LedgerService
from mentorpay.reconcile._common import Found, Scope
from mentorpay.reconcile.disputes import check_disputes
from mentorpay.reconcile.fees import FeeToPost, check_fees
from mentorpay.reconcile.payments import check_payments
from mentorpay.reconcile.refunds import check_refunds
from mentorpay.reconcile.report import (
    RECONCILE_KINDS,
    AppliedEvent,
    Discrepancy,
    KindReport,
    ReconcileKind,
    ReconcileReport,
)
from mentorpay.reconcile.runs import record_run
from mentorpay.reconcile.transfers import check_transfers

__all__ = ["Reconciler"]

logger = logging.getLogger("mentorpay.reconcile")


def _no_progress(done: int, total: int, label: str) -> None:
    del done, total, label


class Reconciler:
    """Compares Stripe with the ledger; see the module docstring.

    ``apply_event`` takes a Stripe-shaped event dict and applies it through the webhook
    handlers without a signature check (``WebhookProcessor.process_trusted``).
    """

    def __init__(
        self,
        config: MentorpayConfig,
        engine: Engine,
        gateway: PaymentGateway,
        ledger: LedgerService,
        apply_event: Callable[[Mapping[str, Any]], Any],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._engine = engine
        self._gateway = gateway
        self._ledger = ledger
        self._apply_event = apply_event
        self._clock = clock

    # -- entry point ----------------------------------------------------------------------------

    def run(
        self,
        since: datetime,
        until: datetime | None = None,
        *,
        apply: bool = False,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> ReconcileReport:
        """Compare the period ``[since, until)`` (until defaults to now); with ``apply``,
        record what the ledger lacks (events replayed, Stripe's fees posted). Stripe errors
        propagate as ``GatewayError``.

        ``progress(done, total, label)`` follows the five comparisons ("reconciling") and
        then the facts applied ("applying")."""
        report_progress = progress or _no_progress
        end = until if until is not None else self._clock()
        for name, value in (("since", since), ("until", end)):
            if value.tzinfo is None:
                raise InvalidRequestError(f"{name} must be an aware datetime (tzinfo=UTC)")
        if end <= since:
            raise InvalidRequestError("until must be after since")
        kinds: dict[ReconcileKind, KindReport] = {kind: KindReport() for kind in RECONCILE_KINDS}
        events: Found = []
        # The fee comparison runs (and counts as a stage) only when configured.
        stages = len(RECONCILE_KINDS) - (0 if self._config.reconcile_fees else 1)
        report_progress(0, stages, "reconciling")
        scope = Scope(self._gateway, self._engine, since, end)
        ours = check_payments(scope, report=kinds["payments"], events=events)
        report_progress(1, stages, "reconciling")
        check_refunds(scope, ours=ours, report=kinds["refunds"], events=events)
        report_progress(2, stages, "reconciling")
        check_disputes(scope, ours=ours, report=kinds["disputes"], events=events)
        report_progress(3, stages, "reconciling")
        check_transfers(scope, report=kinds["transfers"], events=events)
        # Payments this run's events record have their fees checked by the next run.
        fees: list[FeeToPost] = []
        if self._config.reconcile_fees:
            report_progress(4, stages, "reconciling")
            check_fees(scope, report=kinds["fees"], to_post=fees)
        report_progress(stages, stages, "reconciling")
        applied: list[AppliedEvent] = []
        if apply:
            todo = len(events) + len(fees)
            for done, (item, obj) in enumerate(events, start=1):
                applied.append(self._apply(item, obj))
                report_progress(done, todo, "applying")
            for done, fee in enumerate(fees, start=len(events) + 1):
                applied.append(self._post_fee(fee))
                report_progress(done, todo, "applying")
        report = ReconcileReport(since, end, apply, kinds, applied)
        # Kept for the operator dashboard ("last reconciliation"); the report is the answer.
        record_run(self._engine, report, self._clock(), self._config.db_retries)
        logger.info(
            "reconciled %s .. %s: %d differences, %d events applied",
            since,
            end,
            len(report.discrepancies),
            len(applied),
        )
        return report

    # -- applying -------------------------------------------------------------------------------

    def _event(self, item: Discrepancy, obj: Mapping[str, Any]) -> dict[str, Any]:
        assert item.event_type is not None
        assert item.event_id is not None
        return {
            "id": item.event_id,
            "object": "event",
            "type": item.event_type,
            "created": int(self._clock().timestamp()),
            "livemode": bool(obj.get("livemode", False)),
            "api_version": None,
            "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": dict(obj)},
        }

    def _post_fee(self, fee: FeeToPost) -> AppliedEvent:
        """Post one Stripe fee the ledger lacked (not an event: no webhook carries fees)."""
        key = f"stripe_fee:{fee.balance_transaction_id}"
        try:
            posting = self._ledger.record_stripe_fee(
                fee.payment_intent_id, fee.balance_transaction_id, fee.fee
            )
        except MentorpayError as exc:
            logger.error("reconcile could not post %s: %s", key, exc)
            return AppliedEvent(key, "stripe_fee", fee.balance_transaction_id, "error", exc.message)
        status = "success" if posting.created else "already_processed"
        return AppliedEvent(key, "stripe_fee", fee.balance_transaction_id, status)

    def _apply(self, item: Discrepancy, obj: Mapping[str, Any]) -> AppliedEvent:
        event = self._event(item, obj)
        try:
            result = self._apply_event(event)
        except MentorpayError as exc:
            # One fact failing must not stop the others; the report says which failed and the
            # next run retries it (its event id was not claimed, or is replayable).
            logger.error("reconcile could not apply %s: %s", item.event_id, exc)
            return AppliedEvent(
                event["id"], event["type"], item.object_id, "error", error=exc.message
            )
        status = result.get("status") if isinstance(result, Mapping) else None
        status = status if status is not None else getattr(result, "status", None)
        if item.kind == "payments" and item.payment_intent_id is not None:
            try:
                self._ledger.payment(item.payment_intent_id)
            except PaymentNotFoundError:
                status = f"{status} (not recorded yet)"
        return AppliedEvent(event["id"], event["type"], item.object_id, status)
