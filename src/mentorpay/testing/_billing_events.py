"""Stripe Billing objects for tests: subscriptions, invoices, invoice payments, and the
subscription-mode Checkout Session that starts them.

Each builder takes ``api_version`` and emits that version's shape (see
:mod:`mentorpay.stripe_billing`): **newer** for 2025-03-31 (basil) and later, **older** before.
Stripe's changelog for basil names the moves:

* invoices: ``subscription`` / ``subscription_details`` -> ``parent.subscription_details``
  (https://docs.stripe.com/changelog/basil/2025-03-31/adds-new-parent-field-to-invoicing-objects);
  ``payment_intent`` / ``charge`` / ``paid`` leave the invoice, an ``invoice_payment`` names the
  payment instead;
* subscriptions: ``current_period_start`` / ``current_period_end`` move to each item
  (https://docs.stripe.com/changelog/basil/2025-03-31/deprecate-subscription-current-period-start-and-end).

Field names are checked against the SDK's typed classes and Stripe's OpenAPI files by
``tests/test_billing_shapes.py``. Timestamps are epoch seconds; ``datetime`` is accepted too.

Example::

    meta = plan_metadata("9", plan_id="p1", mentor_id="3", mentee_id="7")
    sub = subscription(metadata=meta, amount=8000, currency="gbp",
                       period_start=t0, period_end=t1)
    inv = invoice(subscription_id=sub["id"], amount_paid=8000, currency="gbp",
                  period_start=t0, period_end=t1, metadata=meta)
    event = make_event("invoice.paid", inv)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mentorpay.testing._events import STRIPE_API_VERSION, checkout_session, stripe_id

__all__ = [
    "BASIL",
    "invoice",
    "invoice_payment",
    "is_newer_shape",
    "plan_metadata",
    "subscription",
    "subscription_checkout_session",
]

#: The first API version of the newer Billing shape (2025-03-31.basil).
BASIL = "2025-03-31"

Time = int | datetime


def is_newer_shape(api_version: str) -> bool:
    """Whether ``api_version`` (``YYYY-MM-DD[.name]``) has basil's Billing shape."""
    return api_version[:10] >= BASIL


def _epoch(value: Time) -> int:
    return int(value.timestamp()) if isinstance(value, datetime) else int(value)


def _list(data: list[dict[str, Any]], url: str) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": False, "total_count": len(data), "url": url}


def plan_metadata(
    purchase_id: str, *, plan_id: str, mentor_id: str, mentee_id: str
) -> dict[str, str]:
    """The metadata mentorpay's plan checkout puts on the subscription (and so on invoices)."""
    return {
        "plan_purchase_id": purchase_id,
        "plan_id": plan_id,
        "mentor_id": mentor_id,
        "mentee_id": mentee_id,
    }


def _price(
    price_id: str | None, amount: int, currency: str, interval: str, interval_count: int
) -> dict[str, Any]:
    return {
        "id": price_id or stripe_id("price"),
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": 1_700_000_000,
        "currency": currency,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": stripe_id("prod"),
        "recurring": {
            "interval": interval,
            "interval_count": interval_count,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "type": "recurring",
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
    }


def subscription(
    *,
    id: str | None = None,
    customer: str | None = None,
    status: str = "active",
    metadata: Mapping[str, str] | None = None,
    amount: int,
    currency: str,
    interval: str = "month",
    interval_count: int = 1,
    period_start: Time,
    period_end: Time,
    cancel_at_period_end: bool = False,
    item_id: str | None = None,
    price_id: str | None = None,
    api_version: str = STRIPE_API_VERSION,
    **extra: Any,
) -> dict[str, Any]:
    """A ``subscription`` object with one item (one plan); the current period sits on the item
    (newer shape) or on the subscription (older)."""
    sub_id = id or stripe_id("sub")
    start, end = _epoch(period_start), _epoch(period_end)
    item: dict[str, Any] = {
        "id": item_id or stripe_id("si"),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": start,
        "metadata": {},
        "price": _price(price_id, amount, currency, interval, interval_count),
        "quantity": 1,
        "subscription": sub_id,
        "tax_rates": [],
    }
    obj: dict[str, Any] = {
        "id": sub_id,
        "object": "subscription",
        "application_fee_percent": None,
        "billing_cycle_anchor": start,
        "cancel_at": end if cancel_at_period_end else None,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": None,
        "collection_method": "charge_automatically",
        "created": start,
        "currency": currency,
        "customer": customer or stripe_id("cus"),
        "days_until_due": None,
        "default_payment_method": stripe_id("pm"),
        "ended_at": None,
        "items": _list([item], f"/v1/subscription_items?subscription={sub_id}"),
        "latest_invoice": None,
        "livemode": False,
        "metadata": dict(metadata or {}),
        "pending_update": None,
        "schedule": None,
        "start_date": start,
        "status": status,
        "transfer_data": None,
        "trial_end": None,
        "trial_start": None,
    }
    period = {"current_period_start": start, "current_period_end": end}
    (item if is_newer_shape(api_version) else obj).update(period)
    obj.update(extra)
    return obj


def _invoice_period(billing_reason: str, start: int, end: int) -> tuple[int, int]:
    # Stripe sets an invoice's own period_* to the period *before* the one its subscription
    # lines bill (usage is billed in arrears); a first invoice has an empty period at its start.
    if billing_reason == "subscription_cycle":
        return start - (end - start), start
    return start, start


def _line(
    *,
    invoice_id: str,
    subscription_id: str,
    amount: int,
    currency: str,
    start: int,
    end: int,
    newer: bool,
) -> dict[str, Any]:
    item_id, price_id = stripe_id("si"), stripe_id("price")
    line: dict[str, Any] = {
        "id": stripe_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": "1 x Mentorship plan",
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "livemode": False,
        "metadata": {},
        "period": {"start": start, "end": end},
        "quantity": 1,
        "subscription": subscription_id,
    }
    if newer:
        # Older spec snapshots (2020-08-27) have no line ``invoice``: kept to the newer shape.
        line["invoice"] = invoice_id
        line["parent"] = {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": subscription_id,
                "subscription_item": item_id,
            },
        }
        line["pricing"] = {
            "type": "price_details",
            "price_details": {"price": price_id, "product": stripe_id("prod")},
            "unit_amount_decimal": str(amount),
        }
    else:
        line.update(
            type="subscription",
            subscription_item=item_id,
            proration=False,
            price={"id": price_id, "object": "price", "unit_amount": amount, "currency": currency},
        )
    return line


