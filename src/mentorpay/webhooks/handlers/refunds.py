"""Refund events: ``charge.refunded`` moves the money; a refund's own events undo a failed one.

``charge.refunded`` brings the ledger up to the charge's cumulative ``amount_refunded`` (the
ledger keys each posting by that total, so redeliveries and reorderings post it once). A refund
of a payment not recorded yet is deferred until it is.

Refund events: a refund that fails or is canceled after it was booked is undone, once.

Stripe reports a refund's life on the Refund object (``data.object`` is a ``refund``):
``refund.created``, ``refund.updated`` and ``charge.refund.updated`` on every status change, and
``refund.failed`` when a refund that looked done bounced at the bank (``failure_reason`` says
why). The status is ``pending``, ``requires_action``, ``succeeded``, ``failed`` or
``canceled``.

* ``failed`` / ``canceled``: the ledger undoes that refund's effect exactly once, however many of
  the three events report it (business key ``refund_failed:{refund_id}``, see
  :meth:`LedgerService.apply_refund_failure` and the ledger's docstring for the model), and a
  ``refund_failed`` effect tells the host. A failure arriving before its ``charge.refunded`` is
  remembered and nets that refund to zero when it comes. A refund for a payment not recorded
  yet is deferred until it is; a refund in another currency than its payment raises
  :class:`~mentorpay.errors.CurrencyMismatchError`, which can never succeed.
* Any status: the refund request mentorpay made (:mod:`mentorpay.refunds`), found by the
  refund's id, takes the new status (never backwards: a late ``succeeded`` does not undo a
  ``failed``). A request whose answer was lost is found by the ``mentorpay_refund_request``
  metadata it sent and learns its refund id here, so a retry returns it instead of asking
  Stripe. Other statuses move no money: ``charge.refunded`` does that.

The refund names its payment intent, or only its charge (Stripe's own fixture has
``payment_intent: null``): the charge then finds the payment.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Connection

from mentorpay.events import Effect, EventEnvelope, Handler, HandlerResult
from mentorpay.ledger.queries import intent_for_charge
from mentorpay.refunds import (
    REQUEST_METADATA_KEY,
    advance_request,
    request_intent,
    request_status,
)
from mentorpay.stripe_objects import ChargeObject, RefundObject, event_money, parse_object
from mentorpay.webhooks.handlers._common import DeferringHandlers, intent_for

__all__ = ["REFUND_EVENT_TYPES", "ChargeRefundHandlers", "RefundEventHandlers"]

#: Logged under the names these handlers had before they joined the webhooks package.
logger = logging.getLogger("mentorpay.webhooks")
_refund_logger = logging.getLogger("mentorpay.refund_events")


class ChargeRefundHandlers(DeferringHandlers):
    """``charge.refunded``: the refunded total, posted once however often it is reported."""

    def webhook_handlers(self) -> dict[str, Handler]:
        """The handlers to register (see the module docstring)."""
        return {"charge.refunded": self._on_charge_refunded}

    def _on_charge_refunded(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """Bring the ledger up to the charge's cumulative ``amount_refunded``."""
        charge = parse_object(ChargeObject, env)
        pi = intent_for(conn, charge.payment_intent, charge.id)
        if pi is None:
            logger.info("refund of charge %s has no payment intent; ignored", charge.id)
            return HandlerResult("ignored")
        total = event_money(charge.amount_refunded, charge.currency, env)

        def apply() -> HandlerResult:
            posting = self._ledger.apply_refund_total(pi, total, conn=conn)
            if not posting.created:
                return HandlerResult("success")
            amount = posting.amount.amount if posting.amount is not None else None
            return HandlerResult(
                "success",
                [
                    Effect(
                        "refund_applied",
                        {
                            "event_id": env.id,
                            "payment_intent_id": pi,
                            "charge_id": charge.id,
                            "currency": total.currency,
                            "amount": amount,
                            "amount_refunded": total.amount,
                        },
                    )
                ],
            )

        return self._defer(conn, pi, apply)


#: The events whose object is a Refund.
REFUND_EVENT_TYPES = ("refund.created", "refund.failed", "refund.updated", "charge.refund.updated")

_UNDONE = ("failed", "canceled")
_REASON_MAX = 500


class RefundEventHandlers(DeferringHandlers):
    """Handlers for :data:`REFUND_EVENT_TYPES`; they run in the event's transaction.

    ``defer`` is :meth:`WebhookProcessor.defer_until_recorded`: it applies a failure when the
    payment is recorded and otherwise defers the event until it is.
    """

    def webhook_handlers(self) -> dict[str, Handler]:
        """The handlers to register with the webhook processor (see the module docstring)."""
        return dict.fromkeys(REFUND_EVENT_TYPES, self._on_refund)

    def _on_refund(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        refund = parse_object(RefundObject, env)
        status = request_status(refund.status)
        pi = self._intent_for(conn, refund)
        if status not in _UNDONE:
            recorded = self._mark(conn, refund, status, pi)
            return HandlerResult("success" if recorded else "ignored")
        if pi is None:
            _refund_logger.info("refund %s is of no payment mentorpay knows; ignored", refund.id)
            return HandlerResult("ignored")
        amount = event_money(refund.amount, refund.currency, env)

        def apply() -> HandlerResult:
            posting = self._ledger.apply_refund_failure(pi, refund.id, amount, conn=conn)
            self._mark(conn, refund, status, pi)
            if not posting.created:
                return HandlerResult("success")
            reversed_ = posting.amount.amount if posting.amount is not None else 0
            return HandlerResult(
                "success",
                [
                    Effect(
                        "refund_failed",
                        {
                            "event_id": env.id,
                            "payment_intent_id": pi,
                            "refund_id": refund.id,
                            "charge_id": refund.charge,
                            "status": status,
                            "failure_reason": _reason(refund.failure_reason),
                            "currency": amount.currency,
                            "amount": amount.amount,
                            # What the ledger un-refunded now: 0 if charge.refunded is yet to come.
                            "reversed": reversed_,
                        },
                    )
                ],
            )

        return self._defer(conn, pi, apply)

    @staticmethod
    def _intent_for(conn: Connection, refund: RefundObject) -> str | None:
        """The refund's payment intent: named, or found by its charge or our request row."""
        if refund.payment_intent is not None:
            return refund.payment_intent
        found: str | None = None
        if refund.charge is not None:
            found = intent_for_charge(conn, refund.charge)
        if found is None:
            found = request_intent(conn, refund.id)
        return found

    def _mark(self, conn: Connection, refund: RefundObject, status: str, pi: str | None) -> bool:
        """Move mentorpay's request for this refund forward to ``status``; whether it did."""
        reason = (_reason(refund.failure_reason) or status) if status in _UNDONE else None
        return advance_request(
            conn,
            refund_id=refund.id,
            payment_intent_id=pi,
            request_key=(refund.metadata or {}).get(REQUEST_METADATA_KEY),
            status=status,
            failure_reason=reason,
            now=self._clock(),
        )


def _reason(text: str | None) -> str | None:
    return text[:_REASON_MAX] if text else None
