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
from typing import Any

from sqlalchemy import Engine, Row
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.bookings import BookingSource
from mentorpay.config import MentorpayConfig
from mentorpay.db import check_id, read_connection, run_in_transaction
from mentorpay.errors import (
    ConflictError,
    CurrencyMismatchError,
    GatewayError,
    InvalidRequestError,
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
from mentorpay.plans import rules, storage
from mentorpay.plans.credits import PlanCredits
from mentorpay.plans.info import PlanSource
from mentorpay.plans.views import PlanPurchaseView, purchase_view

__all__ = ["PlansService"]


class PlansService(PlanCredits):
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
            if row.subscription_id is None:
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
        item_id = row.item_id
        if item_id is None:
            # Its subscription events came before the checkout linked it: ask Stripe.
            item_id = self._gateway.retrieve_subscription(row.subscription_id).item_id
            if item_id is None:
                raise ConflictError("the subscription has no item to change; retry")
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
            item_id=item_id,
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
