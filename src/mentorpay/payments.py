"""Payments parked for review, and how an operator settles them (``mp.payments``).

A payment that disagreed with its booking (another amount or currency, another mentor, an
unknown booking, a second payment of a paid booking) credits no mentor: the webhook records its
money on the platform's suspense account and answers ``needs_review``. An operator then either
credits the booking's mentor with what was actually paid, or refunds the payer through Stripe
under a deterministic idempotency key (a retry after a lost answer repeats, never doubles).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from sqlalchemy import Engine

from mentorpay._clock import utcnow
from mentorpay.bookings import BookingSource
from mentorpay.config import MentorpayConfig
from mentorpay.errors import BookingNotFoundError, ConflictError, InvalidRequestError
from mentorpay.events import Effect
from mentorpay.gateway import PaymentGateway
from mentorpay.gateway.keys import review_refund_idempotency_key
from mentorpay.ledger import LedgerService, PaymentRecord

__all__ = ["PaymentReviewService", "ReviewAction", "review_refund_idempotency_key"]

ReviewAction = Literal["credit", "refund"]


class PaymentReviewService:
    """The review queue and its resolution; see the module docstring."""

    def __init__(
        self,
        config: MentorpayConfig,
        engine: Engine,
        ledger: LedgerService,
        bookings: BookingSource,
        gateway: PaymentGateway,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._engine = engine
        self._ledger = ledger
        self._bookings = bookings
        self._gateway = gateway
        self._clock = clock

    def review_queue(self, limit: int = 100) -> list[PaymentRecord]:
        """Payments whose money still sits on the suspense account, oldest first."""
        return self._ledger.review_queue(limit)

    def resolve(self, payment_intent_id: str, *, action: ReviewAction) -> PaymentRecord:
        """Settle a reviewed payment: ``credit`` the booking's mentor, or ``refund`` the payer.

        ``credit`` splits what was actually paid under the mentor's commission policy and
        credits the booking's current mentor (the booking must be known to the host).
        ``refund`` refunds the whole payment at Stripe under one fixed idempotency key and moves
        the money off suspense once Stripe accepted it. Both are idempotent; resolving an
        already-resolved payment the same way changes nothing.
        """
        if action not in ("credit", "refund"):
            raise InvalidRequestError("action must be 'credit' or 'refund'", action=action)
        payment = self._ledger.payment(payment_intent_id)
        if action == "credit":
            booking = self._bookings.get_booking(payment.booking_id)
            if booking is None:
                raise BookingNotFoundError(
                    f"booking {payment.booking_id} is unknown to the host; refund instead",
                    booking_id=payment.booking_id,
                )
            self._ledger.credit_review(
                payment_intent_id,
                booking_id=booking.id,
                mentor_id=booking.mentor_id,
                mentee_id=booking.mentee_id,
                policy=self._config.policy_for(booking.mentor_id),
                release_due_at=self._clock() + self._config.hold_period,
            )
        else:
            if payment.status not in ("needs_review", "refunded"):
                raise ConflictError(
                    f"payment {payment_intent_id} is {payment.status}, not under review; use "
                    "mp.refunds.refund for a credited payment",
                    payment_intent_id=payment_intent_id,
                )
            if payment.status == "needs_review":
                self._gateway.create_refund(
                    payment_intent_id=payment_intent_id,
                    amount=None,
                    idempotency_key=review_refund_idempotency_key(payment_intent_id),
                    reason="duplicate" if "already_paid" in (payment.review_reason or "") else None,
                    metadata={"booking_id": payment.booking_id, "mentorpay_review": "refund"},
                )
                self._ledger.refund_review(payment_intent_id)
        return self._ledger.payment(payment_intent_id)

    def refund_duplicate(self, effect: Effect) -> None:
        """After-commit hook: refund a second payment of an already-paid booking.

        A failure propagates, so the outbox keeps the effect pending and ``outbox run`` tries
        again later under the same idempotency key (Stripe refunds once); meanwhile the payment
        stays in the review queue.
        """
        reason = str(effect.data.get("reason", ""))
        if not reason.startswith("already_paid") or ";" in reason:
            return  # only a clean duplicate; anything else waits for a human
        self.resolve(str(effect.data["payment_intent_id"]), action="refund")
