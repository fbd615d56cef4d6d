"""PayoutService: the wiring of payout requests. Each operation locks the row, asks the rules
(:mod:`.rules`), writes (:mod:`.storage`) with its ledger posting in the same transaction, and
only then calls Stripe or tells the host (see the package docstring for the modes)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.accounts import AccountService
from mentorpay.config import MentorpayConfig
from mentorpay.db import check_id, read_connection, run_in_transaction
from mentorpay.errors import (
    GatewayError,
    IdempotencyConflictError,
    InvalidRequestError,
    NotAuthorizedError,
    PayoutStateError,
)
from mentorpay.events import Effect, Handler
from mentorpay.gateway import (
    PaymentGateway,
    outcome_unknown,
    payout_reversal_idempotency_key,
    payout_transfer_idempotency_key,
)
from mentorpay.ledger import LedgerService
from mentorpay.ledger import queries as ledger_queries
from mentorpay.money import Money
from mentorpay.outbox import Outbox
from mentorpay.payouts import storage
from mentorpay.payouts.rules import (
    METADATA_PAYOUT_ID,
    SETTLED_STATUSES,
    SETTLEMENT,
    can_transition,
    check_available,
    check_list_query,
    check_request,
    settled_effect,
    transition_refusal,
)
from mentorpay.payouts.transfer_events import TransferEvents
from mentorpay.payouts.views import PayoutView

__all__ = ["PayoutService"]

logger = logging.getLogger("mentorpay.payouts")


class PayoutService:
    """Payout requests and their settlement; see :mod:`mentorpay.payouts` for the rules."""

    def __init__(
        self,
        config: MentorpayConfig,
        engine: Engine,
        ledger: LedgerService,
        gateway: PaymentGateway | None,
        *,
        clock: Callable[[], datetime] = utcnow,
        emit: Callable[[list[Effect]], None] | None = None,
        outbox: Outbox | None = None,
        accounts: AccountService | None = None,
    ) -> None:
        self._config = config
        self._engine = engine
        self._ledger = ledger
        self._gateway = gateway
        self._clock = clock
        self._notify = _Notifier(emit, outbox)
        self._accounts = accounts
        self._transfer_events = TransferEvents(
            self._transition, livemode=config.livemode, clock=clock
        )

    def _tx(self, fn: Callable[[Connection], Any]) -> Any:
        return run_in_transaction(self._engine, fn, retries=self._config.db_retries)

    # -- queries --------------------------------------------------------------------------------

    def get(self, payout_id: int, *, mentor_id: str | None = None) -> PayoutView:
        """One payout request. With ``mentor_id``, another mentor's request is refused
        (:class:`NotAuthorizedError`)."""
        with read_connection(self._engine) as conn:
            row = storage.row(conn, payout_id)
        view = PayoutView.from_row(row)
        _authorize(view, mentor_id)
        return view

    def list(
        self, mentor_id: str | None = None, status: str | None = None, *, limit: int = 100
    ) -> list[PayoutView]:
        """Payout requests, newest first, optionally of one mentor and/or in one status."""
        check_list_query(status, limit)
        with read_connection(self._engine) as conn:
            rows = storage.list_rows(conn, mentor_id, status, limit)
        return [PayoutView.from_row(r) for r in rows]

    # -- request --------------------------------------------------------------------------------

    def request(self, mentor_id: str, amount: Money, destination: str | None = None) -> PayoutView:
        """Reserve ``amount`` of the mentor's available balance for a payout, atomically.

        Refused with :class:`InvalidAmountError` when not positive, below ``config.min_payout``
        or breaking Stripe's payout rules (HUF and TWD in multiples of 100);
        :class:`MentorNotFoundError` when the mentor never earned in that currency;
        :class:`InsufficientBalanceError` when it exceeds available or available is negative.
        ``destination``: the mentor's connected account (``acct_...``), required in
        ``stripe_transfer`` mode (default: mentorpay's account of the mentor, enabled or not:
        :meth:`execute` waits for that); free text (a bank label) in manual mode.
        """
        method = self._config.payout_mode
        if method == "stripe_transfer" and self._accounts is not None:
            destination = self._accounts.destination(
                mentor_id, destination, purpose="payouts", require_ready=False
            )
        check_request(
            amount,
            min_payout=self._config.min_payout,
            method=method,
            mentor_id=mentor_id,
            destination=destination,
        )

        def do(conn: Connection) -> PayoutView:
            check_available(
                ledger_queries.available(conn, mentor_id, amount.currency), mentor_id, amount
            )
            payout_id = storage.insert_request(
                conn,
                mentor_id=mentor_id,
                amount=amount,
                method=method,
                destination=destination,
                now=self._clock(),
            )
            # The conditional update inside is the guard: a concurrent request that would
            # overdraw fails here and rolls back its payout row with it.
            self._ledger.reserve_payout(conn, payout_id, mentor_id, amount)
            return PayoutView.from_row(storage.row(conn, payout_id))

        view: PayoutView = self._tx(do)
        logger.info("payout %s requested: %s for mentor %s", view.id, amount, mentor_id)
        return view

    # -- transitions ----------------------------------------------------------------------------

    def approve(self, payout_id: int, *, approver: str) -> PayoutView:
        """requested -> approved. A mentor cannot approve their own payout."""
        if not approver:
            raise InvalidRequestError("approve needs the approver's id", field="approver")

        def do(conn: Connection) -> PayoutView:
            row = storage.row(conn, payout_id, lock=True)
            if row.mentor_id == approver:
                raise NotAuthorizedError(
                    "a mentor cannot approve their own payout", payout_id=payout_id
                )
            now = self._clock()
            return self._transition(conn, row, "approved", approved_at=now, approved_by=approver)

        view: PayoutView = self._tx(do)
        logger.info("payout %s approved by %s", payout_id, approver)
        return view

    def cancel(self, payout_id: int, *, mentor_id: str | None = None) -> PayoutView:
        """requested | approved -> cancelled; the money returns to available. With
        ``mentor_id`` (a mentor cancelling their own request), another mentor's is refused."""

        def do(conn: Connection) -> PayoutView:
            row = storage.row(conn, payout_id, lock=True)
            _authorize(PayoutView.from_row(row), mentor_id)
            return self._transition(conn, row, "cancelled")

        result: PayoutView = self._tx(do)
        return result

    def execute(self, payout_id: int) -> PayoutView:
        """Pay an approved payout: a Stripe transfer (``stripe_transfer`` mode) or, in manual
        mode, mark it ``processing`` while the platform sends the bank transfer.

        Calling it again on a ``processing`` transfer payout whose transfer is not yet recorded
        retries the same transfer (same idempotency key); on one already sent it returns it.
        An approved payout to a mentorpay-onboarded account that cannot receive payouts yet is
        refused (:class:`AccountNotReadyError`, 409) and stays approved until it can.
        """
        if self._accounts is not None:
            _require_ready(self._accounts, self.get(payout_id))

        def claim(conn: Connection) -> PayoutView:
            row = storage.row(conn, payout_id, lock=True)
            if row.method == "stripe_transfer":
                _require_gateway(self._gateway)  # before the state changes, not after
            if row.status == "processing":
                # Executed before: return it, or retry its unfinished transfer below.
                return PayoutView.from_row(row)
            return self._transition(conn, row, "processing")

        view: PayoutView = self._tx(claim)
        if view.method == "manual" or view.transfer_id is not None or view.status != "processing":
            return view
        gateway = _require_gateway(self._gateway)
        assert view.destination is not None  # enforced by request() in stripe_transfer mode
        try:
            transfer = gateway.create_transfer(
                amount=view.amount,
                destination=view.destination,
                idempotency_key=payout_transfer_idempotency_key(view.id),
                metadata={METADATA_PAYOUT_ID: str(view.id), "mentor_id": view.mentor_id},
                transfer_group=f"mentorpay-payout-{view.id}",
                description=f"mentorpay payout {view.id}",
            )
        except GatewayError as exc:
            if exc.retryable or outcome_unknown(exc) or isinstance(exc, IdempotencyConflictError):
                # Stripe may have acted (or asked us to slow down, or a concurrent execute holds
                # the key): stay processing, so nobody can cancel while money may be moving;
                # execute() again replays the same key.
                logger.warning("payout %s transfer outcome unknown: %s", payout_id, exc)
                raise
            self._fail_after_refusal(payout_id, exc)
            self._notify.settled(self.get(payout_id))
            raise
        return self._record_transfer(payout_id, transfer.id)

    def mark_paid(self, payout_id: int, *, reference: str) -> PayoutView:
        """Manual mode: the platform's bank transfer went out (``reference`` identifies it and
        must be unique). approved | processing -> paid; reserved -> withdrawn."""
        if not reference or not reference.strip():
            raise InvalidRequestError("mark_paid needs the bank transfer reference")
        check_id(reference, field="reference")

        def do(conn: Connection) -> PayoutView:
            row = storage.row(conn, payout_id, lock=True)
            _require_manual(row, "mark_paid")
            clash = storage.reference_holder(conn, reference, payout_id)
            if clash is not None:
                raise InvalidRequestError(
                    f"reference {reference!r} already records payout {clash}",
                    reference=reference,
                )
            view = self._transition(
                conn, row, "paid", reference=reference, settled_at=self._clock()
            )
            return self._notify.stage(conn, view)

        result: PayoutView = self._tx(do)
        return self._notify.settled(result)

    def mark_failed(self, payout_id: int, *, reason: str) -> PayoutView:
        """Manual mode: the bank transfer failed. processing -> failed; money back to
        available."""

        def do(conn: Connection) -> PayoutView:
            row = storage.row(conn, payout_id, lock=True)
            _require_manual(row, "mark_failed")
            view = self._transition(
                conn, row, "failed", failure_reason=reason, settled_at=self._clock()
            )
            return self._notify.stage(conn, view)

        result: PayoutView = self._tx(do)
        return self._notify.settled(result)

    def reverse(self, payout_id: int, *, reason: str | None = None) -> PayoutView:
        """Take a paid payout back. Transfer payouts: ask Stripe to reverse the transfer (the
        ``transfer.reversed`` webhook then moves it to ``reversed``). Manual payouts: the
        money came back to the platform's bank: paid -> reversed now."""
        view = self.get(payout_id)
        if not can_transition(view.status, "reversed"):
            raise PayoutStateError(
                f"payout {payout_id} is {view.status}; only a paid payout can be reversed",
                payout_id=payout_id,
                status=view.status,
            )
        if view.method == "manual":

            def do(conn: Connection) -> PayoutView:
                row = storage.row(conn, payout_id, lock=True)
                view = self._transition(conn, row, "reversed", failure_reason=reason)
                return self._notify.stage(conn, view)

            result: PayoutView = self._tx(do)
            return self._notify.settled(result)
        assert view.transfer_id is not None  # paid transfer payouts always have one
        _require_gateway(self._gateway).create_transfer_reversal(
            view.transfer_id,
            idempotency_key=payout_reversal_idempotency_key(payout_id),
            metadata={METADATA_PAYOUT_ID: str(payout_id), "reason": reason or ""},
        )
        return self.get(payout_id)

    # -- webhooks -------------------------------------------------------------------------------

    def webhook_handlers(self) -> dict[str, Handler]:
        """The transfer-event handlers, for ``WebhookProcessor.register`` (they run in its
        transaction and never commit); see :mod:`mentorpay.payouts.transfer_events`."""
        return self._transfer_events.handlers()

    # -- plumbing -------------------------------------------------------------------------------

    def _transition(
        self, conn: Connection, row: Row[Any], target: str, **values: Any
    ) -> PayoutView:
        """Move ``row`` to ``target`` if the state machine allows it, posting the money
        movement in the same transaction. The UPDATE is conditional on the status read, so a
        concurrent transition makes this one fail instead of both applying."""
        source = row.status
        refusal = transition_refusal(row.id, source, target, row.method)
        if refusal is not None:
            raise refusal
        if not storage.update_status(
            conn, row.id, source, target, {"updated_at": self._clock(), **values}
        ):
            raise PayoutStateError(
                f"payout {row.id} changed concurrently; it is no longer {source}",
                payout_id=row.id,
                status=source,
            )
        outcome = SETTLEMENT.get(target)
        if outcome is not None:
            self._ledger.settle_payout(
                conn, row.id, row.mentor_id, Money(row.amount, row.currency), outcome=outcome
            )
        logger.info("payout %s: %s -> %s", row.id, source, target)
        return PayoutView.from_row(storage.row(conn, row.id))

    def _fail_after_refusal(self, payout_id: int, exc: GatewayError) -> None:
        def do(conn: Connection) -> None:
            row = storage.row(conn, payout_id, lock=True)
            if row.status == "processing" and row.transfer_id is None:
                view = self._transition(
                    conn, row, "failed", failure_reason=exc.message, settled_at=self._clock()
                )
                self._notify.stage(conn, view)

        self._tx(do)

    def _record_transfer(self, payout_id: int, transfer_id: str) -> PayoutView:
        def do(conn: Connection) -> PayoutView:
            storage.record_transfer(conn, payout_id, transfer_id, self._clock())
            # If nothing matched, the transfer webhook already recorded (and settled) it.
            return PayoutView.from_row(storage.row(conn, payout_id))

        result: PayoutView = self._tx(do)
        return result


