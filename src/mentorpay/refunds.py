"""Refunds initiated by the platform.

:meth:`RefundService.refund` validates the request against the recorded payment and asks Stripe
to refund. The ledger changes only when Stripe's ``charge.refunded`` webhook arrives (or
reconciliation replays it); a refund that fails later at the bank (``refund.failed``) is
undone by the refund event handlers (:mod:`mentorpay.refund_events`).

Retries are safe. Before Stripe is called, the refund is claimed as a row of
``mentorpay_refund_requests``, committed in its own transaction, holding the idempotency key the
call will use; the key never depends on anything a webhook changes:

* ``request_id`` (your own id for the refund, e.g. a support ticket or a form token) names the
  request: calling again with it sends the same request under the same key, so Stripe performs
  it once; once Stripe has answered, the recorded answer is returned without calling Stripe
  again (its keys expire after 24 hours, ours do not). The same ``request_id`` with another
  amount is a :class:`ConflictError` (409).
* Without ``request_id``, a call while an earlier request for the same payment and amount has an
  outcome no caller received (the connection failed and Stripe's answer was lost) is a retry of
  it: the earlier request is resent, byte for byte, under its key, so it repeats, never doubles,
  even after ``charge.refunded`` changed what is left to refund. If a refund event already told
  mentorpay what became of it, that answer is returned instead of calling Stripe. Any other call
  is a new refund with a new key. Pass ``request_id`` to make a double click safe as well.

Each refund carries its request in its metadata (``mentorpay_refund_request``), so refund events
(:mod:`mentorpay.refund_events`) find the request even when Stripe's answer was lost. An
unknown outcome older than 24 hours is not resent (Stripe may have forgotten the key): that is a
:class:`ConflictError` telling you to check the payment's refunds at Stripe first. A refund
Stripe refuses is recorded ``failed`` with Stripe's message and moves no money.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, and_, select, update
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.config import MentorpayConfig
from mentorpay.db import run_in_transaction
from mentorpay.errors import (
    ConflictError,
    CurrencyMismatchError,
    GatewayError,
    InvalidAmountError,
    InvalidRequestError,
    PaymentNotFoundError,
)
from mentorpay.gateway import (
    REFUND_REASONS,
    GatewayRefund,
    PaymentGateway,
    outcome_unknown,
    refund_idempotency_key,
)
from mentorpay.ledger.queries import locked_payment, paid_by
from mentorpay.ledger.state import PaymentState
from mentorpay.models import refund_requests_table as _requests
from mentorpay.money import Money, check_charge_amount

__all__ = [
    "REQUEST_METADATA_KEY",
    "RefundResult",
    "RefundService",
    "advance_request",
    "request_intent",
    "request_status",
]


@dataclass(frozen=True, slots=True)
class RefundResult:
    """What Stripe accepted. The ledger follows when ``charge.refunded`` arrives."""

    refund_id: str
    payment_intent_id: str
    amount: Money
    status: str
    idempotency_key: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for adapters."""
        return {
            "refund_id": self.refund_id,
            "payment_intent_id": self.payment_intent_id,
            "amount": self.amount.amount,
            "currency": self.amount.currency,
            "amount_display": str(self.amount),
            "status": self.status,
        }


#: How long Stripe keeps an idempotency key at least; an older unknown outcome is not resent.
KEY_LIFETIME = timedelta(hours=24)
#: The refund metadata naming the request a refund was made for.
REQUEST_METADATA_KEY = "mentorpay_refund_request"

_CREATING = "creating"
_REQUEST_ID_MAX = 200  # the key adds a prefix; Stripe allows 255 characters


def request_status(stripe_status: str | None) -> str:
    """A refund request's status for Stripe's refund status (``requires_action`` is pending)."""
    if stripe_status in ("succeeded", "failed", "canceled"):
        return stripe_status
    return "pending"


#: A request row moves to a status only from the ones before it (refund events arrive in any order).
_FROM: dict[str, tuple[str, ...]] = {
    "pending": ("creating",),
    "succeeded": ("creating", "pending"),
    "failed": ("creating", "pending", "succeeded"),
    "canceled": ("creating", "pending", "succeeded"),
}


