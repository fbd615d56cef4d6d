"""Booking cancellations: ``mp.bookings.cancel`` (owner of ``mentorpay_cancellations``).

A cancellation is recorded once per booking (a unique row), in one transaction that locks the
booking's payment, asks the :class:`~mentorpay.cancellation.CancellationPolicy` what to refund,
and, when the platform keeps its fee, tells the ledger so before any refund is sent
(:meth:`LedgerService.keep_fee`). The refund then goes through
:class:`~mentorpay.refunds.RefundService` under the request id ``cancellation:<booking id>``,
so its Stripe idempotency key is fixed by the booking: calling ``cancel`` again (a retry after
a lost answer, a double click, a concurrent second cancel) finds the recorded cancellation and
repeats the same refund request, which Stripe performs once. A refund Stripe refused is sent
again, under the same key, by the next ``cancel`` call.

The ledger follows from Stripe's refund webhooks as for any refund; see
:func:`mentorpay.ledger.rules.payout_target` for how a kept fee changes the split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, select
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.bookings import BookingInfo, BookingSource
from mentorpay.cancellation import CANCELLED_BY, CancellationPolicy, CancelledBy
from mentorpay.config import MentorpayConfig
from mentorpay.db import insert_for, run_in_transaction
from mentorpay.errors import BookingNotFoundError, InvalidRequestError
from mentorpay.ledger import LedgerService
from mentorpay.ledger.queries import locked_payment, paid_by
from mentorpay.models import cancellations_table as _cancellations
from mentorpay.money import Money
from mentorpay.refunds import RefundResult, RefundService

__all__ = ["BookingService", "CancellationResult", "cancellation_request_id"]

_REASON_MAX = 500


def cancellation_request_id(booking_id: str) -> str:
    """The refund request id (hence the Stripe idempotency key) of a booking's cancellation."""
    return f"cancellation:{booking_id}"


