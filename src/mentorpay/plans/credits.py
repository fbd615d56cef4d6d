"""Session credits: spending one on a booking, giving it back, releasing its session's share
when it took place (the ledger's release hook), and lapsing unused ones (see
:mod:`mentorpay.plans`). Mixed into :class:`~mentorpay.plans.service.PlansService`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Engine, Row
from sqlalchemy.engine import Connection

from mentorpay.bookings import BookingSource
from mentorpay.config import MentorpayConfig
from mentorpay.db import check_id, read_connection, run_in_transaction
from mentorpay.errors import (
    AlreadyPaidError,
    BookingNotFoundError,
    ConflictError,
    InvalidRequestError,
    NoCreditsError,
    NotAuthorizedError,
    NotBookingOwnerError,
    PlanNotFoundError,
)
from mentorpay.ledger import LedgerService
from mentorpay.ledger.views import Posting
from mentorpay.money import Money
from mentorpay.plans import rules, storage
from mentorpay.plans.views import CreditView

__all__ = ["PlanCredits"]


class PlanCredits:
    """Credits of plan purchases: consume, give back, release, lapse."""

    _config: MentorpayConfig
    _engine: Engine
    _ledger: LedgerService
    _bookings: BookingSource | None
    _clock: Callable[[], datetime]

    def credit_for(self, booking_id: str) -> CreditView | None:
        """The credit a booking was paid with, if any."""
        with read_connection(self._engine) as conn:
            use = storage.credit_use(conn, booking_id)
            if use is None:
                return None
            period = storage.period(conn, use.period_id)
            assert period is not None
            return _credit(use, period)

    # -- credits -------------------------------------------------------------------------------

    def consume(self, purchase_id: str, booking_id: str) -> CreditView:
        """Spend one credit of the purchase on ``booking_id`` (the soonest to lapse first).

        The booking must be the mentee's, with the plan's mentor (when the host knows it).
        Spending again for the same booking returns the same credit. Raises
        :class:`NoCreditsError` when none is left, :class:`PlanNotFoundError`,
        :class:`BookingNotFoundError`, :class:`NotBookingOwnerError`."""
        check_id(booking_id, field="booking_id")
        return run_in_transaction(
            self._engine,
            lambda c: self._consume(c, purchase_id, booking_id),
            retries=self._config.db_retries,
        )

    def _consume(self, conn: Connection, purchase_id: str, booking_id: str) -> CreditView:
        row = self._find(conn, purchase_id)
        booking = self._bookings.get_booking(booking_id) if self._bookings else None
        if self._bookings is not None and booking is None:
            raise BookingNotFoundError(f"there is no booking {booking_id}", booking_id=booking_id)
        if booking is not None and booking.mentee_id != row.mentee_id:
            raise NotBookingOwnerError(
                f"booking {booking_id} is not {row.mentee_id}'s", booking_id=booking_id
            )
        if booking is not None and booking.mentor_id != row.mentor_id:
            raise ConflictError(
                f"booking {booking_id} is with another mentor than plan {row.plan_id}'s",
                booking_id=booking_id,
            )
        existing = storage.credit_use(conn, booking_id)
        if existing is not None:
            period = storage.period(conn, existing.period_id)
            assert period is not None
            if period.purchase_id != row.id:
                raise AlreadyPaidError(
                    f"booking {booking_id} was paid with another plan's credit",
                    booking_id=booking_id,
                )
            return _credit(existing, period)
        now = self._clock()
        for period in storage.usable_periods(conn, row.id, now):
            if period.payment_status == "needs_review":
                continue
            left = rules.credits_left(
                period.credits, period.used, period.amount, period.amount_reversed or 0
            )
            if left <= 0:
                continue
            seq = storage.free_seq(conn, period.id)
            storage.insert_use(conn, booking_id=booking_id, period_id=period.id, seq=seq, now=now)
            storage.update_period(conn, period.id, now, used=period.used + 1)
            use = storage.credit_use(conn, booking_id)
            assert use is not None
            return _credit(use, period)
        raise NoCreditsError(
            f"plan purchase {row.id} has no session credit left", plan_purchase_id=row.id
        )

    def give_back(self, booking_id: str) -> bool:
        """The booking was cancelled before its session: its credit is usable again (``False``
        if it had none). A released credit (the session took place) cannot be given back."""

        def give(conn: Connection) -> bool:
            use = storage.credit_use(conn, booking_id, lock=True)
            if use is None:
                return False
            if use.released_at is not None:
                raise ConflictError(
                    f"the session of booking {booking_id} took place; its credit is spent",
                    booking_id=booking_id,
                )
            period = storage.period(conn, use.period_id, lock=True)
            assert period is not None
            storage.delete_use(conn, booking_id)
            storage.update_period(conn, period.id, self._clock(), used=period.used - 1)
            return True

        return run_in_transaction(self._engine, give, retries=self._config.db_retries)

    def _release_session(self, conn: Connection, booking_id: str) -> list[Posting]:
        """The ledger's release hook: the session paid with a credit took place."""
        use = storage.credit_use(conn, booking_id, lock=True)
        if use is None or use.released_at is not None:
            return []
        period = storage.period(conn, use.period_id)
        assert period is not None
        storage.mark_released(conn, booking_id, self._clock())
        pi = period.payment_intent_id
        if pi is None or period.mentor_payout is None or period.credits <= use.seq:
            return []
        share = rules.session_share(
            Money(period.mentor_payout, period.currency), period.credits, use.seq
        )
        posting = self._ledger.release_share(
            pi, share, key=f"release:{pi}:credit:{use.seq}", conn=conn
        )
        return [posting] if posting.created else []

    def expire_due(self, now: datetime | None = None, *, batch: int = 200) -> int:
        """Lapse the credits of every period past ``expires_at`` and release the rest of its
        mentor share; returns how many periods lapsed (``batch`` per transaction)."""
        cutoff = now or self._clock()
        if cutoff.tzinfo is None:
            raise InvalidRequestError("expire_due needs an aware datetime (tzinfo=UTC)")
        total, after = 0, 0
        while True:
            seen, after = run_in_transaction(
                self._engine,
                partial(self._expire_batch, cutoff=cutoff, after=after, batch=batch),
                retries=self._config.db_retries,
            )
            total += seen
            if seen < batch:
                return total

    def _expire_batch(
        self, conn: Connection, *, cutoff: datetime, after: int, batch: int
    ) -> tuple[int, int]:
        rows = storage.due_periods(conn, cutoff, after, batch)
        now = self._clock()
        for period in rows:
            if period.payment_intent_id is not None:
                self._ledger.release_payment(period.payment_intent_id, conn=conn)
            storage.update_period(conn, period.id, now, status="expired")
        return len(rows), (rows[-1].id if rows else after)

    # -- helpers -------------------------------------------------------------------------------

    def _find(self, conn: Connection, purchase_id: str) -> Row[Any]:
        check_id(purchase_id, field="purchase_id")
        row = storage.purchase(conn, purchase_id)
        if row is None:
            row = storage.purchase_by_subscription(conn, purchase_id)
        if row is None:
            raise PlanNotFoundError(
                f"there is no plan purchase {purchase_id}", plan_purchase_id=purchase_id
            )
        return row

    def _owned(self, conn: Connection, purchase_id: str, user_id: str) -> Row[Any]:
        row = self._find(conn, purchase_id)
        if row.mentee_id != user_id:
            raise NotAuthorizedError(
                "only the mentee who bought a plan may manage it", plan_purchase_id=row.id
            )
        return row


def _credit(use: Row[Any], period: Row[Any]) -> CreditView:
    share = Money.zero(period.currency)
    if period.mentor_payout is not None and period.credits > use.seq:
        share = rules.session_share(
            Money(period.mentor_payout, period.currency), period.credits, use.seq
        )
    return CreditView(
        booking_id=use.booking_id,
        plan_purchase_id=period.purchase_id,
        period_id=period.id,
        seq=use.seq,
        share=share,
        released_at=use.released_at,
    )
