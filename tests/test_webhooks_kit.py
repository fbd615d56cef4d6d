"""The public webhook test kit: real Stripe signatures and event shapes that match the SDK."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from typing import Any

import pytest
import stripe
from stripe._api_version import _ApiVersion

from mentorpay.testing import (
    STRIPE_API_VERSION,
    booking_metadata,
    charge,
    checkout_session,
    dispute,
    encode_event,
    make_event,
    payment_intent,
    refund,
    sign_payload,
    stripe_id,
    transfer,
)


def sdk_fields(cls: type) -> set[str]:
    """The public field names a stripe SDK resource class declares (its annotations)."""
    names: set[str] = set()
    for klass in reversed(cls.__mro__):
        names.update(k for k in getattr(klass, "__annotations__", {}) if not k.startswith("_"))
    names.discard("OBJECT_NAME")
    return names


BUILDERS: list[tuple[Callable[..., dict[str, Any]], type, str]] = [
    (checkout_session, stripe.checkout.Session, "checkout.session"),
    (payment_intent, stripe.PaymentIntent, "payment_intent"),
    (charge, stripe.Charge, "charge"),
    (dispute, stripe.Dispute, "dispute"),
    (refund, stripe.Refund, "refund"),
    (transfer, stripe.Transfer, "transfer"),
]


@pytest.mark.parametrize(("builder", "cls", "object_name"), BUILDERS)
def test_builder_fields_exist_on_the_sdk_resource(
    builder: Callable[..., dict[str, Any]], cls: type, object_name: str
) -> None:
    """Every field a builder emits is declared by the SDK's class for the pinned API version."""
    obj = builder()
    unknown = set(obj) - sdk_fields(cls)
    assert not unknown, f"{builder.__name__} invents fields: {sorted(unknown)}"
    assert obj["object"] == object_name == cls.OBJECT_NAME  # type: ignore[attr-defined]


@pytest.mark.parametrize(("builder", "cls", "object_name"), BUILDERS)
def test_builder_output_loads_into_the_sdk_class(
    builder: Callable[..., dict[str, Any]], cls: type, object_name: str
) -> None:
    """The SDK itself can construct its resource from a builder's output."""
    obj = builder()
    loaded = cls.construct_from(obj, "sk_test_x")  # type: ignore[attr-defined]
    assert loaded.id == obj["id"]


def test_fields_mentorpay_reads_are_declared_by_the_sdk() -> None:
    """The fields the webhook handlers read exist in the SDK for the pinned version."""
    reads = {
        stripe.checkout.Session: {
            "id", "mode", "payment_status", "payment_intent", "amount_total", "currency",
            "metadata",
        },
        stripe.PaymentIntent: {
            "id", "amount", "amount_received", "currency", "latest_charge",
            "last_payment_error", "metadata",
        },
        stripe.Charge: {"id", "payment_intent", "amount_refunded", "currency", "metadata"},
        stripe.Dispute: {"id", "charge", "payment_intent", "amount", "currency", "status"},
        stripe.Refund: {
            "id", "charge", "payment_intent", "amount", "currency", "status", "failure_reason",
        },
    }  # fmt: skip
    for cls, fields in reads.items():
        assert fields <= sdk_fields(cls), (cls, fields - sdk_fields(cls))


def test_dispute_statuses_mentorpay_handles_are_stripes() -> None:
    """won, lost, warning_closed and prevented are statuses the SDK knows."""
    annotation = stripe.Dispute.__annotations__["status"]  # forward refs elsewhere: no eval
    literals = {
        value
        for arg in typing.get_args(annotation)
        for value in typing.get_args(arg)
        if isinstance(value, str)
    }
    assert {"won", "lost", "warning_closed", "prevented", "needs_response"} <= literals


def test_event_fields_exist_on_the_sdk_event() -> None:
    """make_event's envelope fields are declared by stripe.Event."""
    event = make_event("payment_intent.succeeded", payment_intent(), account="acct_1")
    assert set(event) <= sdk_fields(stripe.Event)
    assert event["object"] == "event"


def test_events_use_the_sdks_pinned_api_version() -> None:
    """Events carry the API version the installed SDK pins, unless told otherwise."""
    assert STRIPE_API_VERSION == _ApiVersion.CURRENT
    assert make_event("x.y", {})["api_version"] == _ApiVersion.CURRENT
    assert make_event("x.y", {}, api_version="2020-08-27")["api_version"] == "2020-08-27"


def test_handled_event_types_are_stripe_event_types() -> None:
    """Every event type mentorpay handles is one the SDK lists."""
    from mentorpay.webhooks import HANDLED_EVENT_TYPES

    annotation = stripe.Event.__annotations__["type"]
    known = set(typing.get_args(annotation))
    assert set(HANDLED_EVENT_TYPES) <= known


def test_signature_is_stripes_scheme() -> None:
    """sign_payload matches the SDK's own header for the same payload, secret and time."""
    body = encode_event(make_event("payment_intent.succeeded", payment_intent()))
    ours = sign_payload(body, "whsec_abc", timestamp=1_700_000_000)
    theirs = stripe.WebhookSignature.generate_signature_header(
        body.decode(), "whsec_abc", timestamp=1_700_000_000
    )
    assert ours == theirs
    assert stripe.WebhookSignature.verify_header(
        body.decode(), sign_payload(body, "whsec_abc"), "whsec_abc", tolerance=300
    )


def test_sign_payload_accepts_text_and_bytes() -> None:
    """A str body and its UTF-8 bytes sign identically (non-ASCII included)."""
    text = '{"id":"evt_1","name":"Zoë"}'
    assert sign_payload(text, "s", 5) == sign_payload(text.encode(), "s", 5)


def test_encode_event_is_compact_utf8_json() -> None:
    """encode_event round-trips and keeps non-ASCII characters as UTF-8."""
    event = make_event("customer.created", {"id": "cus_1", "name": "Zoë"})
    body = encode_event(event)
    assert json.loads(body) == event
    assert "Zoë".encode() in body and b", " not in body


def test_builders_carry_booking_metadata_and_overrides() -> None:
    """Metadata and extra fields go where a user asks; refunded follows amount_refunded."""
    meta = booking_metadata("42", mentor_id="3", mentee_id="7")
    assert meta == {"booking_id": "42", "mentor_id": "3", "mentee_id": "7"}
    assert checkout_session(metadata=meta, locale="fr")["locale"] == "fr"
    assert payment_intent(metadata=meta)["metadata"] == meta
    assert charge(amount=100, amount_refunded=100)["refunded"] is True
    assert charge(amount=100, amount_refunded=40)["refunded"] is False
    assert payment_intent(status="processing")["amount_received"] == 0


def test_stripe_ids_look_like_stripes() -> None:
    """Generated ids have the prefix and are unique."""
    ids = {stripe_id("pi") for _ in range(100)}
    assert len(ids) == 100 and all(i.startswith("pi_") and len(i) == 27 for i in ids)
