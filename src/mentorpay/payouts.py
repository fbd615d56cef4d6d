"""PayoutService: mentors withdraw what they have earned.

State machine (``TRANSITIONS``; anything else raises :class:`PayoutStateError`)::

    requested  -> approved    approve (by someone other than the mentor)
    requested  -> cancelled   cancel
    approved   -> cancelled   cancel
    approved   -> processing  execute
    approved   -> paid        mark_paid (manual payouts only)
    processing -> paid        transfer.created webhook; mark_paid (manual)
    processing -> failed      Stripe refused the transfer; transfer.reversed before it settled;
                              mark_failed (manual)
    paid       -> reversed    transfer.reversed webhook; reverse() (manual)

Money (ledger postings, in the same transaction as the state change):

* ``request``   available -> reserved (a conditional update: never above available, race-free)
* ``paid``      reserved -> withdrawn
* ``cancelled`` / ``failed``   reserved -> available
* ``reversed``  withdrawn -> available (the transfer came back from the mentor's account)

Two payout modes, fixed per request when it is made (``config.payout_mode``):

* ``stripe_transfer``: ``execute`` creates a Stripe transfer to the mentor's connected account
  under the key ``mentorpay:payout:<id>:transfer``. The row goes ``processing`` *before* the
  call, so it can no longer be cancelled while money may be moving. If Stripe refuses for good
  (invalid request, authentication) the payout becomes ``failed`` and the money returns to
  available (a new request gets a new key; Stripe may have stored the refusal under the old
  one). If the outcome is unknown, Stripe asked to slow down, or the key is busy with a
  concurrent execute, it stays ``processing`` and ``execute`` may simply be called again: the
  same key replays the same transfer. Settlement comes from Stripe's transfer webhooks, and
  only from the platform's own event for exactly that transfer (see
  :meth:`PayoutService.webhook_handlers`): metadata naming a payout is never enough.
* ``manual``: the platform pays by its own bank transfer, then calls ``mark_paid`` (or
  ``mark_failed`` if the bank returned it).

Stripe's ``payout.paid`` / ``payout.failed`` events are deliberately not handled: they concern
the connected account's own payout from its Stripe balance to its bank, after mentorpay's
obligation (the transfer into that account) is met.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import Engine, Row, and_, insert, or_, select, update
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.config import MentorpayConfig
from mentorpay.db import read_connection, run_in_transaction
from mentorpay.errors import (
    GatewayError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidAmountError,
    InvalidRequestError,
    MentorNotFoundError,
    NotAuthorizedError,
    PayoutNotFoundError,
    PayoutStateError,
)
from mentorpay.events import Effect, EventEnvelope, Handler, HandlerResult
from mentorpay.gateway import (
    GatewayTransfer,
    PaymentGateway,
    outcome_unknown,
    payout_reversal_idempotency_key,
    payout_transfer_idempotency_key,
)
from mentorpay.ledger import LedgerService
from mentorpay.models import balances_table as _balances
from mentorpay.models import payouts_table as _payouts
from mentorpay.money import Money, check_payout_amount
from mentorpay.outbox import Outbox

__all__ = [
    "PAYOUT_STATUSES",
    "TRANSITIONS",
    "PayoutService",
    "PayoutStatus",
    "PayoutView",
    "can_transition",
]

logger = logging.getLogger("mentorpay.payouts")


PayoutStatus = Literal[
    "requested", "approved", "processing", "paid", "failed", "cancelled", "reversed"
]
PAYOUT_STATUSES: Final[tuple[PayoutStatus, ...]] = (
    "requested",
    "approved",
    "processing",
    "paid",
    "failed",
    "cancelled",
    "reversed",
)

#: Every legal state change. ``approved -> paid`` is for manual payouts only.
TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "requested": frozenset({"approved", "cancelled"}),
    "approved": frozenset({"processing", "paid", "cancelled"}),
    "processing": frozenset({"paid", "failed"}),
    "paid": frozenset({"reversed"}),
    "failed": frozenset(),
    "cancelled": frozenset(),
    "reversed": frozenset(),
}

METADATA_PAYOUT_ID: Final = "payout_request_id"
_ID_MAX: Final = 255


def can_transition(source: str, target: str) -> bool:
    """Whether the state machine allows ``source -> target``."""
    return target in TRANSITIONS.get(source, frozenset())


def _check_id(name: str, value: str) -> None:
    # The columns hold 255 characters; refusing here beats a driver error from the INSERT.
    if not isinstance(value, str) or not value or len(value) > _ID_MAX:
        raise InvalidRequestError(
            f"{name} must be a non-empty string of at most {_ID_MAX} characters", field=name
        )


@dataclass(frozen=True, slots=True)
class PayoutView:
    """A payout request as the API shows it."""

    id: int
    mentor_id: str
    amount: Money
    status: str
    method: str
    destination: str | None
    transfer_id: str | None
    reference: str | None
    approved_by: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    approved_at: datetime | None
    settled_at: datetime | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> PayoutView:
        """Build from a ``mentorpay_payout_requests`` row."""
        m = row._mapping
        return cls(
            id=m["id"],
            mentor_id=m["mentor_id"],
            amount=Money(m["amount"], m["currency"]),
            status=m["status"],
            method=m["method"],
            destination=m["destination"],
            transfer_id=m["transfer_id"],
            reference=m["reference"],
            approved_by=m["approved_by"],
            failure_reason=m["failure_reason"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            approved_at=m["approved_at"],
            settled_at=m["settled_at"],
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for adapters."""
        return {
            "id": self.id,
            "mentor_id": self.mentor_id,
            "amount": self.amount.amount,
            "currency": self.amount.currency,
            "amount_display": str(self.amount),
            "status": self.status,
            "method": self.method,
            "destination": self.destination,
            "transfer_id": self.transfer_id,
            "reference": self.reference,
            "approved_by": self.approved_by,
            "failure_reason": self.failure_reason,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "approved_at": self.approved_at.isoformat() if self.approved_at else None,
            "settled_at": self.settled_at.isoformat() if self.settled_at else None,
        }