def invoice(
    *,
    id: str | None = None,
    subscription_id: str,
    customer: str | None = None,
    amount_paid: int,
    amount_due: int | None = None,
    currency: str,
    period_start: Time,
    period_end: Time,
    metadata: Mapping[str, str] | None = None,
    status: str = "paid",
    billing_reason: str = "subscription_cycle",
    payment_intent: str | None = None,
    charge: str | None = None,
    attempt_count: int = 1,
    api_version: str = STRIPE_API_VERSION,
    **extra: Any,
) -> dict[str, Any]:
    """An ``invoice`` object billing one subscription period.

    ``period_start`` / ``period_end`` are the service period, carried by the one line;
    ``metadata`` is the subscription's metadata snapshot (``parent.subscription_details`` in
    the newer shape, ``subscription_details`` in the older). The invoice's own metadata stays
    empty. ``payment_intent`` / ``charge`` only exist in the older shape (newer: build an
    :func:`invoice_payment`). ``amount_due`` defaults to ``amount_paid``.
    """
    newer = is_newer_shape(api_version)
    invoice_id = id or stripe_id("in")
    start, end = _epoch(period_start), _epoch(period_end)
    due = amount_paid if amount_due is None else amount_due
    inv_start, inv_end = _invoice_period(billing_reason, start, end)
    paid = status == "paid"
    obj: dict[str, Any] = {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "GB",
        "account_name": "Mentor marketplace",
        "amount_due": due,
        "amount_paid": amount_paid,
        "amount_remaining": max(due - amount_paid, 0),
        "attempt_count": attempt_count,
        "attempted": attempt_count > 0,
        "auto_advance": not paid,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": inv_end,
        "currency": currency,
        "customer": customer or stripe_id("cus"),
        "customer_email": None,
        "description": None,
        "due_date": None,
        "hosted_invoice_url": None,
        "lines": _list(
            [
                _line(
                    invoice_id=invoice_id,
                    subscription_id=subscription_id,
                    amount=due,
                    currency=currency,
                    start=start,
                    end=end,
                    newer=newer,
                )
            ],
            f"/v1/invoices/{invoice_id}/lines",
        ),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "period_end": inv_end,
        "period_start": inv_start,
        "status": status,
        "status_transitions": {
            "finalized_at": inv_end,
            "marked_uncollectible_at": None,
            "paid_at": inv_end if paid else None,
            "voided_at": None,
        },
        "subtotal": due,
        "total": due,
    }
    snapshot = dict(metadata or {})
    if newer:
        obj["parent"] = {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"subscription": subscription_id, "metadata": snapshot},
        }
    else:
        obj.update(
            subscription=subscription_id,
            subscription_details={"metadata": snapshot},
            payment_intent=payment_intent,
            charge=charge,
            paid=paid,
        )
    obj.update(extra)
    return obj


def invoice_payment(
    *,
    id: str | None = None,
    invoice_id: str,
    payment_intent: str,
    amount_paid: int,
    currency: str,
    status: str = "paid",
    api_version: str = STRIPE_API_VERSION,
    **extra: Any,
) -> dict[str, Any]:
    """An ``invoice_payment`` object: which payment intent paid which invoice.

    The object exists from basil on; ``api_version`` is accepted for symmetry and changes
    nothing (older versions name the payment on the invoice instead).
    """
    del api_version  # one shape: the object is newer than the split it documents
    created = int(time.time())
    paid = status == "paid"
    obj: dict[str, Any] = {
        "id": id or stripe_id("inpay"),
        "object": "invoice_payment",
        "amount_paid": amount_paid if paid else None,
        "amount_requested": amount_paid,
        "created": created,
        "currency": currency,
        "invoice": invoice_id,
        "is_default": True,
        "livemode": False,
        "payment": {"type": "payment_intent", "payment_intent": payment_intent},
        "status": status,
        "status_transitions": {"canceled_at": None, "paid_at": created if paid else None},
    }
    obj.update(extra)
    return obj


def subscription_checkout_session(
    *,
    id: str | None = None,
    subscription: str | None = None,
    customer: str | None = None,
    invoice: str | None = None,
    amount_total: int = 8000,
    currency: str = "gbp",
    metadata: Mapping[str, str] | None = None,
    payment_status: str = "paid",
    status: str = "complete",
    client_reference_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``checkout.session`` in subscription mode: it names the subscription, customer and
    first invoice Checkout created, and no payment intent."""
    return checkout_session(
        id=id,
        payment_intent=None,
        amount_total=amount_total,
        currency=currency,
        payment_status=payment_status,
        status=status,
        mode="subscription",
        metadata=metadata,
        client_reference_id=client_reference_id,
        **{
            "subscription": subscription or stripe_id("sub"),
            "customer": customer or stripe_id("cus"),
            "invoice": invoice or stripe_id("in"),
            **extra,
        },
    )
