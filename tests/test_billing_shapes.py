"""mentorpay reads Stripe Billing objects as Stripe defines them, in both API shapes.

Three sources of truth, none of them mentorpay's own:

* the pinned stripe SDK's typed classes (``stripe.Invoice``, ``stripe.InvoicePayment``,
  ``stripe.Subscription``, ``stripe.SubscriptionItem``...), for the newer shape;
* Stripe's OpenAPI files (github:stripe/openapi), whose property names and event types are kept
  in ``tests/fixtures/stripe_billing_openapi.json`` with the commits they came from: the newest
  resource fixtures for the newer shape, the 2020-08-27 spec for the older one;
* Stripe's changelog for 2025-03-31.basil, which moved the fields (cited in
  :mod:`mentorpay.testing._billing_events`).

Event order: Stripe does not guarantee that events arrive in the order they were created
(https://docs.stripe.com/webhooks#event-ordering, "Stripe doesn't guarantee the delivery of
events in the order that they're generated"). A subscription checkout produces
``customer.subscription.created``, ``invoice.paid`` and ``invoice_payment.paid`` in any order,
so each object here carries what its handler needs to find the plan purchase on its own: the
invoice its subscription's metadata snapshot, the invoice payment its invoice id.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import stripe
from pydantic import BaseModel, ValidationError

from mentorpay import stripe_billing
from mentorpay.stripe_billing import (
    GatewaySubscription,
    InvoiceObject,
    InvoicePaymentObject,
    SubscriptionObject,
)
from mentorpay.stripe_objects import CheckoutSessionObject
from mentorpay.testing import (
    STRIPE_API_VERSION,
    invoice,
    invoice_payment,
    plan_metadata,
    subscription,
    subscription_checkout_session,
)
from mentorpay.testing._billing_events import is_newer_shape

OLDER = "2024-06-20"
VERSIONS = [STRIPE_API_VERSION, OLDER]
SPEC = json.loads(
    (Path(__file__).parent / "fixtures" / "stripe_billing_openapi.json").read_text("utf-8")
)
T0 = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp())
T1 = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp())
META = plan_metadata("9", plan_id="p1", mentor_id="3", mentee_id="7")

#: Fields mentorpay reads that the pinned SDK no longer declares: the older shape, each one
#: named by basil's changelog as moved (invoice: to ``parent`` / ``invoice_payment``;
#: subscription: to the items).
OLDER_SHAPE_FIELDS: dict[str, set[str]] = {
    "InvoiceObject": {"subscription", "subscription_details", "payment_intent", "charge"},
    "SubscriptionObject": {"current_period_start", "current_period_end"},
}
#: Older-shape fields newer than the 2020-08-27 spec in the fixture (2022-04 snapshot), still
#: before basil: invoice ``subscription_details`` (its metadata "populated only for invoices
#: created on or after June 29, 2023", says the SDK's ``Invoice.Parent.SubscriptionDetails``;
#: moved by basil) and subscription ``currency`` (declared by the pinned SDK too).
ADDED_AFTER_2020_SPEC = {"invoice": {"subscription_details"}, "subscription": {"currency"}}

#: mentorpay's model -> the SDK class it mirrors (nested models included).
SDK_CLASSES: dict[str, tuple[type[BaseModel], type]] = {
    "InvoiceObject": (InvoiceObject, stripe.Invoice),
    "_InvoiceParent": (stripe_billing._InvoiceParent, stripe.Invoice.Parent),
    "_SubscriptionDetails": (
        stripe_billing._SubscriptionDetails,
        stripe.Invoice.Parent.SubscriptionDetails,
    ),
    "_InvoiceLines": (stripe_billing._InvoiceLines, stripe.ListObject),
    "_InvoiceLine": (stripe_billing._InvoiceLine, stripe.InvoiceLineItem),
    "_Period": (stripe_billing._Period, stripe.InvoiceLineItem.Period),
    "InvoicePaymentObject": (InvoicePaymentObject, stripe.InvoicePayment),
    "_InvoicePaymentRef": (stripe_billing._InvoicePaymentRef, stripe.InvoicePayment.Payment),
    "SubscriptionObject": (SubscriptionObject, stripe.Subscription),
    "_SubscriptionItems": (stripe_billing._SubscriptionItems, stripe.ListObject),
    "_SubscriptionItem": (stripe_billing._SubscriptionItem, stripe.SubscriptionItem),
    "_Price": (stripe_billing._Price, stripe.Price),
    "_Recurring": (stripe_billing._Recurring, stripe.Price.Recurring),
}


def plain(value: Any) -> Any:
    """``value`` with the SDK's Decimals back as the strings Stripe sends (``*_decimal``)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return str(value) if isinstance(value, Decimal) else value


