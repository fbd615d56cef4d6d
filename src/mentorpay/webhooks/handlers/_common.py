"""What several handler families share: the booking a payment's metadata names, the
application fee check, and the payment intent a charge or dispute refers to."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.db import ID_MAX
from mentorpay.errors import WebhookPayloadError
from mentorpay.events import EventEnvelope, HandlerResult
from mentorpay.ledger import LedgerService
from mentorpay.ledger.queries import intent_for_charge
from mentorpay.money import Money

if TYPE_CHECKING:
    from mentorpay.stripe_objects import CheckoutSessionObject

__all__ = [
    "Booking",
    "Defer",
    "DeferringHandlers",
    "PlanPayments",
    "booking",
    "fee",
    "intent_for",
    "is_plan",
]

#: ``Deferrals.defer``: apply now if the payment is recorded, else defer the event on it.
Defer = Callable[[Connection, str, Callable[[], HandlerResult]], HandlerResult]


class DeferringHandlers:
    """A family whose events post to a recorded payment, deferred until it is recorded.

    ``defer`` is ``WebhookProcessor.defer_until_recorded``.
    """

    def __init__(
        self, ledger: LedgerService, *, defer: Defer, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._ledger = ledger
        self._defer = defer
        self._clock = clock


@dataclass(frozen=True, slots=True)
class Booking:
    """The ids a payment's metadata names. They only locate the booking: who is credited and
    how much come from mentorpay's checkout row or the host's booking (payment_truth)."""

    booking_id: str
    mentor_id: str
    mentee_id: str


def booking(metadata: Mapping[str, str] | None, env: EventEnvelope) -> Booking | None:
    """The booking named in the metadata Checkout set, or None if this is not mentorpay's."""
    if not metadata:
        return None
    values = [metadata.get(k) for k in ("booking_id", "mentor_id", "mentee_id")]
    if not all(values):
        return None
    for value in values:
        assert value is not None
        if len(value) > ID_MAX or "\x00" in value:
            raise WebhookPayloadError(
                f"{env.type} event {env.id}: booking metadata value is not a usable id",
                event_id=env.id,
                event_type=env.type,
            )
    booking_id, mentor_id, mentee_id = (str(v) for v in values)
    return Booking(booking_id, mentor_id, mentee_id)


def fee(amount: int | None, gross: Money, env: EventEnvelope) -> Money | None:
    """The application fee Stripe kept on a destination charge, checked against the gross."""
    if amount is None:
        return None
    if amount > gross.amount:
        raise WebhookPayloadError(
            f"{env.type} event {env.id}: application fee {amount} exceeds the payment {gross}",
            event_id=env.id,
            event_type=env.type,
        )
    return Money(amount, gross.currency)


def intent_for(conn: Connection, pi: str | None, charge_id: str | None) -> str | None:
    """The payment intent a charge or dispute refers to (by the charge id as a fallback)."""
    if pi is not None:
        return pi
    if charge_id is None:
        return None
    return intent_for_charge(conn, charge_id)


class PlanPayments(Protocol):
    """The plans' side of the payment events (:mod:`mentorpay.webhooks.handlers.plans`): a
    package is paid like a booking, a subscription-mode Checkout links its subscription."""

    def record_package(
        self,
        conn: Connection,
        env: EventEnvelope,
        *,
        pi: str,
        amount: int | None,
        currency: str | None,
        metadata: Mapping[str, str],
        session_id: str | None,
        charge_id: str | None,
    ) -> HandlerResult: ...

    def subscription_checkout(
        self, conn: Connection, env: EventEnvelope, session: CheckoutSessionObject
    ) -> HandlerResult: ...

    def checkout_ended(
        self,
        conn: Connection,
        env: EventEnvelope,
        session: CheckoutSessionObject,
        outcome: Literal["expired", "payment_failed"],
    ) -> HandlerResult | None: ...


def is_plan(metadata: Mapping[str, str] | None) -> bool:
    """Whether an object's metadata names a plan purchase (set by plan checkout)."""
    return metadata is not None and "plan_purchase_id" in metadata
