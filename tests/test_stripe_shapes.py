"""mentorpay reads Stripe objects as Stripe defines them: the SDK's typed classes, two API versions.

The SDK pinned by this project documents every field and every enumerated status of the objects
mentorpay reads; these tests fail if mentorpay reads a field Stripe does not define, misses a
terminal dispute status, or cannot parse an object the SDK itself serializes. Older API versions
(before 2022-11-15) list a payment intent's ``charges`` instead of naming ``latest_charge`` and
put no ``payment_intent`` on disputes: both shapes are applied.
"""

from __future__ import annotations

import typing
from typing import Any

import pytest
import stripe
from sqlalchemy import Engine

from mentorpay import BookingInfo, MentorpayConfig, Money
from mentorpay import stripe_objects as webhooks_module
from mentorpay.app import MentorPay
from mentorpay.testing import (
    FakeGateway,
    InMemoryBookings,
    booking_metadata,
    encode_event,
    make_event,
    sign_payload,
)

SECRET = "whsec_shapes"
OLD_API_VERSION = "2020-08-27"

MODELS = {
    "CheckoutSessionObject": stripe.checkout.Session,
    "PaymentIntentObject": stripe.PaymentIntent,
    "ChargeObject": stripe.Charge,
    "DisputeObject": stripe.Dispute,
}


def sdk_literals(cls: type, field: str) -> set[str]:
    """The enumerated values the SDK declares for ``cls.field``."""
    values: set[str] = set()
    for arg in typing.get_args(cls.__annotations__[field]):
        values.update(a for a in typing.get_args(arg) if isinstance(a, str))
    return values


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_every_field_mentorpay_reads_is_defined_by_stripe(model_name: str) -> None:
    """Each field of mentorpay's Stripe object models exists on the SDK's typed class."""
    model = getattr(webhooks_module, model_name)
    sdk_fields = set(MODELS[model_name].__annotations__) | {"id", "object"}
    read = set(model.model_fields) - {"charges"}  # charges: the pre-2022-11-15 shape, below
    assert read <= sdk_fields, read - sdk_fields


def test_dispute_statuses_mentorpay_settles_are_stripes() -> None:
    """The dispute outcomes mentorpay settles are statuses Stripe defines, and cover its ends."""
    statuses = sdk_literals(stripe.Dispute, "status")
    settled = {"won", "lost", "warning_closed", "prevented"}
    assert settled <= statuses
    open_or_reviewing = {s for s in statuses if "needs_response" in s or "under_review" in s}
    assert statuses - open_or_reviewing == settled


def test_checkout_payment_statuses_are_stripes() -> None:
    """paid / unpaid / no_payment_required are exactly the SDK's checkout payment statuses."""
    assert sdk_literals(stripe.checkout.Session, "payment_status") == {
        "paid",
        "unpaid",
        "no_payment_required",
    }


def setup(engine: Engine) -> MentorPay:
    """A MentorPay for booking 42 (GBP 50.00, mentor 3, mentee 7)."""
    booking = BookingInfo("42", "7", "3", Money(5000, "GBP"), "confirmed")
    return MentorPay(
        MentorpayConfig(webhook_secrets=[SECRET]),
        engine,
        bookings=InMemoryBookings([booking]),
        gateway=FakeGateway(),
    )


def send(mp: MentorPay, event_type: str, obj: Any, api_version: str | None = None) -> str:
    """Sign and process an event whose object is an SDK object serialized by the SDK."""
    data = obj.to_dict() if isinstance(obj, stripe.StripeObject) else obj
    event = make_event(event_type, data)
    event["api_version"] = api_version or stripe.api_version
    body = encode_event(event)
    return mp.webhooks.process(body, sign_payload(body, SECRET)).status


def sdk_object(cls: Any, values: dict[str, Any]) -> Any:
    """An SDK resource built the way the SDK builds responses."""
    return cls.construct_from(values, "sk_test_shapes")