def sdk_fields(cls: type) -> set[str]:
    """The fields an SDK class declares."""
    return set(cls.__annotations__) - {"OBJECT_NAME"}


def build_all(api_version: str) -> dict[str, dict[str, Any]]:
    """One object from each builder, in ``api_version``'s shape."""
    sub = subscription(
        metadata=META,
        amount=8000,
        currency="gbp",
        period_start=T0,
        period_end=T1,
        api_version=api_version,
    )
    inv = invoice(
        subscription_id=sub["id"],
        customer=sub["customer"],
        amount_paid=8000,
        currency="gbp",
        period_start=T0,
        period_end=T1,
        metadata=META,
        payment_intent="pi_older" if not is_newer_shape(api_version) else None,
        charge="ch_older" if not is_newer_shape(api_version) else None,
        api_version=api_version,
    )
    pay = invoice_payment(
        invoice_id=inv["id"], payment_intent="pi_newer", amount_paid=8000, currency="gbp"
    )
    return {"subscription": sub, "invoice": inv, "invoice_payment": pay}


# -- the models against the SDK ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SDK_CLASSES))
def test_every_billing_field_mentorpay_reads_is_stripes(name: str) -> None:
    """Each field of the Billing models exists on the SDK's class or is a listed older field."""
    model, sdk_class = SDK_CLASSES[name]
    unknown = set(model.model_fields) - sdk_fields(sdk_class) - OLDER_SHAPE_FIELDS.get(name, set())
    assert not unknown, unknown


@pytest.mark.parametrize("name", sorted(OLDER_SHAPE_FIELDS))
def test_older_shape_fields_are_gone_from_the_pinned_sdk_and_in_the_older_spec(name: str) -> None:
    """The listed older fields are absent from the pinned SDK and present in the older spec."""
    model, sdk_class = SDK_CLASSES[name]
    resource = {"InvoiceObject": "invoice", "SubscriptionObject": "subscription"}[name]
    older = OLDER_SHAPE_FIELDS[name]
    assert older <= set(model.model_fields)
    assert not older & sdk_fields(sdk_class)
    documented = set(SPEC["older"][resource]) | ADDED_AFTER_2020_SPEC.get(resource, set())
    assert older <= documented


# -- the builders against the SDK ----------------------------------------------------------------

PINNED_CLASSES: dict[str, Any] = {
    "subscription": stripe.Subscription,
    "invoice": stripe.Invoice,
    "invoice_payment": stripe.InvoicePayment,
}


@pytest.mark.parametrize("kind", sorted(PINNED_CLASSES))
def test_pinned_builders_round_trip_through_the_sdk(kind: str) -> None:
    """The SDK builds its resource from each builder's output and serializes it back unchanged."""
    obj = build_all(STRIPE_API_VERSION)[kind]
    resource = PINNED_CLASSES[kind].construct_from(obj, "sk_test_billing")
    assert isinstance(resource, PINNED_CLASSES[kind])
    assert plain(resource.to_dict()) == obj


@pytest.mark.parametrize("kind", sorted(PINNED_CLASSES))
def test_pinned_builders_invent_no_top_level_field(kind: str) -> None:
    """Every top-level key a builder emits (pinned shape) is a field the SDK class declares."""
    obj = build_all(STRIPE_API_VERSION)[kind]
    assert set(obj) <= sdk_fields(PINNED_CLASSES[kind]), set(obj) - sdk_fields(PINNED_CLASSES[kind])


def test_pinned_builders_invent_no_nested_field() -> None:
    """Items, prices, lines and invoice parents carry only fields the SDK declares."""
    objs = build_all(STRIPE_API_VERSION)
    item = objs["subscription"]["items"]["data"][0]
    line = objs["invoice"]["lines"]["data"][0]
    pairs: list[tuple[dict[str, Any], type]] = [
        (item, stripe.SubscriptionItem),
        (item["price"], stripe.Price),
        (item["price"]["recurring"], stripe.Price.Recurring),
        (line, stripe.InvoiceLineItem),
        (line["parent"], stripe.InvoiceLineItem.Parent),
        (
            line["parent"]["subscription_item_details"],
            stripe.InvoiceLineItem.Parent.SubscriptionItemDetails,
        ),
        (line["pricing"], stripe.InvoiceLineItem.Pricing),
        (objs["invoice"]["parent"], stripe.Invoice.Parent),
        (
            objs["invoice"]["parent"]["subscription_details"],
            stripe.Invoice.Parent.SubscriptionDetails,
        ),
        (objs["invoice"]["status_transitions"], stripe.Invoice.StatusTransitions),
        (objs["invoice_payment"]["payment"], stripe.InvoicePayment.Payment),
        (objs["invoice_payment"]["status_transitions"], stripe.InvoicePayment.StatusTransitions),
    ]
    for obj, cls in pairs:
        assert set(obj) <= sdk_fields(cls), (cls.__name__, set(obj) - sdk_fields(cls))


