"""Stripe Billing's side of a subscription, played on a :class:`FakeGateway` and a fake clock:
the signed-ready events Stripe sends when a subscription-mode Checkout is paid, at each
renewal (paid or failed), when a failed renewal is retried and paid, and when a subscription
set to cancel at period end reaches it. Events are shaped for ``api_version`` (newer versions
split an invoice's payment into ``invoice_payment.paid``; older ones name the payment intent
on the invoice), with the builders of :mod:`mentorpay.testing._billing_events`.

Example::

    billing = FakeBilling(gateway, clock)
    events = billing.subscribe(session_id)             # checkout, subscription, first invoice
    clock.advance(timedelta(days=30))
    events = billing.renew_due()                       # every subscription whose period ended
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mentorpay.money import Money
from mentorpay.testing._billing_events import invoice, invoice_payment, is_newer_shape
from mentorpay.testing._billing_events import subscription as subscription_object
from mentorpay.testing._events import STRIPE_API_VERSION, stripe_id
from mentorpay.testing._gateway import FakeGateway

__all__ = ["BillingEvents", "FakeBilling"]

#: ``(event type, object)`` pairs, in the order Stripe sends them.
BillingEvents = list[tuple[str, dict[str, Any]]]


@dataclass
class _Open:
    """A renewal invoice that failed and waits for Stripe's retry."""

    invoice_id: str
    amount: Money
    start: int
    end: int
    metadata: dict[str, str]
    attempts: int = 1


@dataclass
class FakeBilling:
    """Subscriptions' renewals on a fake gateway (see the module docstring)."""

    gateway: FakeGateway
    clock: Callable[[], datetime]
    api_version: str = STRIPE_API_VERSION
    _open: dict[str, _Open] = field(default_factory=dict)

    def subscribe(self, session_id: str) -> BillingEvents:
        """The mentee pays a subscription-mode session: the session completes, the
        subscription is created and its first invoice paid."""
        session, sub = self.gateway.complete_subscription_session(session_id)
        first = self._paid_invoice(sub, "subscription_create")
        return [
            ("checkout.session.completed", session),
            ("customer.subscription.created", self._subscription(sub)),
            *first,
        ]

    def renew(self, subscription_id: str, *, fail: bool = False) -> BillingEvents:
        """The subscription's period ended: Stripe ends it (cancel at period end) or bills the
        next period, paid or failed (then the subscription is past due)."""
        stored = self.gateway.subscription(subscription_id)
        if stored["status"] == "canceled":
            return []
        if stored["cancel_at_period_end"]:
            ended = self.gateway.end_subscription(subscription_id)
            return [("customer.subscription.deleted", self._subscription(ended))]
        sub = self.gateway.roll_subscription(subscription_id)
        if not fail:
            return [
                *self._paid_invoice(sub, "subscription_cycle"),
                ("customer.subscription.updated", self._subscription(sub)),
            ]
        item = sub["items"]["data"][0]
        amount = _amount(sub)
        failed = _Open(
            stripe_id("in"),
            amount,
            item["current_period_start"],
            item["current_period_end"],
            dict(sub["metadata"]),
        )
        self._open[subscription_id] = failed
        past_due = self.gateway.set_subscription_status(subscription_id, "past_due")
        return [
            ("invoice.payment_failed", self._invoice(sub, failed, paid=False)),
            ("customer.subscription.updated", self._subscription(past_due)),
        ]

    def retry(self, subscription_id: str) -> BillingEvents:
        """Stripe retries the failed renewal and it is paid: the subscription is active."""
        failed = self._open.pop(subscription_id)
        failed.attempts += 1
        sub = self.gateway.set_subscription_status(subscription_id, "active")
        return [
            *self._pay(sub, failed, "subscription_cycle"),
            ("customer.subscription.updated", self._subscription(sub)),
        ]

    def renew_due(self) -> BillingEvents:
        """Renew every live subscription whose period ended by the clock's now (paid)."""
        now = int(self.clock().timestamp())
        events: BillingEvents = []
        for sub in self.gateway.subscriptions:
            sub_id = sub["id"]
            while True:
                current = self.gateway.subscription(sub_id)
                end = current["items"]["data"][0]["current_period_end"]
                if current["status"] == "canceled" or sub_id in self._open or end > now:
                    break
                events += self.renew(sub_id)
        return events

    # -- objects -------------------------------------------------------------------------------

    def _paid_invoice(self, sub: dict[str, Any], reason: str) -> BillingEvents:
        item = sub["items"]["data"][0]
        bill = _Open(
            stripe_id("in"),
            _amount(sub),
            item["current_period_start"],
            item["current_period_end"],
            dict(sub["metadata"]),
        )
        return self._pay(sub, bill, reason)

    def _pay(self, sub: dict[str, Any], bill: _Open, reason: str) -> BillingEvents:
        intent = self.gateway.pay_invoice_intent(bill.amount)
        pi = str(intent["id"])
        paid = self._invoice(sub, bill, paid=True, reason=reason, payment_intent=pi,
                             charge=str(intent["latest_charge"]))  # fmt: skip
        events: BillingEvents = [("payment_intent.succeeded", intent), ("invoice.paid", paid)]
        if is_newer_shape(self.api_version):
            events.append(
                (
                    "invoice_payment.paid",
                    invoice_payment(
                        invoice_id=bill.invoice_id,
                        payment_intent=pi,
                        amount_paid=bill.amount.amount,
                        currency=bill.amount.currency.lower(),
                        api_version=self.api_version,
                    ),
                )
            )
        return events

    def _invoice(
        self,
        sub: dict[str, Any],
        bill: _Open,
        *,
        paid: bool,
        reason: str = "subscription_cycle",
        payment_intent: str | None = None,
        charge: str | None = None,
    ) -> dict[str, Any]:
        older = not is_newer_shape(self.api_version)
        return invoice(
            id=bill.invoice_id,
            subscription_id=sub["id"],
            customer=sub["customer"],
            amount_paid=bill.amount.amount if paid else 0,
            amount_due=bill.amount.amount,
            currency=bill.amount.currency.lower(),
            period_start=bill.start,
            period_end=bill.end,
            metadata=bill.metadata,
            status="paid" if paid else "open",
            billing_reason=reason,
            payment_intent=payment_intent if older else None,
            charge=charge if older else None,
            attempt_count=bill.attempts,
            api_version=self.api_version,
        )

    def _subscription(self, sub: dict[str, Any]) -> dict[str, Any]:
        item = sub["items"]["data"][0]
        price = item["price"]
        recurring = price["recurring"]
        return subscription_object(
            id=sub["id"],
            customer=sub["customer"],
            status=sub["status"],
            metadata=sub["metadata"],
            amount=price["unit_amount"],
            currency=price["currency"],
            interval=recurring["interval"],
            interval_count=recurring["interval_count"],
            period_start=item["current_period_start"],
            period_end=item["current_period_end"],
            cancel_at_period_end=sub["cancel_at_period_end"],
            item_id=item["id"],
            price_id=price["id"],
            api_version=self.api_version,
            canceled_at=sub.get("canceled_at"),
            ended_at=sub.get("ended_at"),
        )


def _amount(sub: dict[str, Any]) -> Money:
    price = sub["items"]["data"][0]["price"]
    return Money(int(price["unit_amount"]), str(price["currency"]))
