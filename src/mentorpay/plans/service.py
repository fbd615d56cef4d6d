"""``mp.plans``: the mentee's plans and their session credits.

Spending a credit (:meth:`PlansService.consume`) ties a booking to the ``k``-th credit of the
period that lapses soonest; when the session took place, ``mp.ledger.release(booking_id)``
releases that credit's share of the period's mentor payout (a release hook this service
installs on the ledger). :meth:`PlansService.expire_due` lapses the credits of periods past
their ``expires_at`` and releases the rest of their share. Cancelling and changing a
subscription go through the gateway with idempotency keys; the webhooks then confirm them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Engine, Row
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.bookings import BookingSource
from mentorpay.config import MentorpayConfig
from mentorpay.db import check_id, read_connection, run_in_transaction
from mentorpay.errors import (
    AlreadyPaidError,
    BookingNotFoundError,
    ConflictError,
    CurrencyMismatchError,
    GatewayError,
    InvalidRequestError,
    NoCreditsError,
    NotAuthorizedError,
    NotBookingOwnerError,
    PlanNotFoundError,
)
from mentorpay.gateway import (
    PaymentGateway,
    PlanCheckoutParams,
    is_subscription_canceled,
    plan_cancel_idempotency_key,
    plan_change_idempotency_key,
    portal_idempotency_key,
)
from mentorpay.ledger import LedgerService
from mentorpay.ledger.views import Posting
from mentorpay.money import Money
from mentorpay.plans import rules, storage
from mentorpay.plans.info import PlanSource
from mentorpay.plans.views import CreditView, PlanPurchaseView, purchase_view

__all__ = ["PlansService"]


class PlansService:
    """Plan purchases, credits, cancellation, plan changes and the billing portal."""

    def __init__(
        self,
        config: MentorpayConfig,
        engine: Engine,
        ledger: LedgerService,
        gateway: PaymentGateway,
        *,
        plans: PlanSource | None = None,
        bookings: BookingSource | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._engine = engine
        self._ledger = ledger
        self._gateway = gateway
        self._plans = plans
        self._bookings = bookings
        self._clock = clock
        ledger.add_release_hook(self._release_session)

    # -- reads ---------------------------------------------------------------------------------

    def get(self, purchase_id: str) -> PlanPurchaseView:
        """A purchase (by mentorpay's id or the Stripe subscription id) and its credits."""
        with read_connection(self._engine) as conn:
            row = self._find(conn, purchase_id)
            return purchase_view(row, storage.periods_of(conn, row.id), self._clock())

    def list_purchases(
        self, *, mentee_id: str | None = None, mentor_id: str | None = None, limit: int = 100
    ) -> list[PlanPurchaseView]:
        """A mentee's or a mentor's purchases (newest first), with their credits."""
        if not 1 <= limit <= 1000:
            raise InvalidRequestError("limit must be between 1 and 1000", limit=limit)
        now = self._clock()
        with read_connection(self._engine) as conn:
            rows = storage.list_purchases(
                conn, mentee_id=mentee_id, mentor_id=mentor_id, limit=limit
            )
            return [purchase_view(r, storage.periods_of(conn, r.id), now) for r in rows]

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

    # -- management ----------------------------------------------------------------------------

    def cancel(
        self, purchase_id: str, *, user_id: str, at_period_end: bool = True
    ) -> PlanPurchaseView:
        """Cancel the mentee's subscription at the end of the period (default) or now. Credits
        already paid for stay usable until they lapse. Idempotent."""
        with read_connection(self._engine) as conn:
            row = self._owned(conn, purchase_id, user_id)
        if row.kind != "subscription" or row.subscription_id is None:
            raise ConflictError(
                f"plan purchase {row.id} is not a live subscription", plan_purchase_id=row.id
            )
        if row.status == "canceled" or (at_period_end and row.cancel_at_period_end):
            return self.get(row.id)
        try:
            self._gateway.cancel_subscription(
                row.subscription_id,
                at_period_end=at_period_end,
                idempotency_key=plan_cancel_idempotency_key(
                    row.subscription_id, at_period_end=at_period_end
                ),
            )
            canceled = not at_period_end
        except GatewayError as exc:
            # Already canceled at Stripe (a retry after a lost answer, or the portal): done.
            if not is_subscription_canceled(exc):
                raise
            canceled = True
        values: dict[str, Any] = {"cancel_at_period_end": True}
        if canceled:
            values = {"status": "canceled", "open_key": None, "canceled_at": self._clock()}
        run_in_transaction(
            self._engine,
            lambda c: storage.update_purchase(c, row.id, self._clock(), **values),
            retries=self._config.db_retries,
        )
        return self.get(row.id)

    def change(self, purchase_id: str, plan_id: str, *, user_id: str) -> PlanPurchaseView:
        """Move the mentee's subscription to another plan of the same mentor from the next
        period on (no proration): the first invoice naming the new plan is checked against
        its price and grants its credits."""
        plan = self._plans.get_plan(plan_id) if self._plans is not None else None
        if plan is None:
            raise PlanNotFoundError(f"there is no plan {plan_id}", plan_id=plan_id)

        def claim(conn: Connection) -> tuple[Row[Any], int] | None:
            row = self._owned(conn, purchase_id, user_id)
            if row.kind != "subscription" or row.status not in ("active", "past_due"):
                raise ConflictError(f"plan purchase {row.id} is not a live subscription")
            if row.item_id is None or row.subscription_id is None:
                raise ConflictError("the subscription is not confirmed by Stripe yet; retry")
            if plan.kind != "subscription" or plan.mentor_id != row.mentor_id:
                raise ConflictError(f"plan {plan_id} is not a plan of the same mentor")
            if plan.price.currency != row.currency:
                raise CurrencyMismatchError(
                    "a subscription keeps its currency", currency=row.currency
                )
            if plan_id == row.plan_id and row.pending_plan_id is None:
                return None
            changes = row.plan_changes + (0 if row.pending_plan_id == plan_id else 1)
            storage.update_purchase(
                conn,
                row.id,
                self._clock(),
                plan_changes=changes,
                pending_plan_id=plan_id,
                pending_price=plan.price.amount,
                pending_sessions=plan.sessions,
            )
            return row, changes

        claimed = run_in_transaction(self._engine, claim, retries=self._config.db_retries)
        if claimed is None:
            return self.get(purchase_id)
        row, changes = claimed
        params = PlanCheckoutParams(
            purchase_id=row.id,
            plan_id=plan.id,
            kind="subscription",
            mentor_id=row.mentor_id,
            mentee_id=row.mentee_id,
            amount=plan.price,
            line_item_name=plan.label,
            success_url="https://invalid.example/unused",
            cancel_url="https://invalid.example/unused",
            expires_at=row.checkout_expires_at,
            interval=plan.interval,
            interval_count=plan.interval_count,
            stripe_price_id=plan.stripe_price_id,
            destination=row.destination,
            application_fee_percent=(
                rules.fee_percent(self._config.policy_for(row.mentor_id), plan.price)
                if row.destination
                else None
            ),
        )
        self._gateway.change_subscription_plan(
            row.subscription_id,
            item_id=row.item_id,
            params=params,
            idempotency_key=plan_change_idempotency_key(row.subscription_id, plan.id, changes),
        )
        return self.get(row.id)

    def portal_url(self, user_id: str, return_url: str) -> str:
        """A Stripe billing-portal link for the mentee (payment method, invoices, cancel)."""
        check_id(user_id, field="user_id")
        if not isinstance(return_url, str) or not return_url.startswith(("https://", "http://")):
            raise InvalidRequestError("return_url must be an absolute http(s) URL")
        with read_connection(self._engine) as conn:
            rows = storage.list_purchases(conn, mentee_id=user_id)
        customer = next((r.customer_id for r in rows if r.customer_id), None)
        if customer is None:
            raise PlanNotFoundError(
                f"{user_id} has no plan with a Stripe customer yet", user_id=user_id
            )
        issued = int(self._clock().timestamp())
        return self._gateway.create_billing_portal_session(
            customer,
            return_url=return_url,
            idempotency_key=portal_idempotency_key(customer, issued),
        )

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