def test_subscription_checkout_session_is_sdk_shaped() -> None:
    """The subscription-mode session uses only Checkout Session fields and round-trips."""
    session = subscription_checkout_session(metadata=META)
    assert set(session) <= sdk_fields(stripe.checkout.Session)
    sdk = stripe.checkout.Session.construct_from(session, "sk_test_billing")
    assert plain(sdk.to_dict()) == session
    assert (session["mode"], session["payment_intent"]) == ("subscription", None)


# -- the builders against Stripe's OpenAPI files -------------------------------------------------


def test_pinned_builders_keys_are_in_the_openapi_resources() -> None:
    """Newer-shape keys, top level and nested, are properties of the newest OpenAPI resources."""
    objs = build_all(STRIPE_API_VERSION)
    newer = SPEC["newer"]
    assert set(objs["invoice"]) <= set(newer["invoice"]), set(objs["invoice"]) - set(
        newer["invoice"]
    )
    assert set(objs["invoice_payment"]) <= set(newer["invoice_payment"])
    assert set(objs["subscription"]) <= set(newer["subscription"])
    assert set(objs["subscription"]["items"]["data"][0]) <= set(newer["subscription_item"])
    assert set(objs["invoice"]["lines"]["data"][0]) <= set(newer["line_item"])


def test_older_builders_keys_are_in_the_2020_spec() -> None:
    """Older-shape keys are properties of the 2020-08-27 spec (plus subscription_details)."""
    objs = build_all(OLDER)
    older = SPEC["older"]
    for kind in ("invoice", "subscription"):
        allowed = set(older[kind]) | ADDED_AFTER_2020_SPEC.get(kind, set())
        assert set(objs[kind]) <= allowed, (kind, set(objs[kind]) - allowed)
    assert set(objs["subscription"]["items"]["data"][0]) <= set(older["subscription_item"])
    assert set(objs["invoice"]["lines"]["data"][0]) <= set(older["line_item"])


