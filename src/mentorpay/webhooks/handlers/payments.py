"""Payment events: ``checkout.session.*`` and ``payment_intent.*`` record a booking's payment.

``checkout.session.completed`` credits only when ``payment_status`` is ``paid`` (an ``unpaid``
session marks mentorpay's row ``awaiting_payment`` and waits for ``async_payment_succeeded``;
``async_payment_failed`` marks it ``payment_failed``). Metadata only locates the booking: who is
credited and how much come from mentorpay's own checkout row, else from the host's
``BookingSource`` (:mod:`mentorpay.payment_truth`). A payment that disagrees is recorded on the
platform's suspense account and answered ``needs_review``; one that names no booking and matches
no checkout row is answered ``ignored``. ``payment_failed`` effects are sent once per failure
event (each failed attempt of a payment intent is its own event).

Exactly one of the sibling events (``checkout.session.completed``,
``checkout.session.async_payment_succeeded``, ``payment_intent.succeeded``) records a payment:
the payments' unique intent id decides. Recording a payment applies, in the same transaction,
the refunds and disputes deferred on it (:mod:`mentorpay.webhooks._deferral`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from mentorpay.bookings import BookingInfo, BookingSource
from mentorpay.checkout import sessions as checkout_sessions
from mentorpay.config import MentorpayConfig
from mentorpay.db import driver_execute, placeholder
from mentorpay.errors import WebhookPayloadError
from mentorpay.events import Effect, EventEnvelope, Handler, HandlerResult
from mentorpay.ledger import UNPAID_PAYMENT_STATUSES, LedgerService
from mentorpay.money import Money
from mentorpay.payment_truth import Claim, Expected, disagreements
from mentorpay.stripe_objects import (
    CheckoutSessionObject,
    PaymentIntentObject,
    event_money,
    parse_object,
)
from mentorpay.webhooks.handlers._common import Booking as _Booking
from mentorpay.webhooks.handlers._common import PlanPayments, is_plan
from mentorpay.webhooks.handlers._common import booking as _booking
from mentorpay.webhooks.handlers._common import fee as _fee

__all__ = ["PaymentHandlers", "PaymentRecorder"]

logger = logging.getLogger("mentorpay.webhooks")

#: In-transaction hooks from the deferral machinery (see ``PaymentRecorder``).
Drain = Callable[[Connection, str, datetime], list[Effect]]
Serialize = Callable[[Connection, str], None]
Settle = Callable[[Connection, str, datetime], None]


class _CheckoutTerms(NamedTuple):
    """What mentorpay's checkout row asked Stripe to charge (see ``_checkout_terms``)."""

    id: str
    booking_id: str
    mentor_id: str
    mentee_id: str
    currency: str
    amount: int
    platform_fee: int