@dataclass(frozen=True, slots=True)
class CancellationResult:
    """What a cancellation refunded and why. ``created`` is False when this call found the
    booking already cancelled (the answer is the recorded one). ``refund`` is ``None`` when
    nothing was refunded (nothing paid, or a policy refund of zero)."""

    booking_id: str
    cancelled_by: CancelledBy
    cancelled_at: datetime
    starts_at: datetime | None
    payment_intent_id: str | None
    refund_amount: Money | None
    refund_bps: int
    fee_kept: bool
    rule: str
    reason: str | None
    refund: RefundResult | None
    created: bool

    @property
    def notice(self) -> timedelta | None:
        """How long before the session the booking was cancelled (negative: after it began)."""
        return None if self.starts_at is None else self.starts_at - self.cancelled_at

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for adapters."""
        amount = self.refund_amount
        return {
            "booking_id": self.booking_id,
            "cancelled_by": self.cancelled_by,
            "cancelled_at": self.cancelled_at.isoformat(),
            "payment_intent_id": self.payment_intent_id,
            "refund_amount": None if amount is None else amount.amount,
            "currency": None if amount is None else amount.currency,
            "refund_display": "nothing" if amount is None else str(amount),
            "refund_bps": self.refund_bps,
            "fee_kept": self.fee_kept,
            "rule": self.rule,
            "reason": self.reason,
            "refund_id": None if self.refund is None else self.refund.refund_id,
            "refund_status": None if self.refund is None else self.refund.status,
            "created": self.created,
        }


class BookingService:
    """``mp.bookings``: booking-level operations (cancellation with its policy refund)."""

    def __init__(
        self,
        config: MentorpayConfig,
        engine: Engine,
        bookings: BookingSource,
        ledger: LedgerService,
        refunds: RefundService,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._engine = engine
        self._bookings = bookings
        self._ledger = ledger
        self._refunds = refunds
        self._clock = clock

    # mp.bookings was the host's BookingSource before it grew ``cancel``: keep that working.
    @property
    def source(self) -> BookingSource:
        """The host's booking source."""
        return self._bookings

    def get_booking(self, booking_id: str) -> BookingInfo | None:
        """The host's booking (delegates to the :class:`BookingSource`)."""
        return self._bookings.get_booking(booking_id)

    def __getattr__(self, name: str) -> Any:
        # Anything else the host's source offers (``InMemoryBookings.add``) stays reachable.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._bookings, name)

    @property
    def policy(self) -> CancellationPolicy:
        """The cancellation policy in force (``MentorpayConfig.cancellation``)."""
        return self._config.cancellation

    def cancel(
        self,
        booking_id: str,
        *,
        by: CancelledBy,
        at: datetime | None = None,
        reason: str | None = None,
    ) -> CancellationResult:
        """Cancel a booking and refund what the policy says, once per booking.

        ``at`` is when the cancellation happened (default: now), from the host's own clock or
        records, never from the canceller's input (an earlier ``at`` means a larger refund).
        Raises
        :class:`BookingNotFoundError`, :class:`InvalidRequestError` (unknown ``by``, a naive
        ``at``, a mentee cancelling a booking without ``starts_at``), and what
        :meth:`RefundService.refund` raises when Stripe refuses or cannot be reached (the
        cancellation stays recorded; calling again resends the same refund request).
        """
        if by not in CANCELLED_BY:
            raise InvalidRequestError(
                f"by must be one of {sorted(CANCELLED_BY)}, got {by!r}", cancelled_by=by
            )
        when = at if at is not None else self._clock()
        if when.tzinfo is None:
            raise InvalidRequestError("at must be an aware datetime (tzinfo=UTC)")
        if reason is not None and len(reason) > _REASON_MAX:
            raise InvalidRequestError(f"reason must be at most {_REASON_MAX} characters")
        booking = self._bookings.get_booking(booking_id)
        if booking is None:
            raise BookingNotFoundError(f"booking {booking_id} not found", booking_id=booking_id)
        starts_at = booking.starts_at

        def record(conn: Connection) -> tuple[Row[Any], bool]:
            found = _find(conn, booking_id)
            if found is not None:
                return found, False
            paid = paid_by(conn, booking_id)
            payment = locked_payment(conn, paid[0]) if paid is not None else None
            found = _find(conn, booking_id)  # a concurrent cancel may have won the lock first
            if found is not None:
                return found, False
            notice = None if starts_at is None else starts_at - when
            values: dict[str, Any] = {
                "booking_id": booking_id,
                "cancelled_by": by,
                "reason": reason,
                "cancelled_at": when,
                "starts_at": starts_at,
                "created_at": self._clock(),
            }
            if payment is None:
                bps, rule = self.policy.refund_bps(by, notice)
                values |= {"payment_intent_id": None, "refund_bps": bps, "fee_kept": False}
                values |= {"currency": None, "refund_amount": 0, "rule": rule + "; nothing paid"}
            else:
                cur = payment.currency
                decision = self.policy.decide(
                    by,
                    notice,
                    remaining=Money(payment.amount - payment.amount_reversed, cur),
                    payout_left=Money(payment.mentor_payout - payment.payout_reversed, cur),
                )
                values |= {
                    "payment_intent_id": payment.payment_intent_id,
                    "refund_bps": decision.refund_bps,
                    "fee_kept": decision.fee_kept,
                    "currency": cur,
                    "refund_amount": decision.refund.amount,
                    "rule": decision.rule,
                }
            refunds = values["refund_amount"] > 0
            values["request_key"] = cancellation_request_id(booking_id) if refunds else None
            inserted = conn.execute(
                insert_for(conn, _cancellations)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["booking_id"])
                .returning(_cancellations.c.id)
            ).first()
            if inserted is not None and payment is not None and values["fee_kept"] and refunds:
                # Only the cancellation that was recorded tells the ledger, before any refund.
                refund = Money(values["refund_amount"], payment.currency)
                self._ledger.keep_fee(payment.payment_intent_id, refund, conn=conn)
            row = _find(conn, booking_id)
            assert row is not None  # inserted, or a concurrent insert won and committed
            return row, inserted is not None

        row, created = run_in_transaction(self._engine, record, retries=self._config.db_retries)
        refund: RefundResult | None = None
        amount: Money | None = None
        if row.refund_amount > 0 and row.payment_intent_id is not None:
            amount = Money(row.refund_amount, row.currency)
            refund = self._refunds.refund(
                row.payment_intent_id,
                amount,
                reason="requested_by_customer" if row.cancelled_by == "mentee" else None,
                request_id=row.request_key,
            )
        return _result(row, amount, refund=refund, created=created)

    def cancellation(self, booking_id: str) -> CancellationResult | None:
        """The booking's recorded cancellation (without calling Stripe), or None."""
        with self._engine.connect() as conn:
            row = _find(conn, booking_id)
        if row is None:
            return None
        amount = None if not row.refund_amount else Money(row.refund_amount, row.currency)
        return _result(row, amount, refund=None, created=False)


def _result(
    row: Row[Any], amount: Money | None, *, refund: RefundResult | None, created: bool
) -> CancellationResult:
    """The answer for a recorded cancellation row (``amount``: what its refund is for)."""
    return CancellationResult(
        booking_id=row.booking_id,
        cancelled_by=row.cancelled_by,
        cancelled_at=row.cancelled_at,
        starts_at=row.starts_at,
        payment_intent_id=row.payment_intent_id,
        refund_amount=amount,
        refund_bps=row.refund_bps,
        fee_kept=bool(row.fee_kept),
        rule=row.rule,
        reason=row.reason,
        refund=refund,
        created=created,
    )


def _find(conn: Connection, booking_id: str) -> Row[Any] | None:
    return conn.execute(
        select(_cancellations).where(_cancellations.c.booking_id == booking_id)
    ).first()