def test_billing_event_types_are_stripes() -> None:
    """The events plans handle are Stripe event types; invoice_payment.paid only in newer ones."""
    handled = {
        "invoice.paid",
        "invoice.payment_failed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    }
    assert handled | {"invoice_payment.paid"} <= set(SPEC["newer"]["event_types"])
    assert handled <= set(SPEC["older"]["event_types"])
    assert "invoice_payment.paid" not in SPEC["older"]["event_types"]


# -- the two shapes ------------------------------------------------------------------------------


def test_the_shapes_differ_where_basil_moved_fields() -> None:
    """Newer: parent, period on the item, no invoice payment refs; older: the reverse."""
    newer, older = build_all(STRIPE_API_VERSION), build_all(OLDER)
    moved = {"subscription", "subscription_details", "payment_intent", "charge", "paid"}
    assert not moved & set(newer["invoice"]) and "parent" in newer["invoice"]
    assert moved <= set(older["invoice"]) and "parent" not in older["invoice"]
    period = {"current_period_start", "current_period_end"}
    assert period <= set(newer["subscription"]["items"]["data"][0])
    assert not period & set(newer["subscription"])
    assert period <= set(older["subscription"])
    assert not period & set(older["subscription"]["items"]["data"][0])


def test_is_newer_shape_splits_at_basil() -> None:
    """2025-03-31.basil and later are newer; 2025-02-24.acacia and 2024-06-20 are older."""
    assert is_newer_shape("2025-03-31.basil") and is_newer_shape(STRIPE_API_VERSION)
    assert not is_newer_shape("2025-02-24.acacia") and not is_newer_shape(OLDER)


# -- the strict models read both shapes ----------------------------------------------------------


@pytest.mark.parametrize("api_version", VERSIONS)
def test_invoice_model_reads_either_shape(api_version: str) -> None:
    """subscription_id, subscription_metadata and the service period read the same in both."""
    objs = build_all(api_version)
    inv = InvoiceObject.model_validate(objs["invoice"])
    assert inv.subscription_id == objs["subscription"]["id"]
    assert inv.subscription_metadata == META
    assert inv.service_period == (
        datetime.fromtimestamp(T0, UTC),
        datetime.fromtimestamp(T1, UTC),
    )
    # The invoice's own period is the previous one for a renewal: the lines decide.
    assert inv.period_end == T0
    expected_pi = None if is_newer_shape(api_version) else "pi_older"
    assert (inv.payment_intent, inv.amount_paid, inv.currency) == (expected_pi, 8000, "gbp")


@pytest.mark.parametrize("api_version", VERSIONS)
def test_invoice_without_a_metadata_snapshot_reads_as_empty(api_version: str) -> None:
    """Invoices made before 2023-06-29 carry null subscription metadata: read as empty."""
    obj = build_all(api_version)["invoice"]
    details = obj["parent"] if is_newer_shape(api_version) else obj
    details["subscription_details"]["metadata"] = None
    inv = InvoiceObject.model_validate(obj)
    assert inv.subscription_metadata == {}
    assert inv.subscription_id is not None


def test_invoice_payment_model_names_the_payment_intent() -> None:
    """invoice_payment.payment.payment_intent is the intent that paid the invoice."""
    objs = build_all(STRIPE_API_VERSION)
    pay = InvoicePaymentObject.model_validate(objs["invoice_payment"])
    assert (pay.payment_intent_id, pay.invoice, pay.amount_paid) == (
        "pi_newer",
        objs["invoice"]["id"],
        8000,
    )


@pytest.mark.parametrize("api_version", VERSIONS)
def test_subscription_model_reads_either_shape(api_version: str) -> None:
    """period_end and the one item (with its price) read the same in both shapes."""
    obj = build_all(api_version)["subscription"]
    sub = SubscriptionObject.model_validate(obj)
    assert sub.period_end == datetime.fromtimestamp(T1, UTC)
    assert sub.item is not None and sub.item.id == obj["items"]["data"][0]["id"]
    assert sub.item.price is not None and sub.item.price.unit_amount == 8000
    assert sub.metadata == META and sub.status == "active"


def test_first_invoice_has_an_empty_own_period_but_a_service_period() -> None:
    """A subscription_create invoice's own period is empty; its line names the service period."""
    inv = InvoiceObject.model_validate(
        invoice(
            subscription_id="sub_1",
            amount_paid=8000,
            currency="gbp",
            period_start=datetime.fromtimestamp(T0, UTC),
            period_end=datetime.fromtimestamp(T1, UTC),
            billing_reason="subscription_create",
        )
    )
    assert inv.period_start == inv.period_end == T0
    assert inv.service_period == (datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(T1, UTC))


def test_checkout_and_gateway_models_read_the_subscription() -> None:
    """The subscription-mode session names its subscription; the gateway reads the item id."""
    session = CheckoutSessionObject.model_validate(
        subscription_checkout_session(subscription="sub_1", customer="cus_1", metadata=META)
    )
    assert (session.mode, session.subscription, session.customer) == (
        "subscription",
        "sub_1",
        "cus_1",
    )
    assert session.payment_intent is None
    obj = subscription(
        id="sub_1",
        customer="cus_1",
        item_id="si_1",
        amount=8000,
        currency="gbp",
        period_start=T0,
        period_end=T1,
    )
    gateway = GatewaySubscription.from_dict(obj)
    assert (gateway.item_id, gateway.customer_id, gateway.status) == ("si_1", "cus_1", "active")


GARBLED: list[tuple[type[BaseModel], str, dict[str, Any]]] = [
    (InvoiceObject, "invoice", {"amount_paid": -1}),
    (InvoiceObject, "invoice", {"id": "in_\x00"}),
    (InvoiceObject, "invoice", {"currency": None}),
    (InvoiceObject, "invoice", {"parent": {"subscription_details": {"subscription": "sub_\x00"}}}),
    (InvoiceObject, "invoice", {"amount_paid": "8000"}),
    (InvoicePaymentObject, "invoice_payment", {"amount_paid": -1}),
    (InvoicePaymentObject, "invoice_payment", {"invoice": "in_\x00"}),
    (InvoicePaymentObject, "invoice_payment", {"currency": None}),
    (SubscriptionObject, "subscription", {"id": "sub_\x00"}),
    (SubscriptionObject, "subscription", {"status": None}),
]


@pytest.mark.parametrize(("model", "kind", "change"), GARBLED)
def test_garbled_billing_objects_are_refused(
    model: type[BaseModel], kind: str, change: dict[str, Any]
) -> None:
    """A negative or string amount, a NUL in an id, a missing currency or status is refused."""
    obj = dict(build_all(STRIPE_API_VERSION)[kind])
    for key, value in change.items():
        if value is None:
            obj.pop(key)
        else:
            obj[key] = value
    with pytest.raises(ValidationError):
        model.model_validate(obj)


def test_garbled_nested_amounts_are_refused() -> None:
    """A negative price on a subscription item or a negative line period is refused."""
    obj = build_all(STRIPE_API_VERSION)["subscription"]
    obj["items"]["data"][0]["price"]["unit_amount"] = -5
    with pytest.raises(ValidationError):
        SubscriptionObject.model_validate(obj)
    inv = build_all(STRIPE_API_VERSION)["invoice"]
    inv["lines"]["data"][0]["period"]["start"] = -1
    with pytest.raises(ValidationError):
        InvoiceObject.model_validate(inv)