_SETTLEMENT: Final[Mapping[str, Literal["paid", "returned", "reversed"]]] = {
    "paid": "paid",
    "cancelled": "returned",
    "failed": "returned",
    "reversed": "reversed",
}


class PayoutService:
    """Payout requests and their settlement; see the module docstring for the rules."""

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
    ) -> None:
        self._config = config
        self._engine = engine
        self._ledger = ledger
        self._gateway = gateway
        self._clock = clock
        # Settlements made here (manual mode, refused transfers) reach the host's after-commit
        # callbacks through the same path as those settled by webhooks. With an outbox the
        # effect is stored in the settling transaction, so a crash cannot lose it.
        self._emit = emit
        self._outbox = outbox

    def _stage(self, conn: Connection, view: PayoutView) -> PayoutView:
        """In the settling transaction: store the payout_settled effect in the outbox."""
        if self._outbox is not None and view.status in ("paid", "failed", "reversed"):
            self._outbox.stage(conn, [self._effect(view)])
        return view

    def _settled(self, view: PayoutView) -> PayoutView:
        """After commit: tell the host a payout settled (paid, failed or reversed)."""
        if view.status in ("paid", "failed", "reversed"):
            if self._outbox is not None:
                self._outbox.deliver([self._effect(view)])
            elif self._emit is not None:
                self._emit([self._effect(view)])
        return view

    def _tx(self, fn: Callable[[Connection], Any]) -> Any:
        return run_in_transaction(self._engine, fn, retries=self._config.db_retries)

    # -- queries --------------------------------------------------------------------------------

    def get(self, payout_id: int, *, mentor_id: str | None = None) -> PayoutView:
        """One payout request. With ``mentor_id``, another mentor's request is refused
        (:class:`NotAuthorizedError`)."""
        with read_connection(self._engine) as conn:
            row = self._row(conn, payout_id)
        view = PayoutView.from_row(row)
        self._authorize(view, mentor_id)
        return view

    def list(
        self, mentor_id: str | None = None, status: str | None = None, *, limit: int = 100
    ) -> list[PayoutView]:
        """Payout requests, newest first, optionally of one mentor and/or in one status."""
        if status is not None and status not in PAYOUT_STATUSES:
            raise InvalidRequestError(
                f"status must be one of {list(PAYOUT_STATUSES)}, got {status!r}", status=status
            )
        if not 1 <= limit <= 500:
            raise InvalidRequestError("limit must be between 1 and 500", limit=limit)
        query = select(_payouts)
        if mentor_id is not None:
            query = query.where(_payouts.c.mentor_id == mentor_id)
        if status is not None:
            query = query.where(_payouts.c.status == status)
        with read_connection(self._engine) as conn:
            rows = conn.execute(query.order_by(_payouts.c.id.desc()).limit(limit)).all()
        return [PayoutView.from_row(r) for r in rows]

    # -- request --------------------------------------------------------------------------------

    def request(self, mentor_id: str, amount: Money, destination: str | None = None) -> PayoutView:
        """Reserve ``amount`` of the mentor's available balance for a payout, atomically.

        Refused with :class:`InvalidAmountError` when not positive, below ``config.min_payout``
        or breaking Stripe's payout rules (HUF and TWD in multiples of 100);
        :class:`MentorNotFoundError` when the mentor never earned in that currency;
        :class:`InsufficientBalanceError` when it exceeds available or available is negative.
        ``destination``: the mentor's connected account (``acct_...``), required in
        ``stripe_transfer`` mode; free text (a bank label) in manual mode.
        """
        if not isinstance(amount, Money):
            raise TypeError(f"amount must be Money, not {type(amount).__name__}")
        if not amount.is_positive():
            raise InvalidAmountError(
                f"a payout must be positive, got {amount}",
                amount=amount.amount,
                currency=amount.currency,
                rule="positive",
            )
        check_payout_amount(amount)
        minimum = self._config.min_payout.get(amount.currency, 0)
        if amount.amount < minimum:
            raise InvalidAmountError(
                f"the smallest payout is {Money(minimum, amount.currency)}, requested {amount}",
                amount=amount.amount,
                currency=amount.currency,
                minimum=minimum,
                rule="below_minimum",
            )
        method = self._config.payout_mode
        _check_id("mentor_id", mentor_id)
        if destination is not None:
            _check_id("destination", destination)
        if method == "stripe_transfer" and (
            destination is None or not destination.startswith("acct_")
        ):
            raise InvalidRequestError(
                "a Stripe transfer payout needs the mentor's connected account id "
                "(destination='acct_...')",
                field="destination",
            )

        def do(conn: Connection) -> PayoutView:
            balance = conn.execute(
                select(_balances.c.available).where(
                    and_(
                        _balances.c.mentor_id == mentor_id,
                        _balances.c.currency == amount.currency,
                    )
                )
            ).first()
            if balance is None:
                raise MentorNotFoundError(
                    f"mentor {mentor_id} has no {amount.currency} balance",
                    mentor_id=mentor_id,
                    currency=amount.currency,
                )
            if balance.available < 0:
                raise InsufficientBalanceError(
                    f"the available balance is {Money(balance.available, amount.currency)}: "
                    "the mentor owes the platform after refunds, so no payout until it is "
                    "positive again",
                    mentor_id=mentor_id,
                    requested=amount.amount,
                    available=balance.available,
                    currency=amount.currency,
                )
            now = self._clock()
            payout_id = conn.execute(
                insert(_payouts)
                .values(
                    mentor_id=mentor_id,
                    currency=amount.currency,
                    amount=amount.amount,
                    status="requested",
                    method=method,
                    destination=destination,
                    transfer_id=None,
                    reference=None,
                    approved_by=None,
                    failure_reason=None,
                    created_at=now,
                    updated_at=now,
                    approved_at=None,
                    settled_at=None,
                )
                .returning(_payouts.c.id)
            ).scalar_one()
            # The conditional update inside is the guard: a concurrent request that would
            # overdraw fails here and rolls back its payout row with it.
            self._ledger.reserve_payout(conn, payout_id, mentor_id, amount)
            return PayoutView.from_row(self._row(conn, payout_id))

        view: PayoutView = self._tx(do)
        logger.info("payout %s requested: %s for mentor %s", view.id, amount, mentor_id)
        return view

    # -- transitions ----------------------------------------------------------------------------

    def approve(self, payout_id: int, *, approver: str) -> PayoutView:
        """requested -> approved. A mentor cannot approve their own payout."""
        if not approver:
            raise InvalidRequestError("approve needs the approver's id", field="approver")

        def do(conn: Connection) -> PayoutView:
            row = self._row(conn, payout_id, lock=True)
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
            row = self._row(conn, payout_id, lock=True)
            self._authorize(PayoutView.from_row(row), mentor_id)
            return self._transition(conn, row, "cancelled")

        result: PayoutView = self._tx(do)
        return result

    def execute(self, payout_id: int) -> PayoutView:
        """Pay an approved payout: a Stripe transfer (``stripe_transfer`` mode) or, in manual
        mode, mark it ``processing`` while the platform sends the bank transfer.

        Calling it again on a ``processing`` transfer payout whose transfer is not yet recorded
        retries the same transfer (same idempotency key); on one already sent it returns it.
        """

        def claim(conn: Connection) -> PayoutView:
            row = self._row(conn, payout_id, lock=True)
            if row.method == "stripe_transfer":
                self._require_gateway()  # before the state changes, not after
            if row.status == "processing":
                # Executed before: return it, or retry its unfinished transfer below.
                return PayoutView.from_row(row)
            return self._transition(conn, row, "processing")

        view: PayoutView = self._tx(claim)
        if view.method == "manual" or view.transfer_id is not None or view.status != "processing":
            return view
        gateway = self._require_gateway()
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
            self._settled(self.get(payout_id))
            raise
        return self._record_transfer(payout_id, transfer)

    def mark_paid(self, payout_id: int, *, reference: str) -> PayoutView:
        """Manual mode: the platform's bank transfer went out (``reference`` identifies it and
        must be unique). approved | processing -> paid; reserved -> withdrawn."""
        if not reference or not reference.strip():
            raise InvalidRequestError("mark_paid needs the bank transfer reference")
        _check_id("reference", reference)

        def do(conn: Connection) -> PayoutView:
            row = self._row(conn, payout_id, lock=True)
            self._require_manual(row, "mark_paid")
            clash = conn.execute(
                select(_payouts.c.id).where(
                    and_(_payouts.c.reference == reference, _payouts.c.id != payout_id)
                )
            ).first()
            if clash is not None:
                raise InvalidRequestError(
                    f"reference {reference!r} already records payout {clash.id}",
                    reference=reference,
                )
            view = self._transition(
                conn, row, "paid", reference=reference, settled_at=self._clock()
            )
            return self._stage(conn, view)

        result: PayoutView = self._tx(do)
        return self._settled(result)

    def mark_failed(self, payout_id: int, *, reason: str) -> PayoutView:
        """Manual mode: the bank transfer failed. processing -> failed; money back to
        available."""

        def do(conn: Connection) -> PayoutView:
            row = self._row(conn, payout_id, lock=True)
            self._require_manual(row, "mark_failed")
            view = self._transition(
                conn, row, "failed", failure_reason=reason, settled_at=self._clock()
            )
            return self._stage(conn, view)

        result: PayoutView = self._tx(do)
        return self._settled(result)

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
                row = self._row(conn, payout_id, lock=True)
                view = self._transition(conn, row, "reversed", failure_reason=reason)
                return self._stage(conn, view)

            result: PayoutView = self._tx(do)
            return self._settled(result)
        assert view.transfer_id is not None  # paid transfer payouts always have one
        self._require_gateway().create_transfer_reversal(
            view.transfer_id,
            idempotency_key=payout_reversal_idempotency_key(payout_id),
            metadata={METADATA_PAYOUT_ID: str(payout_id), "reason": reason or ""},
        )
        return self.get(payout_id)

    # -- webhooks -------------------------------------------------------------------------------

    def webhook_handlers(self) -> dict[str, Handler]:
        """Handlers for the webhook processor (they run in its transaction, never commit).

        * ``transfer.created`` / ``transfer.updated``: a transfer of ours exists, so its
          ``processing`` payout is ``paid`` (reserved -> withdrawn). If the transfer shows as
          fully reversed, it is handled like ``transfer.reversed``.
        * ``transfer.reversed`` (full reversal): ``paid -> reversed`` (withdrawn -> available),
          or ``processing -> failed`` (reserved -> available) if it never counted as paid.

        A transfer event names its payout by the recorded transfer id or by metadata (the
        webhook may beat ``execute`` to recording the id), but it settles that payout only when
        the transfer (in the configured mode) has the payout's destination, amount, currency and
        id (once recorded). Events from a connected account or the other mode never get here:
        the webhook processor refuses them before any handler runs. Otherwise it is answered
        ``ignored``, its reason logged at warning, and an ``alert`` effect (``reason``,
        ``event_id``, ``payout_request_id``, ...) is emitted; so is a partial reversal, which is
        left to a human.
        """
        return {
            "transfer.created": self._on_transfer,
            "transfer.updated": self._on_transfer,
            "transfer.reversed": self._on_transfer_reversed,
        }

    def _on_transfer(self, conn: Connection, event: EventEnvelope) -> HandlerResult:
        transfer = GatewayTransfer.from_dict(event.data.object)
        if transfer.reversed:
            return self._on_transfer_reversed(conn, event)
        found = self._payout_for(conn, event, transfer)
        if isinstance(found, HandlerResult):
            return found
        row = found
        if row.status in ("paid", "reversed", "failed"):
            return HandlerResult("payment_already_processed")
        if row.status != "processing":
            logger.error(
                "transfer %s arrived for payout %s in status %s; not settling it",
                transfer.id,
                row.id,
                row.status,
            )
            return HandlerResult("ignored")
        view = self._transition(
            conn, row, "paid", transfer_id=transfer.id, settled_at=self._clock()
        )
        return HandlerResult("success", [self._effect(view)])

    def _on_transfer_reversed(self, conn: Connection, event: EventEnvelope) -> HandlerResult:
        transfer = GatewayTransfer.from_dict(event.data.object)
        found = self._payout_for(conn, event, transfer)
        if isinstance(found, HandlerResult):
            return found
        row = found
        if not transfer.reversed and transfer.amount_reversed < transfer.amount:
            # mentorpay only reverses whole transfers; a partial reversal made elsewhere is
            # left to a human (reconciliation reports the difference).
            return self._refuse(
                event,
                transfer,
                row.id,
                "partial_reversal",
                f"partial reversal ({transfer.amount_reversed} of {transfer.amount}) not applied",
            )
        if row.status in ("reversed", "failed"):
            return HandlerResult("payment_already_processed")
        now = self._clock()
        if row.status == "paid":
            view = self._transition(conn, row, "reversed", failure_reason="transfer reversed")
        elif row.status == "processing":
            view = self._transition(
                conn,
                row,
                "failed",
                transfer_id=transfer.id,
                failure_reason="transfer reversed before it settled",
                settled_at=now,
            )
        else:
            logger.error(
                "reversal of transfer %s for payout %s in status %s; not applied",
                transfer.id,
                row.id,
                row.status,
            )
            return HandlerResult("ignored")
        return HandlerResult("success", [self._effect(view)])

    def _payout_for(
        self, conn: Connection, event: EventEnvelope, transfer: GatewayTransfer
    ) -> Row[Any] | HandlerResult:
        """The payout a transfer event settles (locked), or the answer when it settles none.

        A transfer event names its payout by the recorded transfer id or by metadata; both can
        be sent by anyone whose endpoint secret is configured (a Connect endpoint receives
        connected accounts' events). So it settles the payout only when it is the platform's
        own event in the configured mode and the transfer is exactly the one the payout asked
        for: destination, amount, currency and (once recorded) id. Anything else is ignored
        with its reason and an ``alert`` effect.
        """
        conditions = [_payouts.c.transfer_id == transfer.id]
        raw_id = transfer.metadata.get(METADATA_PAYOUT_ID)
        if raw_id is not None and raw_id.isdigit():
            conditions.append(
                and_(_payouts.c.id == int(raw_id), _payouts.c.method == "stripe_transfer")
            )
        row = conn.execute(
            select(_payouts).where(or_(*conditions)).order_by(_payouts.c.id).with_for_update()
        ).first()
        if row is None:
            logger.info("transfer %s names no mentorpay payout; ignored", transfer.id)
            return HandlerResult("ignored")
        mismatch = self._mismatch(transfer, row)
        if mismatch is not None:
            return self._refuse(event, transfer, row.id, *mismatch)
        return row

    def _mismatch(self, transfer: GatewayTransfer, row: Row[Any]) -> tuple[str, str] | None:
        """Why ``transfer`` is not the transfer of payout ``row``, if so."""
        # The envelope's account and mode were checked by the processor; the object's own mode
        # can still disagree with it.
        livemode = self._config.livemode
        object_livemode = transfer.raw.get("livemode")
        if isinstance(object_livemode, bool) and object_livemode != livemode:
            mode = "live" if livemode else "test"
            return "livemode_mismatch", f"not a {mode}-mode transfer, as configured"
        if row.method != "stripe_transfer":
            return "not_a_transfer_payout", f"payout {row.id} is paid {row.method}"
        if row.transfer_id is not None and row.transfer_id != transfer.id:
            return "transfer_id_mismatch", f"payout {row.id} is paid by {row.transfer_id}"
        if transfer.destination != row.destination:
            return (
                "destination_mismatch",
                f"destination {transfer.destination}, payout {row.id} goes to {row.destination}",
            )
        if transfer.currency != row.currency:
            return (
                "currency_mismatch",
                f"currency {transfer.currency}, payout {row.id} is in {row.currency}",
            )
        if transfer.amount != row.amount:
            return (
                "amount_mismatch",
                f"amount {transfer.amount}, payout {row.id} is {row.amount}",
            )
        return None

    @staticmethod
    def _refuse(
        event: EventEnvelope,
        transfer: GatewayTransfer,
        payout_id: int,
        reason: str,
        detail: str,
    ) -> HandlerResult:
        logger.warning(
            "%s event %s (transfer %s) does not settle payout %s: %s (%s)",
            event.type,
            event.id,
            transfer.id,
            payout_id,
            reason,
            detail,
        )
        alert = Effect(
            "alert",
            {
                "reason": reason,
                "detail": detail,
                "event_id": event.id,
                "event_type": event.type,
                "payout_request_id": payout_id,
                "transfer_id": transfer.id,
                "account": event.account,
                "livemode": event.livemode,
                "amount": transfer.amount,
                "currency": transfer.currency,
                "destination": transfer.destination,
            },
        )
        return HandlerResult("ignored", [alert])

    @staticmethod
    def _effect(view: PayoutView) -> Effect:
        # Keyed like the ledger posting: a payout reaches each settled status once, whichever
        # path (service call or transfer webhook) got there.
        return Effect(
            "payout_settled",
            {
                "payout_id": view.id,
                "mentor_id": view.mentor_id,
                "amount": view.amount.amount,
                "currency": view.amount.currency,
                "status": view.status,
                "transfer_id": view.transfer_id,
            },
            id=f"payout:{view.id}:{view.status}",
        )

    # -- plumbing -------------------------------------------------------------------------------

    def _require_gateway(self) -> PaymentGateway:
        if self._gateway is None:
            raise InvalidRequestError(
                "stripe_transfer payouts need a payment gateway; none is configured"
            )
        return self._gateway

    @staticmethod
    def _require_manual(row: Row[Any], action: str) -> None:
        if row.method != "manual":
            raise PayoutStateError(
                f"{action} is for manual payouts; payout {row.id} is paid by Stripe transfer "
                "and settles from Stripe's transfer webhooks",
                payout_id=row.id,
                method=row.method,
            )

    @staticmethod
    def _authorize(view: PayoutView, mentor_id: str | None) -> None:
        if mentor_id is not None and view.mentor_id != mentor_id:
            raise NotAuthorizedError(
                "this payout request belongs to another mentor", payout_id=view.id
            )

    @staticmethod
    def _row(conn: Connection, payout_id: int, *, lock: bool = False) -> Row[Any]:
        if isinstance(payout_id, bool) or not isinstance(payout_id, int):
            raise InvalidRequestError("payout ids are integers", payout_id=str(payout_id))
        query = select(_payouts).where(_payouts.c.id == payout_id)
        if lock:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise PayoutNotFoundError(
                f"there is no payout request {payout_id}", payout_id=payout_id
            )
        return row

    def _transition(
        self, conn: Connection, row: Row[Any], target: str, **values: Any
    ) -> PayoutView:
        """Move ``row`` to ``target`` if the state machine allows it, posting the money
        movement in the same transaction. The UPDATE is conditional on the status read, so a
        concurrent transition makes this one fail instead of both applying."""
        source = row.status
        if not can_transition(source, target):
            raise PayoutStateError(
                f"payout {row.id} is {source}; it cannot become {target}",
                payout_id=row.id,
                status=source,
                target=target,
            )
        if source == "approved" and target == "paid" and row.method != "manual":
            raise PayoutStateError(
                f"payout {row.id} is paid by Stripe transfer: execute it first",
                payout_id=row.id,
                status=source,
                target=target,
            )
        now = self._clock()
        result = conn.execute(
            update(_payouts)
            .where(and_(_payouts.c.id == row.id, _payouts.c.status == source))
            .values(status=target, updated_at=now, **values)
        )
        if result.rowcount != 1:
            raise PayoutStateError(
                f"payout {row.id} changed concurrently; it is no longer {source}",
                payout_id=row.id,
                status=source,
            )
        outcome = _SETTLEMENT.get(target)
        if outcome is not None:
            self._ledger.settle_payout(
                conn, row.id, row.mentor_id, Money(row.amount, row.currency), outcome=outcome
            )
        logger.info("payout %s: %s -> %s", row.id, source, target)
        return PayoutView.from_row(self._row(conn, row.id))

    def _fail_after_refusal(self, payout_id: int, exc: GatewayError) -> None:
        def do(conn: Connection) -> None:
            row = self._row(conn, payout_id, lock=True)
            if row.status == "processing" and row.transfer_id is None:
                view = self._transition(
                    conn, row, "failed", failure_reason=exc.message, settled_at=self._clock()
                )
                self._stage(conn, view)

        self._tx(do)

    def _record_transfer(self, payout_id: int, transfer: GatewayTransfer) -> PayoutView:
        def do(conn: Connection) -> PayoutView:
            conn.execute(
                update(_payouts)
                .where(
                    and_(
                        _payouts.c.id == payout_id,
                        _payouts.c.transfer_id.is_(None),
                        _payouts.c.status == "processing",
                    )
                )
                .values(transfer_id=transfer.id, updated_at=self._clock())
            )
            # If nothing matched, the transfer webhook already recorded (and settled) it.
            return PayoutView.from_row(self._row(conn, payout_id))

        result: PayoutView = self._tx(do)
        return result