def test_sdk_serialized_objects_of_the_pinned_version_apply(engine: Engine) -> None:
    """Payment, refund and dispute objects as the pinned SDK serializes them move the ledger."""
    mp = setup(engine)
    meta = booking_metadata("42", mentor_id="3", mentee_id="7")
    intent = sdk_object(
        stripe.PaymentIntent,
        {
            "id": "pi_sdk",
            "object": "payment_intent",
            "amount": 5000,
            "amount_received": 5000,
            "currency": "gbp",
            "latest_charge": "ch_sdk",
            "metadata": meta,
            "status": "succeeded",
            "livemode": False,
        },
    )
    assert send(mp, "payment_intent.succeeded", intent) == "success"
    charge = sdk_object(
        stripe.Charge,
        {
            "id": "ch_sdk",
            "object": "charge",
            "amount": 5000,
            "amount_refunded": 1000,
            "currency": "gbp",
            "payment_intent": "pi_sdk",
            "refunded": False,
            "metadata": meta,
            "livemode": False,
        },
    )
    assert send(mp, "charge.refunded", charge) == "success"
    inquiry = sdk_object(
        stripe.Dispute,
        {
            "id": "dp_sdk",
            "object": "dispute",
            "amount": 4000,
            "charge": "ch_sdk",
            "payment_intent": "pi_sdk",
            "currency": "gbp",
            "status": "warning_needs_response",
            "metadata": {},
            "livemode": False,
        },
    )
    assert send(mp, "charge.dispute.created", inquiry) == "success"
    assert mp.ledger.balance("3", "GBP").held == Money(3600, "GBP")
    inquiry["status"] = "warning_closed"
    assert send(mp, "charge.dispute.closed", inquiry) == "success"
    view = mp.ledger.balance("3", "GBP")
    assert (view.pending, view.held) == (Money(3600, "GBP"), Money(0, "GBP"))
    assert mp.ledger.verify().ok


def test_older_api_version_shapes_apply(engine: Engine) -> None:
    """2020-08-27 shapes: charges listed on the intent, refunds embedded, no dispute intent."""
    mp = setup(engine)
    meta = booking_metadata("42", mentor_id="3", mentee_id="7")
    charge = {
        "id": "ch_old",
        "object": "charge",
        "amount": 5000,
        "amount_refunded": 0,
        "currency": "gbp",
        "payment_intent": "pi_old",
        "metadata": meta,
        "refunds": {"object": "list", "data": [], "has_more": False, "total_count": 0},
    }
    intent = {
        "id": "pi_old",
        "object": "payment_intent",
        "amount": 5000,
        "amount_received": 5000,
        "currency": "gbp",
        "charges": {"object": "list", "data": [charge], "has_more": False, "total_count": 1},
        "metadata": meta,
        "status": "succeeded",
    }
    assert send(mp, "payment_intent.succeeded", intent, OLD_API_VERSION) == "success"
    refund = {"id": "re_old", "object": "refund", "amount": 2000, "currency": "gbp"}
    refunded = {
        **charge,
        "amount_refunded": 2000,
        "refunds": {"object": "list", "data": [refund], "has_more": False, "total_count": 1},
    }
    assert send(mp, "charge.refunded", refunded, OLD_API_VERSION) == "success"
    # Disputes of that era name only the charge: found through the charge id recorded above.
    dispute = {
        "id": "dp_old",
        "object": "dispute",
        "amount": 3000,
        "charge": "ch_old",
        "currency": "gbp",
        "status": "needs_response",
    }
    assert send(mp, "charge.dispute.created", dispute, OLD_API_VERSION) == "success"
    assert send(mp, "charge.dispute.closed", {**dispute, "status": "lost"}) == "success"
    view = mp.ledger.balance("3", "GBP")
    assert (view.pending, view.held) == (Money(0, "GBP"), Money(0, "GBP"))
    assert mp.ledger.payment("pi_old").refunded == Money(5000, "GBP")
    assert mp.ledger.verify().ok
