"""The built-in webhook handlers, one module per family of Stripe events.

- :mod:`.payments`: ``checkout.session.*`` and ``payment_intent.*`` (the payment truth checks).
- :mod:`.refunds`: ``charge.refunded``, and the ``refund.*`` events a host wires through
  ``RefundEventHandlers`` (:class:`mentorpay.MentorPay` does).
- :mod:`.disputes`: ``charge.dispute.created`` / ``charge.dispute.closed``.

Transfer events are handled by :class:`mentorpay.payouts.PayoutService`. Every family exposes
``webhook_handlers() -> {event_type: handler}`` and is registered through the one registration
API, :meth:`mentorpay.webhooks.WebhookProcessor.register` (``HandlerRegistry.register``).
A handler runs inside the event's transaction, never commits, and returns a ``HandlerResult``.
"""

from __future__ import annotations

from typing import Final

__all__ = ["HANDLED_EVENT_TYPES"]

#: Event types with a built-in handler; every other type is recorded and answered ``ignored``.
HANDLED_EVENT_TYPES: Final[tuple[str, ...]] = (
    "charge.dispute.closed",
    "charge.dispute.created",
    "charge.refunded",
    "checkout.session.async_payment_failed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.completed",
    "checkout.session.expired",
    "payment_intent.payment_failed",
    "payment_intent.succeeded",
)