def request_intent(conn: Connection, refund_id: str) -> str | None:
    """The payment intent of mentorpay's request that Stripe's refund ``refund_id`` answered."""
    found: str | None = conn.execute(
        select(_requests.c.payment_intent_id).where(_requests.c.refund_id == refund_id)
    ).scalar()
    return found


def advance_request(
    conn: Connection,
    *,
    refund_id: str,
    payment_intent_id: str | None,
    request_key: str | None,
    status: str,
    failure_reason: str | None,
    now: datetime,
) -> bool:
    """A refund event moves mentorpay's request forward to ``status``; whether it did.

    A request whose answer was lost learns its refund here, found by the request key the
    refund's metadata carries (keys are per payment).
    """
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if failure_reason is not None:
        values["failure_reason"] = failure_reason
    if payment_intent_id is not None and request_key:
        linked = conn.execute(
            update(_requests)
            .where(
                and_(
                    _requests.c.payment_intent_id == payment_intent_id,
                    _requests.c.request_key == request_key,
                    _requests.c.refund_id.is_(None),
                )
            )
            .values(refund_id=refund_id, **values)
        )
        if linked.rowcount:
            return True
    result = conn.execute(
        update(_requests)
        .where(and_(_requests.c.refund_id == refund_id, _requests.c.status.in_(_FROM[status])))
        .values(**values)
    )
    return bool(result.rowcount)


@dataclass(frozen=True, slots=True)
class _Claim:
    request: Row[Any]
    payment: PaymentState