class _Notifier:
    """Tells the host a payout settled (paid, failed or reversed).

    Settlements made by the service (manual mode, refused transfers) reach the host's
    after-commit callbacks through the same path as those settled by webhooks. With an outbox
    the effect is stored in the settling transaction, so a crash cannot lose it.
    """

    def __init__(self, emit: Callable[[list[Effect]], None] | None, outbox: Outbox | None) -> None:
        self._emit = emit
        self._outbox = outbox

    def stage(self, conn: Connection, view: PayoutView) -> PayoutView:
        """In the settling transaction: store the payout_settled effect in the outbox."""
        if self._outbox is not None and view.status in SETTLED_STATUSES:
            self._outbox.stage(conn, [settled_effect(view)])
        return view

    def settled(self, view: PayoutView) -> PayoutView:
        """After commit: deliver the payout_settled effect (outbox, else ``emit``)."""
        if view.status in SETTLED_STATUSES:
            if self._outbox is not None:
                self._outbox.deliver([settled_effect(view)])
            elif self._emit is not None:
                self._emit([settled_effect(view)])
        return view


def _require_gateway(gateway: PaymentGateway | None) -> PaymentGateway:
    if gateway is None:
        raise InvalidRequestError(
            "stripe_transfer payouts need a payment gateway; none is configured"
        )
    return gateway


def _require_manual(row: Row[Any], action: str) -> None:
    if row.method != "manual":
        raise PayoutStateError(
            f"{action} is for manual payouts; payout {row.id} is paid by Stripe transfer "
            "and settles from Stripe's transfer webhooks",
            payout_id=row.id,
            method=row.method,
        )


def _authorize(view: PayoutView, mentor_id: str | None) -> None:
    if mentor_id is not None and view.mentor_id != mentor_id:
        raise NotAuthorizedError("this payout request belongs to another mentor", payout_id=view.id)


def _require_ready(accounts: AccountService, view: PayoutView) -> None:
    """Refuse to execute a transfer to an onboarded account that cannot receive payouts yet."""
    if view.method == "stripe_transfer" and view.status == "approved":
        accounts.destination(
            view.mentor_id, view.destination, purpose="payouts", require_ready=True
        )