class PaymentRecorder:
    """The payment truth: check a reported payment against mentorpay's terms, then record it.

    ``serialize_on``, ``drain`` and ``settle_orphans`` come from the deferral machinery: the
    payment's transaction takes the intent's lock, then applies (or ignores) what waits for it.
    """

    def __init__(
        self,
        config: MentorpayConfig,
        engine: Engine,
        ledger: LedgerService,
        bookings: BookingSource | None,
        *,
        clock: Callable[[], datetime],
        serialize_on: Serialize,
        drain: Drain,
        settle_orphans: Settle,
    ) -> None:
        self._config = config
        self._ledger = ledger
        #: The host's bookings: the truth for payments mentorpay did not create a session for.
        #: Without one, such payments are parked for review (metadata alone is never trusted).
        self._bookings = bookings
        self._clock = clock
        #: Serializes decisions about one payment intent (PostgreSQL; see _deferral).
        self.serialize_on = serialize_on
        self._drain = drain
        self._settle_orphans = settle_orphans
        #: Set by ``MentorPay``: packages and subscription checkouts go to the plans.
        self.plans: PlanPayments | None = None
        # A payment's truth in one round trip: the checkout row(s) and, in the same statement,
        # another payment intent that already paid the booking (see _checkout_terms). The
        # one-row derived table keeps "paid by" answered when no checkout row exists.
        p = placeholder(engine)
        unpaid = ", ".join(f"'{status}'" for status in UNPAID_PAYMENT_STATUSES)
        terms = (  # built from constants only; every value is bound
            "SELECT (SELECT p.payment_intent_id FROM mentorpay_payments p"  # noqa: S608
            f" WHERE p.booking_id = COALESCE(c.booking_id, {p}) AND p.payment_intent_id <> {p}"
            f" AND p.status NOT IN ({unpaid}) LIMIT 1),"
            " c.id, c.booking_id, c.mentor_id, c.mentee_id, c.currency, c.amount, c.platform_fee"
            " FROM (SELECT 1 AS one) v LEFT JOIN mentorpay_checkout_sessions c ON "
        )
        self._terms_by_session = terms + f"c.id = {p}"
        self._terms_by_booking = (
            terms + f"c.booking_id = {p} AND c.status NOT IN ('creating', 'abandoned')"
            " ORDER BY c.created_at DESC"
        )

    def _checkout_terms(
        self,
        conn: Connection,
        pi: str,
        session_id: str | None,
        booking_id: str | None,
        gross: Money,
    ) -> tuple[_CheckoutTerms | None, str | None]:
        """mentorpay's own checkout terms for this payment, and who already paid its booking.

        One prebuilt statement (one round trip): the checkout row by session id, else by the
        booking the metadata names (a payment intent does not name its Checkout Session: the
        newest session of that booking that asked for this amount, else its newest, which then
        disagrees and goes to review), and beside it another payment intent that already paid
        that booking (refunded or reviewed ones do not count).
        """
        if session_id is not None:
            rows = driver_execute(conn, self._terms_by_session, (booking_id, pi, session_id))
        elif booking_id is not None:
            rows = driver_execute(conn, self._terms_by_booking, (booking_id, pi, booking_id))
        else:
            return None, None  # names no booking and no session: nothing to look up
        paid_by: str | None = rows[0][0] if rows else None
        found = [_CheckoutTerms(*r[1:]) for r in rows if r[1] is not None]
        for terms in found:
            if (terms.amount, terms.currency) == (gross.amount, gross.currency):
                return terms, paid_by
        return (found[0] if found else None), paid_by

    def _expected(
        self, row: _CheckoutTerms | None, claimed: _Booking | None
    ) -> tuple[Expected | None, BookingInfo | None]:
        """What mentorpay asked for (its checkout row, else the host's booking) and the booking."""
        booking_id = row.booking_id if row is not None else claimed.booking_id if claimed else None
        if booking_id is None:
            return None, None
        booking = self._bookings.get_booking(booking_id) if self._bookings is not None else None
        if row is not None:
            price = Money(row.amount, row.currency)
            return Expected(booking_id, row.mentor_id, row.mentee_id, price, "checkout"), booking
        assert claimed is not None
        if booking is None:
            return (
                Expected(booking_id, claimed.mentor_id, claimed.mentee_id, None, "booking"),
                None,
            )
        return (
            Expected(booking_id, booking.mentor_id, booking.mentee_id, booking.price, "booking"),
            booking,
        )

    def record(
        self,
        conn: Connection,
        env: EventEnvelope,
        *,
        pi: str | None,
        amount: int | None,
        currency: str | None,
        metadata: Mapping[str, str] | None,
        session_id: str | None,
        charge_id: str | None,
        destination: str | None = None,
        platform_fee: int | None = None,
        expected: tuple[Expected, BookingInfo] | None = None,
        extra_reason: str | None = None,
    ) -> HandlerResult:
        """Check a reported payment against mentorpay's terms and record it (see the class).

        ``expected``: the truth when the caller already knows it (a plan period, from the
        plan tables): what to charge and the booking it stands for; the metadata then only
        names the mentor and mentee to compare. ``extra_reason``: one more disagreement the
        caller found."""
        if pi is not None and expected is None and self.plans is not None and is_plan(metadata):
            assert metadata is not None
            return self.plans.record_package(
                conn,
                env,
                pi=pi,
                amount=amount,
                currency=currency,
                metadata=metadata,
                session_id=session_id,
                charge_id=charge_id,
            )
        claimed = _booking(metadata, env) if expected is None else None
        if pi is None:
            # Subscription and setup sessions have no payment intent; not a booking payment.
            logger.info("%s %s has no payment intent; ignored", env.type, env.id)
            return HandlerResult("ignored")
        now = self._clock()
        if amount is None:
            if claimed is None:
                return self._orphan(conn, pi, now)
            raise WebhookPayloadError(
                f"{env.type} event {env.id}: the amount is missing",
                event_id=env.id,
                event_type=env.type,
            )
        gross = event_money(amount, currency, env)
        booking: BookingInfo | None
        if expected is not None:
            truth, booking = expected
            # The plan tables are the terms (no checkout row names a period); the lookup
            # still answers whether another payment intent already paid this booking.
            row = None
            _, paid_by = self._checkout_terms(conn, pi, None, truth.booking_id, gross)
            meta = metadata or {}
            claim = Claim(gross, None, meta.get("mentor_id"), meta.get("mentee_id"))
        else:
            row, paid_by = self._checkout_terms(
                conn, pi, session_id, claimed.booking_id if claimed else None, gross
            )
            if row is None and claimed is None:
                return self._orphan(conn, pi, now)
            found, known = self._expected(row, claimed)
            assert found is not None
            truth, booking = found, known
            claim = Claim(
                gross,
                claimed.booking_id if claimed else None,
                claimed.mentor_id if claimed else None,
                claimed.mentee_id if claimed else None,
            )
        if not gross.is_positive():
            logger.warning("payment %s of %s recorded nothing; ignored", pi, gross)
            return HandlerResult("ignored", reason="a payment of zero moves no money")
        reasons = disagreements(truth, claim, booking, paid_by=paid_by)
        if extra_reason is not None:
            reasons.append(extra_reason)
        if destination is None and self._config.connect_destination_charges:
            # Checkout asked Stripe to send the mentor's share to the booking's account.
            destination = booking.mentor_stripe_account if booking is not None else None
        if destination is not None:
            if booking is None or destination != booking.mentor_stripe_account:
                reasons.append(
                    f"destination_mismatch: Stripe sent the mentor's share to {destination}, "
                    "not the booking mentor's connected account"
                )
            if platform_fee is None and row is not None:
                platform_fee = row.platform_fee
        review = "; ".join(reasons) if reasons else None
        outcome = self._ledger.record_payment(
            payment_intent_id=pi,
            booking_id=truth.booking_id,
            mentor_id=truth.mentor_id if review is None or booking is not None else "",
            mentee_id=truth.mentee_id,
            gross=gross,
            policy=self._config.policy_for(truth.mentor_id),
            checkout_session_id=row.id if row is not None else session_id,
            charge_id=charge_id,
            # A plan period is released session by session, and at expiry as a whole.
            release_due_at=None if expected is not None else now + self._config.hold_period,
            destination=destination,
            platform_fee=None if review else _fee(platform_fee, gross, env),
            review_reason=review,
            conn=conn,
        )
        if not outcome.created:
            return HandlerResult("payment_already_processed")
        data: dict[str, Any] = {
            "event_id": env.id,
            "payment_intent_id": pi,
            "checkout_session_id": session_id,
            "booking_id": truth.booking_id,
            "mentor_id": outcome.payment.mentor_id,
            "mentee_id": truth.mentee_id,
            "currency": gross.currency,
            "amount": gross.amount,
        }
        if review is not None:
            logger.warning("payment %s parked for review: %s", pi, review)
            effects = [Effect("payment_needs_review", {**data, "reason": review})]
        else:
            split = outcome.split
            data.update(
                platform_fee=split.platform_fee.amount,
                mentor_payout=split.mentor_payout.amount,
                rate_bps=split.rate_bps,
            )
            effects = [Effect("payment_succeeded", data)]
        self.serialize_on(conn, pi)
        effects.extend(self._drain(conn, pi, now))
        if review is not None:
            return HandlerResult("needs_review", effects, reason=review)
        return HandlerResult("success", effects)

    def _orphan(self, conn: Connection, pi: str, now: datetime) -> HandlerResult:
        """A payment mentorpay did not ask for and whose metadata names no booking: ignored."""
        logger.info("payment %s has no mentorpay booking metadata; ignored", pi)
        self.serialize_on(conn, pi)
        self._settle_orphans(conn, pi, now)
        # Stored on the ignored row, so later refunds and disputes of it are ignored too
        # instead of waiting forever for a payment mentorpay will never record.
        return HandlerResult("ignored", waiting_for=pi)


