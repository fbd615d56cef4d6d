"""A plan period's recording, shared by the plan event handlers
(:mod:`mentorpay.webhooks.handlers.plans`, whose docstring has the rules): finding a
subscription's purchase, applying its newer states, recording a period's or a package's
payment through the payment truth, and granting its session credits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.engine import Connection

from mentorpay.bookings import BookingInfo
from mentorpay.events import Effect, EventEnvelope, HandlerResult
from mentorpay.money import Money
from mentorpay.payment_truth import Expected
from mentorpay.plans import rules, storage
from mentorpay.webhooks._inbox import InboxStore
from mentorpay.webhooks.handlers.payments import PaymentRecorder

__all__ = ["PlanPeriods", "halves_disagree", "period_booking_id", "purchase_data"]

logger = logging.getLogger("mentorpay.webhooks")


def period_booking_id(purchase_id: str, invoice_id: str | None) -> str:
    """The booking id a plan period's ledger payment carries."""
    return f"plan:{purchase_id}" if invoice_id is None else f"plan:{purchase_id}:{invoice_id}"


class PlanPeriods:
    """Records plan periods and packages as ledger payments, with their credits."""

    def __init__(self, recorder: PaymentRecorder, *, clock: Callable[[], datetime]) -> None:
        self._recorder = recorder
        self._clock = clock

    # -- finding the purchase ----------------------------------------------------------------

    @staticmethod
    def _purchase_for(conn: Connection, subscription_id: str | None) -> Row[Any] | None:
        """The purchase of a subscription, locked. Only a completed Checkout Session that
        mentorpay created links a subscription to a purchase (:meth:`subscription_checkout`):
        metadata naming a purchase never does, since anyone with the platform's keys can
        create a subscription carrying it."""
        if subscription_id is None:
            return None
        return storage.purchase_by_subscription(conn, subscription_id)

    def _advance(self, conn: Connection, row: Row[Any], env: EventEnvelope, **values: Any) -> bool:
        """Apply a subscription state newer than the last one applied; ``False`` if stale.

        ``canceled`` is final. A purchase cancelled through ``mp.plans.cancel`` is canceled
        before Stripe's ``customer.subscription.deleted`` arrives: that event (newer than any
        applied) still counts once, so the host hears of the cancellation."""
        if row.status == "canceled":
            if values.get("status") != "canceled" or env.created < row.stripe_seen_at:
                return False
            storage.update_purchase(conn, row.id, self._clock(), stripe_seen_at=env.created)
            return True
        if env.created < row.stripe_seen_at:
            return False
        status = values.get("status")
        if status == "checkout" and row.status not in ("creating", "checkout"):
            values.pop("status")  # an incomplete first payment never undoes a paid one
        if values.get("status") == "canceled":
            values.update(open_key=None, canceled_at=values.get("canceled_at") or self._clock())
        storage.update_purchase(conn, row.id, self._clock(), stripe_seen_at=env.created, **values)
        return True

    @staticmethod
    def _intent_taken(conn: Connection, pi: str | None, invoice_id: str) -> bool:
        """Whether ``pi`` already paid another period (a forged or confused event): one
        intent pays one period, and the row's unique key would fail the event forever."""
        other = storage.period_by_intent(conn, pi) if pi is not None else None
        if other is None or other.invoice_id == invoice_id:
            return False
        logger.warning("invoice %s names payment %s of another period; ignored", invoice_id, pi)
        return True

    # -- recording a period ------------------------------------------------------------------

    def _complete(
        self,
        conn: Connection,
        env: EventEnvelope,
        period: Row[Any],
        meta: Mapping[str, str],
        *,
        review: str | None = None,
    ) -> HandlerResult:
        """Record the period's payment and grant its credits, once both halves are known."""
        pi = period.payment_intent_id
        if period.status != "pending" or period.purchase_id is None or pi is None:
            return HandlerResult("success")  # the other half completes it
        purchase = storage.lock_purchase(conn, period.purchase_id)
        assert purchase is not None
        now = self._clock()
        price, sessions = purchase.price, purchase.sessions
        # Connect: the fee Stripe keeps on this price (None: the policy's, as sent with a change).
        fee = purchase.application_fee
        if period.plan_id is not None and period.plan_id == purchase.pending_plan_id:
            # The change mentorpay asked for took effect with this invoice.
            price, sessions = purchase.pending_price, purchase.pending_sessions
            storage.update_purchase(
                conn,
                purchase.id,
                now,
                plan_id=purchase.pending_plan_id,
                price=price,
                sessions=sessions,
                pending_plan_id=None,
                pending_price=None,
                pending_sessions=None,
                application_fee=None,
            )
            fee = None
        # Refunds and disputes of this intent ignored meanwhile (see the module docstring).
        self._recorder.serialize_on(conn, pi)
        InboxStore.ignore_waiting(conn, pi, now, revive=True)
        booking_id = period_booking_id(purchase.id, period.invoice_id)
        result = self._record(conn, env, purchase, booking_id, Money(price, purchase.currency),
                              pi=pi, amount=period.amount, currency=period.currency, meta=meta,
                              session_id=None, charge_id=None, review=review,
                              fee=fee)  # fmt: skip
        return self._granted(conn, purchase, result, period_id=period.id, sessions=sessions,
                             booking_id=booking_id, now=now)  # fmt: skip

    def _record(
        self,
        conn: Connection,
        env: EventEnvelope,
        purchase: Row[Any],
        booking_id: str,
        price: Money,
        *,
        pi: str,
        amount: int | None,
        currency: str | None,
        meta: Mapping[str, str],
        session_id: str | None,
        charge_id: str | None,
        review: str | None = None,
        fee: int | None = None,
    ) -> HandlerResult:
        expected = Expected(booking_id, purchase.mentor_id, purchase.mentee_id, price, "checkout")
        booking = BookingInfo(
            id=booking_id,
            mentee_id=purchase.mentee_id,
            mentor_id=purchase.mentor_id,
            price=price,
            status="confirmed",
            mentor_stripe_account=purchase.destination,
        )
        return self._recorder.record(
            conn,
            env,
            pi=pi,
            amount=amount,
            currency=currency,
            metadata=meta,
            session_id=session_id,
            charge_id=charge_id,
            platform_fee=fee,
            expected=(expected, booking),
            extra_reason=review,
        )

    def _granted(
        self,
        conn: Connection,
        purchase: Row[Any],
        result: HandlerResult,
        *,
        period_id: int,
        sessions: int,
        booking_id: str,
        now: datetime,
    ) -> HandlerResult:
        """After the payment: the period's credits (none while it is under review)."""
        period = storage.period(conn, period_id)
        assert period is not None
        if result.status == "payment_already_processed":
            # A sibling event recorded it: nothing more, unless this payment paid another
            # booking (then the period is left for an operator).
            return result
        if result.status not in ("success", "needs_review"):
            return result
        paid = result.status == "success"
        expires = rules.expires_at(
            kind=purchase.kind,
            paid_at=now,
            period_start=period.period_start,
            period_end=period.period_end,
            validity=timedelta(seconds=purchase.validity_seconds),
            carry_over_periods=purchase.carry_over_periods,
        )
        storage.update_period(
            conn,
            period_id,
            now,
            status="paid" if paid else "needs_review",
            credits=sessions if paid else 0,
            expires_at=expires,
            period_start=period.period_start or now,
            period_end=period.period_end or expires,
        )
        if not paid:
            return result
        effect = Effect(
            "plan_period_paid",
            {
                "plan_purchase_id": purchase.id,
                "plan_id": period.plan_id or purchase.plan_id,
                "kind": purchase.kind,
                "booking_id": booking_id,
                "mentor_id": purchase.mentor_id,
                "mentee_id": purchase.mentee_id,
                "invoice_id": period.invoice_id,
                "payment_intent_id": period.payment_intent_id,
                "currency": period.currency,
                "amount": period.amount,
                "credits": sessions,
                "mentor_payout": period.mentor_payout,
                "expires_at": expires.isoformat(),
            },
        )
        return HandlerResult(result.status, [*result.effects, effect], reason=result.reason)

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
    ) -> HandlerResult:
        """A package's payment: a ledger payment like a booking's, and the package's credits."""
        purchase = storage.lock_purchase(conn, metadata["plan_purchase_id"])
        if purchase is None or purchase.kind != "package":
            logger.info("payment %s names no mentorpay package; ignored", pi)
            return HandlerResult("ignored", reason="not a mentorpay package", waiting_for=pi)
        now = self._clock()
        booking_id = period_booking_id(purchase.id, None)
        price = Money(purchase.price, purchase.currency)
        foreign = None
        if session_id is not None and session_id != purchase.checkout_session_id:
            foreign = f"session_mismatch: {session_id} is not the package's checkout session"
        result = self._record(conn, env, purchase, booking_id, price, pi=pi, amount=amount,
                              currency=currency, meta=metadata, session_id=session_id,
                              charge_id=charge_id, review=foreign,
                              fee=purchase.application_fee)  # fmt: skip
        if result.status not in ("success", "needs_review"):
            return result
        storage.insert_package_period(
            conn,
            {
                "purchase_id": purchase.id,
                "payment_intent_id": pi,
                "plan_id": purchase.plan_id,
                "currency": purchase.currency,
                "amount": amount or 0,
                "credits": 0,
                "used": 0,
                "status": "pending",
                "created_at": now,
                "updated_at": now,
            },
        )
        storage.update_purchase(conn, purchase.id, now, status="paid", open_key=None)
        period = storage.period_by_intent(conn, pi)
        assert period is not None
        sessions = purchase.sessions
        return self._granted(conn, purchase, result, period_id=period.id, sessions=sessions,
                             booking_id=booking_id, now=now)  # fmt: skip


def halves_disagree(period: Row[Any], amount: int | None, currency: str) -> str | None:
    """A review reason when this event's amount or currency differs from what the invoice's
    other half recorded first (the row keeps the first figure; dropping the second silently
    would make the outcome depend on the order Stripe delivered them in)."""
    if (amount is None or period.amount in (None, amount)) and period.currency in (None, currency):
        return None
    return (
        f"invoice_mismatch: the events of invoice {period.invoice_id} disagree "
        f"({period.amount} {period.currency} vs {amount} {currency})"
    )


def purchase_data(purchase: Row[Any], env: EventEnvelope) -> dict[str, Any]:
    return {
        "event_id": env.id,
        "plan_purchase_id": purchase.id,
        "plan_id": purchase.plan_id,
        "subscription_id": purchase.subscription_id,
        "mentor_id": purchase.mentor_id,
        "mentee_id": purchase.mentee_id,
    }
