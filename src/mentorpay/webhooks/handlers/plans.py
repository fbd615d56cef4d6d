"""Plan events: subscription invoices and packages become ledger payments and session credits.

A monthly plan is a Stripe subscription. Each paid invoice is a *period*: a ledger payment
split like a booking's (the booking it stands for is ``plan:<purchase>:<invoice>``), credited
to the mentor's pending balance and granting the plan's session credits. Newer API versions
split an invoice's facts over two events that may arrive in either order: ``invoice.paid``
names the subscription and the period, ``invoice_payment.paid`` the payment intent; the period
row (:mod:`mentorpay.plans.storage`) collects both and the payment is recorded when both are in.
Older versions name the payment intent on the invoice, so ``invoice.paid`` alone completes it.

Truth: the purchase says who is credited and how much each period costs; the invoice only
reports what Stripe took. A subscription belongs to a purchase only once the Checkout Session
mentorpay created for it completed (``checkout.session.completed`` names both): metadata on a
subscription never links one, since anyone with the platform's keys can create a subscription
carrying it. Invoices paid before that event arrived wait under their subscription's id and
are recorded when it links. A period that disagrees goes to review like a booking's payment.
A package is paid once through a payment-mode Checkout Session; its events are the booking
events' (``checkout.session.*``, ``payment_intent.succeeded``), routed here by their
``plan_purchase_id`` metadata.

Subscription events (``customer.subscription.*``) and ``invoice.payment_failed`` move no money:
they keep the purchase's status, period end and cancellation; an older event never overwrites
a newer one (Stripe does not deliver events in order), and ``canceled`` is final.

An invoice's payment intent carries no metadata, so its ``payment_intent.succeeded`` looks like
a payment that is not mentorpay's, and refunds or disputes of it are ignored meanwhile; when the
period is recorded those are revived and applied in the same transaction.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy.engine import Connection

from mentorpay.events import Effect, EffectKind, EventEnvelope, Handler, HandlerResult
from mentorpay.plans import rules, storage
from mentorpay.stripe_billing import InvoiceObject, InvoicePaymentObject, SubscriptionObject
from mentorpay.stripe_objects import CheckoutSessionObject, parse_object
from mentorpay.webhooks.handlers._plan_periods import (
    PlanPeriods,
    halves_disagree,
    period_booking_id,
    purchase_data,
)

__all__ = ["PlanEventHandlers", "period_booking_id"]


class PlanEventHandlers(PlanPeriods):
    """The invoice and subscription handlers, and the plans' side of the payment events."""

    def webhook_handlers(self) -> dict[str, Handler]:
        """The handlers to register (see the module docstring)."""
        return {
            "invoice.paid": self._on_invoice_paid,
            "invoice_payment.paid": self._on_invoice_payment_paid,
            "invoice.payment_failed": self._on_invoice_payment_failed,
            "invoice.upcoming": self._on_invoice_upcoming,
            "customer.subscription.created": self._on_subscription,
            "customer.subscription.updated": self._on_subscription,
            "customer.subscription.deleted": self._on_subscription,
        }

    # -- subscription invoices ---------------------------------------------------------------

    def _on_invoice_paid(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """An invoice was paid: the subscription's period, recorded once its payment is known."""
        invoice = parse_object(InvoiceObject, env)
        purchase = self._purchase_for(conn, invoice.subscription_id)
        meta = invoice.subscription_metadata
        if purchase is None and "plan_purchase_id" not in meta:
            return HandlerResult("ignored", reason="not a mentorpay plan's invoice")
        if invoice.amount_paid == 0:
            return HandlerResult("ignored", reason="an invoice that charged nothing grants nothing")
        if self._intent_taken(conn, invoice.payment_intent, invoice.id):
            return HandlerResult("ignored", reason="its payment intent paid another period")
        period = invoice.service_period
        now = self._clock()
        if purchase is not None:
            self._advance(
                conn,
                purchase,
                env,
                status="active",
                current_period_end=period[1] if period else purchase.current_period_end,
            )
        # Before its Checkout completed, the period waits under the subscription's id.
        row = storage.save_period_facts(
            conn,
            invoice_id=invoice.id,
            now=now,
            purchase_id=purchase.id if purchase is not None else None,
            subscription_id=invoice.subscription_id,
            plan_id=meta.get("plan_id") or (purchase.plan_id if purchase is not None else None),
            payment_intent_id=invoice.payment_intent,
            currency=invoice.currency.upper(),
            amount=invoice.amount_paid,
            period_start=period[0] if period else None,
            period_end=period[1] if period else None,
            status="pending",
            credits=0,
            used=0,
        )
        review = halves_disagree(row, invoice.amount_paid, invoice.currency.upper())
        return self._complete(conn, env, row, invoice.subscription_metadata, review=review)

    def _on_invoice_payment_paid(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """A payment intent paid an invoice (newer API versions): the period's other half."""
        paid = parse_object(InvoicePaymentObject, env)
        pi = paid.payment_intent_id
        if paid.invoice is None or pi is None or paid.status not in (None, "paid"):
            return HandlerResult("ignored", reason="no payment intent paid this invoice")
        if self._intent_taken(conn, pi, paid.invoice):
            return HandlerResult("ignored", reason="its payment intent paid another period")
        amount = paid.amount_paid if paid.amount_paid is not None else paid.amount_requested
        row = storage.save_period_facts(
            conn,
            invoice_id=paid.invoice,
            now=self._clock(),
            payment_intent_id=pi,
            currency=paid.currency.upper(),
            amount=amount,
            status="pending",
            credits=0,
            used=0,
        )
        review = halves_disagree(row, amount, paid.currency.upper())
        return self._complete(conn, env, row, {}, review=review)

    def _on_invoice_payment_failed(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """A renewal failed: the plan is past due (Stripe retries); no credits; tell the host."""
        invoice = parse_object(InvoiceObject, env)
        purchase = self._purchase_for(conn, invoice.subscription_id)
        if purchase is None:
            return HandlerResult("ignored", reason="not a mentorpay plan's invoice")
        self._advance(conn, purchase, env, status="past_due")
        return HandlerResult(
            "success",
            [
                Effect(
                    "plan_payment_failed",
                    {
                        **purchase_data(purchase, env),
                        "invoice_id": invoice.id,
                        "amount_due": invoice.amount_due,
                        "currency": invoice.currency.upper(),
                        "attempt_count": invoice.attempt_count,
                        "next_payment_attempt": invoice.next_payment_attempt,
                    },
                )
            ],
        )

    def _on_invoice_upcoming(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """A renewal is coming (Stripe's ``invoice.upcoming``, which has no id): a notice."""
        obj = dict(env.data.object)
        invoice = InvoiceObject.model_validate({**obj, "id": obj.get("id") or env.id})
        purchase = self._purchase_for(conn, invoice.subscription_id)
        if purchase is None or purchase.status == "canceled" or purchase.cancel_at_period_end:
            return HandlerResult("ignored", reason="no renewal of a mentorpay plan")
        data = {
            **purchase_data(purchase, env),
            "amount_due": invoice.amount_due,
            "currency": invoice.currency.upper(),
            "renews_at": purchase.current_period_end.isoformat()
            if purchase.current_period_end
            else None,
        }
        return HandlerResult("success", [Effect("plan_renewal_upcoming", data)])

    # -- subscriptions -----------------------------------------------------------------------

    def _on_subscription(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """The subscription's status, period end, cancellation and item, newest event wins."""
        sub = parse_object(SubscriptionObject, env)
        purchase = self._purchase_for(conn, sub.id)
        if purchase is None:
            return HandlerResult("ignored", reason="not a mentorpay plan's subscription")
        deleted = env.type == "customer.subscription.deleted"
        status = "canceled" if deleted else rules.purchase_status(sub.status)
        values: dict[str, Any] = {
            "cancel_at_period_end": sub.cancel_at_period_end,
            "customer_id": sub.customer or purchase.customer_id,
            "item_id": sub.item.id if sub.item else purchase.item_id,
            "current_period_end": sub.period_end or purchase.current_period_end,
        }
        if status is not None:
            values["status"] = status
        if not self._advance(conn, purchase, env, **values) or status != "canceled":
            return HandlerResult("success")
        return HandlerResult("success", [Effect("plan_canceled", purchase_data(purchase, env))])

    # -- the payment events' plan side (PlanPayments) ----------------------------------------

    def subscription_checkout(
        self, conn: Connection, env: EventEnvelope, session: CheckoutSessionObject
    ) -> HandlerResult:
        """A subscription-mode Checkout completed: link its subscription and customer."""
        purchase_id = (session.metadata or {}).get("plan_purchase_id")
        purchase = storage.lock_purchase(conn, purchase_id) if purchase_id else None
        if purchase is None or purchase.checkout_session_id != session.id:
            return HandlerResult("ignored", reason="not a mentorpay plan's checkout")
        if session.subscription is None or purchase.subscription_id not in (
            None,
            session.subscription,
        ):
            return HandlerResult("ignored", reason="the session names another subscription")
        values: dict[str, Any] = {
            "subscription_id": session.subscription,
            "customer_id": session.customer or purchase.customer_id,
        }
        if purchase.status in ("creating", "checkout"):
            values["status"] = "active" if session.payment_status != "unpaid" else "checkout"
        now = self._clock()
        storage.update_purchase(conn, purchase.id, now, **values)
        # The invoices paid before this event arrived wait under the subscription: record them.
        effects: list[Effect] = []
        for waiting in storage.unlinked_periods(conn, session.subscription):
            storage.update_period(conn, waiting.id, now, purchase_id=purchase.id)
            row = storage.period(conn, waiting.id)
            assert row is not None
            effects += self._complete(conn, env, row, {}).effects
        return HandlerResult("success", effects)

    def checkout_ended(
        self,
        conn: Connection,
        env: EventEnvelope,
        session: CheckoutSessionObject,
        outcome: Literal["expired", "payment_failed"],
    ) -> HandlerResult | None:
        """A plan's checkout expired or its delayed payment failed: the purchase is abandoned
        (the mentee may buy again); ``None`` if the session is not the purchase's."""
        purchase_id = (session.metadata or {}).get("plan_purchase_id")
        purchase = storage.lock_purchase(conn, purchase_id) if purchase_id else None
        if purchase is None or purchase.checkout_session_id != session.id:
            return None
        if purchase.status in ("creating", "checkout"):
            storage.update_purchase(
                conn, purchase.id, self._clock(), status="abandoned", open_key=None
            )
        kind: EffectKind = "checkout_expired" if outcome == "expired" else "plan_payment_failed"
        data = {**purchase_data(purchase, env), "checkout_session_id": session.id}
        return HandlerResult("success", [Effect(kind, data)])