class PaymentHandlers:
    """The ``checkout.session.*`` and ``payment_intent.*`` handlers."""

    def __init__(self, recorder: PaymentRecorder, *, clock: Callable[[], datetime]) -> None:
        self._recorder = recorder
        self._record = recorder.record
        self._clock = clock

    def webhook_handlers(self) -> dict[str, Handler]:
        """The handlers to register (see the module docstring)."""
        return {
            "checkout.session.completed": self._on_checkout_completed,
            "checkout.session.async_payment_succeeded": self._on_checkout_async_succeeded,
            "checkout.session.async_payment_failed": self._on_checkout_async_failed,
            "checkout.session.expired": self._on_checkout_expired,
            "payment_intent.succeeded": self._on_payment_intent_succeeded,
            "payment_intent.payment_failed": self._on_payment_intent_failed,
        }

    def _on_checkout_completed(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """Completed Checkout: record the payment when paid; async methods pay later."""
        session = parse_object(CheckoutSessionObject, env)
        if session.payment_status == "unpaid":
            # A delayed method (bank debit) settles days later: the booking is neither paid
            # nor free for a second checkout until async_payment_succeeded or _failed.
            checkout_sessions.settle(
                conn,
                session.id,
                "awaiting_payment",
                self._clock(),
                unless=("complete", "payment_failed"),
            )
        else:
            checkout_sessions.settle(conn, session.id, "complete", self._clock())
        plans = self._recorder.plans
        if session.mode == "subscription" and plans is not None:
            return plans.subscription_checkout(conn, env, session)
        if session.mode not in (None, "payment"):
            return HandlerResult("ignored")
        if session.payment_status != "paid":
            # unpaid: async_payment_succeeded records it later.
            # no_payment_required: nothing was charged, so nothing to credit.
            return HandlerResult("success")
        return self._record_session_payment(conn, env, session)

    def _on_checkout_async_succeeded(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """A delayed payment method settled: record the payment."""
        session = parse_object(CheckoutSessionObject, env)
        checkout_sessions.settle(conn, session.id, "complete", self._clock())
        if session.mode not in (None, "payment"):
            return HandlerResult("ignored")
        return self._record_session_payment(conn, env, session)

    def _record_session_payment(
        self, conn: Connection, env: EventEnvelope, session: CheckoutSessionObject
    ) -> HandlerResult:
        return self._record(
            conn,
            env,
            pi=session.payment_intent,
            amount=session.amount_total,
            currency=session.currency,
            metadata=session.metadata,
            session_id=session.id,
            charge_id=None,
        )

    def _on_payment_intent_succeeded(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """The payment intent succeeded: record the payment (amount actually received)."""
        intent = parse_object(PaymentIntentObject, env)
        received = intent.amount_received
        return self._record(
            conn,
            env,
            pi=intent.id,
            amount=received if received else intent.amount,
            currency=intent.currency,
            metadata=intent.metadata,
            session_id=None,
            # Stripe lists newest first: the first charge is the one that succeeded.
            charge_id=intent.latest_charge
            or (intent.charges.data[0].id if intent.charges and intent.charges.data else None),
            destination=intent.transfer_data.destination if intent.transfer_data else None,
            platform_fee=intent.application_fee_amount,
        )

    def _on_checkout_async_failed(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """A delayed payment method failed: the booking is free again; tell the host."""
        session = parse_object(CheckoutSessionObject, env)
        checkout_sessions.settle(
            conn, session.id, "payment_failed", self._clock(), unless=("complete",)
        )
        plans = self._recorder.plans
        if plans is not None and is_plan(session.metadata):
            ended = plans.checkout_ended(conn, env, session, "payment_failed")
            if ended is not None:
                return ended
        booking = _booking(session.metadata, env)
        if booking is None:
            return HandlerResult("ignored")
        return HandlerResult(
            "success",
            [
                Effect(
                    "payment_failed",
                    {
                        "event_id": env.id,
                        "payment_intent_id": session.payment_intent,
                        "checkout_session_id": session.id,
                        "booking_id": booking.booking_id,
                        "mentor_id": booking.mentor_id,
                        "mentee_id": booking.mentee_id,
                        "reason": None,
                    },
                )
            ],
        )

    def _on_payment_intent_failed(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """A payment attempt failed: tell the host (one effect per attempt); no ledger change."""
        intent = parse_object(PaymentIntentObject, env)
        booking = _booking(intent.metadata, env)
        if booking is None:
            return HandlerResult("ignored")
        error = intent.last_payment_error or {}
        reason = error.get("message") or error.get("code")
        return HandlerResult(
            "success",
            [
                Effect(
                    "payment_failed",
                    {
                        "event_id": env.id,
                        "payment_intent_id": intent.id,
                        "checkout_session_id": None,
                        "booking_id": booking.booking_id,
                        "mentor_id": booking.mentor_id,
                        "mentee_id": booking.mentee_id,
                        "reason": str(reason)[:500] if reason else None,
                    },
                )
            ],
        )

    def _on_checkout_expired(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """The session expired unpaid: mark mentorpay's row and tell the host."""
        session = parse_object(CheckoutSessionObject, env)
        row = checkout_sessions.settle(conn, session.id, "expired", self._clock())
        plans = self._recorder.plans
        if plans is not None and is_plan(session.metadata):
            ended = plans.checkout_ended(conn, env, session, "expired")
            if ended is not None:
                return ended
        booking = _booking(session.metadata, env)
        if row is None and booking is None:
            return HandlerResult("ignored")
        data: dict[str, Any] = {"event_id": env.id, "checkout_session_id": session.id}
        if booking is not None:
            data.update(
                booking_id=booking.booking_id,
                mentor_id=booking.mentor_id,
                mentee_id=booking.mentee_id,
            )
        elif row is not None:
            data.update(row)
        return HandlerResult("success", [Effect("checkout_expired", data)])
