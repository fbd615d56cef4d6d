"""The Stripe Billing objects mentorpay reads (invoices, invoice payments, subscriptions), in
the two families of :mod:`mentorpay.stripe_objects`: strict for webhook events, lenient for
what the gateway returns.

Two API shapes are read, because Stripe moved these fields in API version 2025-03-31 (basil):

* **Older** (before basil): an invoice names its ``subscription``, ``payment_intent`` and
  ``charge`` at the top level, with the subscription's metadata in ``subscription_details``;
  a subscription carries ``current_period_start`` / ``current_period_end``.
* **Newer** (basil and later, including the version the SDK pins): the subscription is under
  ``parent.subscription_details`` (with its metadata), the invoice no longer names its payment
  (an ``invoice_payment`` object does: ``payment.payment_intent``), and the current period
  lives on each subscription item.

The properties below read whichever shape came, so handlers never branch on the version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, PlainValidator

from mentorpay.stripe_objects import (
    _FROZEN,
    Amount,
    GatewayObject,
    LooseRef,
    StripeId,
    StripeObject,
    StripeRef,
    Timestamp,
)

__all__ = [
    "GatewaySubscription",
    "InvoiceObject",
    "InvoicePaymentObject",
    "SubscriptionObject",
]

_Time = Annotated[int, Field(ge=0, le=2**40)]


def _at(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


class _Metadata(BaseModel):
    model_config = _FROZEN

    metadata: dict[str, str] | None = None


class _SubscriptionDetails(_Metadata):
    """``parent.subscription_details`` (newer) or ``subscription_details`` (older)."""

    subscription: StripeRef = None


class _InvoiceParent(BaseModel):
    model_config = _FROZEN

    type: str | None = None
    subscription_details: _SubscriptionDetails | None = None


class _Period(BaseModel):
    model_config = _FROZEN

    start: _Time
    end: _Time


class _InvoiceLine(BaseModel):
    model_config = _FROZEN

    period: _Period | None = None


class _InvoiceLines(BaseModel):
    model_config = _FROZEN

    data: list[_InvoiceLine] = Field(default_factory=list, max_length=100)


class InvoiceObject(StripeObject):
    """An ``invoice.*`` event's object, in either API shape (see the module docstring)."""

    customer: StripeRef = None
    currency: str
    amount_paid: Amount
    amount_due: Amount | None = None
    status: str | None = None
    billing_reason: str | None = None
    attempt_count: Annotated[int, Field(ge=0, le=10_000)] | None = None
    next_payment_attempt: _Time | None = None
    lines: _InvoiceLines | None = None
    period_start: _Time | None = None
    period_end: _Time | None = None
    #: Newer shape.
    parent: _InvoiceParent | None = None
    #: Older shape.
    subscription: StripeRef = None
    subscription_details: _SubscriptionDetails | None = None
    payment_intent: StripeRef = None
    charge: StripeRef = None

    @property
    def _details(self) -> _SubscriptionDetails | None:
        if self.parent is not None and self.parent.subscription_details is not None:
            return self.parent.subscription_details
        return self.subscription_details

    @property
    def subscription_id(self) -> str | None:
        """The subscription this invoice bills, in either shape."""
        details = self._details
        if details is not None and details.subscription is not None:
            return details.subscription
        return self.subscription

    @property
    def subscription_metadata(self) -> dict[str, str]:
        """The subscription's metadata as it was when the invoice was made (locates the plan
        purchase; it never decides amounts)."""
        details = self._details
        return dict(details.metadata or {}) if details is not None else {}

    @property
    def service_period(self) -> tuple[datetime, datetime] | None:
        """The period the invoice pays for: the span of its lines' periods (an older
        invoice's own ``period_*`` name the previous period for subscription renewals)."""
        periods = [line.period for line in (self.lines.data if self.lines else ()) if line.period]
        if not periods:
            if self.period_start is None or self.period_end is None:
                return None
            return _at(self.period_start), _at(self.period_end)  # type: ignore[return-value]
        start = min(p.start for p in periods)
        end = max(p.end for p in periods)
        return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)


class _InvoicePaymentRef(BaseModel):
    model_config = _FROZEN

    type: str | None = None
    payment_intent: StripeRef = None
    charge: StripeRef = None


class InvoicePaymentObject(BaseModel):
    """An ``invoice_payment.paid`` event's object (newer API versions): which payment intent
    paid which invoice."""

    model_config = _FROZEN

    id: StripeId
    invoice: StripeRef
    currency: str
    amount_paid: Amount | None = None
    amount_requested: Amount | None = None
    status: str | None = None
    payment: _InvoicePaymentRef | None = None

    @property
    def payment_intent_id(self) -> str | None:
        """The payment intent that paid the invoice, if it was one."""
        return self.payment.payment_intent if self.payment is not None else None


class _Recurring(BaseModel):
    model_config = _FROZEN

    interval: str | None = None
    interval_count: int | None = None


class _Price(BaseModel):
    model_config = _FROZEN

    id: StripeRef = None
    unit_amount: Amount | None = None
    currency: str | None = None
    recurring: _Recurring | None = None


class _SubscriptionItem(BaseModel):
    model_config = _FROZEN

    id: StripeId
    price: _Price | None = None
    #: Newer shape: the period lives on each item.
    current_period_start: _Time | None = None
    current_period_end: _Time | None = None


class _SubscriptionItems(BaseModel):
    model_config = _FROZEN

    data: list[_SubscriptionItem] = Field(default_factory=list, max_length=20)


class SubscriptionObject(StripeObject):
    """A ``customer.subscription.*`` event's object, in either API shape."""

    status: str
    customer: StripeRef = None
    cancel_at_period_end: bool = False
    cancel_at: _Time | None = None
    canceled_at: _Time | None = None
    ended_at: _Time | None = None
    items: _SubscriptionItems | None = None
    #: Older shape.
    current_period_start: _Time | None = None
    current_period_end: _Time | None = None

    @property
    def item(self) -> _SubscriptionItem | None:
        """The subscription's one item (mentorpay sells one plan per subscription)."""
        return self.items.data[0] if self.items and self.items.data else None

    @property
    def period_end(self) -> datetime | None:
        """When the current period ends, in either shape."""
        item = self.item
        end = item.current_period_end if item and item.current_period_end else None
        return _at(end if end is not None else self.current_period_end)


def _flag(value: Any) -> bool:
    return value is True


class GatewaySubscription(GatewayObject):
    """A Subscription as the gateway returns it (cancel, plan change)."""

    status: Annotated[str, PlainValidator(lambda v: str(v or ""))] = ""
    customer_id: LooseRef = Field(default=None, validation_alias="customer")
    cancel_at_period_end: Annotated[bool, PlainValidator(_flag)] = False
    canceled_at: Timestamp = None
    created: Timestamp = None

    @property
    def item_id(self) -> str | None:
        """The first subscription item's id (a plan change replaces that item's price)."""
        items = self.raw.get("items")
        data = items.get("data") if isinstance(items, dict) else None
        if isinstance(data, list) and data and isinstance(data[0], dict):
            item_id = data[0].get("id")
            return item_id if isinstance(item_id, str) else None
        return None