class RefundService:
    """Platform refunds through the gateway; see the module docstring."""

    def __init__(
        self,
        config: MentorpayConfig,
        engine: Engine,
        gateway: PaymentGateway,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._engine = engine
        self._gateway = gateway
        self._clock = clock

    def refund(
        self,
        payment_intent_id: str,
        amount: Money | None = None,
        reason: str | None = None,
        *,
        request_id: str | None = None,
    ) -> RefundResult:
        """Refund ``amount`` of a recorded payment (everything still refundable if ``None``).

        Safe to call again after any failure: see the module docstring for how a retry finds
        the request it repeats. Raises :class:`PaymentNotFoundError` for an unknown payment
        intent, :class:`ConflictError` when nothing is left to refund or ``request_id`` was
        used for another amount, :class:`CurrencyMismatchError`, :class:`InvalidAmountError`
        (not positive, above what remains, or breaking Stripe's currency rules),
        :class:`InvalidRequestError` for an unknown ``reason``, and :class:`GatewayError`
        subclasses when Stripe refuses or cannot be reached (no money moves either way).
        """
        if reason is not None and reason not in REFUND_REASONS:
            raise InvalidRequestError(
                f"refund reason must be one of {sorted(REFUND_REASONS)}, got {reason!r}",
                reason=reason,
            )
        if request_id is not None and (
            not request_id.strip() or len(request_id) > _REQUEST_ID_MAX or "\x00" in request_id
        ):
            raise InvalidRequestError(
                f"request_id must be 1 to {_REQUEST_ID_MAX} characters", request_id=request_id
            )
        if amount is not None and not isinstance(amount, Money):
            raise TypeError(f"amount must be Money or None, not {type(amount).__name__}")
        claim = run_in_transaction(
            self._engine,
            lambda conn: self._claim(conn, payment_intent_id, amount, reason, request_id),
            retries=self._config.db_retries,
        )
        request = claim.request
        if request.refund_id is not None:
            # Stripe answered this request before: never ask again (its key may have expired).
            if request.answered_at is None:
                self._update(request.id)
            return _result(request, request.refund_id, request.status)
        return self._send(claim)

    def refund_booking(
        self,
        booking_id: str,
        amount: Money | None = None,
        reason: str | None = None,
        *,
        request_id: str | None = None,
    ) -> RefundResult:
        """:meth:`refund` of the payment that paid ``booking_id`` (everything left if ``amount``
        is ``None``). Raises :class:`PaymentNotFoundError` when nothing paid the booking."""
        with self._engine.connect() as conn:
            paid = paid_by(conn, booking_id)
        if paid is None:
            raise PaymentNotFoundError(
                f"no payment recorded for booking {booking_id}", booking_id=booking_id
            )
        return self.refund(paid[0], amount, reason, request_id=request_id)

    # -- the claim ------------------------------------------------------------------------------

    def _claim(
        self,
        conn: Connection,
        pi: str,
        amount: Money | None,
        reason: str | None,
        request_id: str | None,
    ) -> _Claim:
        """Find the request this call repeats, or claim a new one (one transaction)."""
        # Locking the payment serializes claims for it, so concurrent retries of an unknown
        # request all find it instead of each claiming a new refund.
        payment = locked_payment(conn, pi)
        if payment is None:
            raise PaymentNotFoundError(f"no payment recorded for {pi}", payment_intent_id=pi)
        now = self._clock()
        if request_id is not None:
            found = conn.execute(
                select(_requests).where(
                    and_(_requests.c.payment_intent_id == pi, _requests.c.request_key == request_id)
                )
            ).first()
            if found is not None:
                return self._repeat(conn, found, payment, amount, now, request_id=request_id)
        else:
            # A request whose outcome no caller received: this call is its retry.
            query = select(_requests).where(
                and_(_requests.c.payment_intent_id == pi, _requests.c.answered_at.is_(None))
            )
            if amount is None:
                query = query.where(_requests.c.full_refund.is_(True))
            else:
                query = query.where(
                    and_(
                        _requests.c.amount == amount.amount,
                        _requests.c.currency == amount.currency,
                    )
                )
            found = conn.execute(query.order_by(_requests.c.id).limit(1)).first()
            if found is not None:
                return self._repeat(conn, found, payment, amount, now, request_id=None)
        value = _refundable(payment, amount)
        key_name = request_id if request_id is not None else "auto-" + uuid.uuid4().hex
        result = conn.execute(
            _requests.insert()
            .values(
                payment_intent_id=pi,
                currency=value.currency,
                amount=value.amount,
                full_refund=amount is None,
                request_key=key_name,
                idempotency_key=refund_idempotency_key(pi, request_id=key_name),
                status=_CREATING,
                refund_id=None,
                reason=reason,
                failure_reason=None,
                answered_at=None,
                created_at=now,
                updated_at=now,
            )
            .returning(*_requests.c)
        )
        return _Claim(result.one(), payment)

    def _repeat(
        self,
        conn: Connection,
        found: Row[Any],
        payment: PaymentState,
        amount: Money | None,
        now: datetime,
        *,
        request_id: str | None,
    ) -> _Claim:
        """An earlier request this call repeats: its stored terms are what is sent again."""
        if amount is None:
            same = bool(found.full_refund)
        else:
            same = (amount.amount, amount.currency) == (found.amount, found.currency)
        if not same:
            asked = "everything refundable" if amount is None else str(amount)
            raise ConflictError(
                f"refund request {request_id!r} of {found.payment_intent_id} was for "
                f"{Money(found.amount, found.currency)}, not {asked}; use a new request_id "
                "for another refund",
                request_id=request_id,
                payment_intent_id=found.payment_intent_id,
                amount=found.amount,
                currency=found.currency,
            )
        if found.refund_id is not None:
            return _Claim(found, payment)
        # updated_at of a "creating" row is when its key was first sent (or re-armed).
        if found.status == _CREATING and now - found.updated_at > KEY_LIFETIME:
            raise ConflictError(
                f"refund request {found.request_key!r} of {found.payment_intent_id} has had an "
                "unknown outcome for more than 24 hours, so Stripe may have forgotten its "
                "idempotency key: check the payment's refunds at Stripe (mentorpay reconcile) "
                "before refunding again with a new request_id",
                request_id=found.request_key,
                payment_intent_id=found.payment_intent_id,
                idempotency_key=found.idempotency_key,
            )
        if found.status != _CREATING:
            # Refused before (a request_id retried after fixing the cause): try again, same key.
            conn.execute(
                update(_requests)
                .where(_requests.c.id == found.id)
                .values(status=_CREATING, failure_reason=None, answered_at=None, updated_at=now)
            )
            found = conn.execute(select(_requests).where(_requests.c.id == found.id)).one()
        return _Claim(found, payment)

    # -- Stripe ---------------------------------------------------------------------------------

    def _send(self, claim: _Claim) -> RefundResult:
        request, payment = claim.request, claim.payment
        connect = self._config.connect_destination_charges
        try:
            refund = self._gateway.create_refund(
                payment_intent_id=request.payment_intent_id,
                amount=Money(request.amount, request.currency),
                idempotency_key=request.idempotency_key,
                reason=request.reason,
                metadata={
                    "booking_id": payment.booking_id,
                    "mentor_id": payment.mentor_id,
                    "mentee_id": payment.mentee_id,
                    REQUEST_METADATA_KEY: request.request_key,
                },
                reverse_transfer=self._config.refund_reverse_transfer if connect else None,
                refund_application_fee=self._config.refund_application_fee if connect else None,
            )
        except GatewayError as exc:
            if not outcome_unknown(exc):
                # Stripe refused: nothing happened there. Keep the row as the record of it.
                self._update(request.id, status="failed", failure_reason=exc.message[:1000])
            # Unknown outcome: the row stays "creating", so the retry resends this request.
            raise
        self._update(request.id, refund=refund)
        return _result(request, refund.id, refund.status)

    def _update(
        self,
        request_id: int,
        *,
        refund: GatewayRefund | None = None,
        status: str | None = None,
        failure_reason: str | None = None,
    ) -> None:
        """Record that a caller got this request's outcome, and what Stripe answered."""

        def do(conn: Connection) -> None:
            now = self._clock()
            row = _requests.c.id == request_id
            conn.execute(update(_requests).where(row).values(answered_at=now, updated_at=now))
            unlinked = and_(row, _requests.c.refund_id.is_(None))
            if refund is not None:
                # A concurrent retry or a refund event may have recorded it first: keep theirs.
                conn.execute(
                    update(_requests)
                    .where(unlinked)
                    .values(refund_id=refund.id, status=request_status(refund.status))
                )
            elif status is not None:
                conn.execute(
                    update(_requests)
                    .where(and_(unlinked, _requests.c.status == _CREATING))
                    .values(status=status, failure_reason=failure_reason)
                )

        run_in_transaction(self._engine, do, retries=self._config.db_retries)


def _refundable(payment: PaymentState, amount: Money | None) -> Money:
    """The amount to refund, checked against what the payment has left (nothing is written)."""
    pi, currency = payment.payment_intent_id, payment.currency
    # Refunds and lost disputes both returned money to the payer; neither can be refunded.
    remaining = Money(payment.amount - payment.amount_reversed, currency)
    if not remaining.is_positive():
        raise ConflictError(
            f"payment {pi} has nothing left to refund", payment_intent_id=pi, refundable=0
        )
    if amount is None:
        value = remaining
    else:
        if amount.currency != currency:
            raise CurrencyMismatchError(
                f"payment {pi} is in {currency}, the refund in {amount.currency}",
                currency=currency,
                other_currency=amount.currency,
            )
        if not amount.is_positive():
            raise InvalidAmountError(
                f"a refund must be positive, got {amount}", amount=amount.amount, currency=currency
            )
        if amount > remaining:
            raise InvalidAmountError(
                f"refund of {amount} exceeds the {remaining} still refundable on {pi}",
                amount=amount.amount,
                currency=currency,
                refundable=remaining.amount,
            )
        value = amount
    check_charge_amount(value)  # three-decimal currencies end in 0, ISK/UGX in 00
    return value


def _result(request: Row[Any], refund_id: str, status: str) -> RefundResult:
    return RefundResult(
        refund_id=refund_id,
        payment_intent_id=request.payment_intent_id,
        amount=Money(request.amount, request.currency),
        status=status,
        idempotency_key=request.idempotency_key,
    )
