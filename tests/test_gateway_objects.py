"""The one Stripe object model (strict for webhooks, lenient for the gateway), the read methods
both gateways share, the POST methods' keyword checks, and the SDK's pagination."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from mentorpay import gateway
from mentorpay import stripe_billing as billing
from mentorpay import stripe_objects as objects
from mentorpay.errors import GatewayError, GatewayInvalidRequestError, WebhookPayloadError
from mentorpay.events import EventEnvelope
from mentorpay.gateway import PaymentGateway, StripeGateway
from mentorpay.money import Money
from mentorpay.stripe_objects import ChargeObject, DisputeObject, parse_object
from mentorpay.testing import FakeGateway, payment_intent

API = "https://api.stripe.com"
SINCE = datetime(2026, 3, 1, tzinfo=UTC)
#: The lenient family, as ``mentorpay.gateway`` re-exports it.
LENIENT = tuple(getattr(gateway, name) for name in gateway.__all__ if name.startswith("Gateway"))


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """Every HTTP request must be matched; nothing reaches the network."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def envelope(obj: dict[str, Any]) -> EventEnvelope:
    """A charge.refunded event carrying ``obj``."""
    return EventEnvelope.model_validate(
        {"id": "evt_1", "type": "charge.refunded", "created": 1, "data": {"object": obj}}
    )


# -- lenient: what the gateway returns -----------------------------------------------------------


@pytest.mark.parametrize("model", LENIENT)
def test_lenient_objects_read_missing_fields_as_empty(model: Any) -> None:
    """An object with only an id reads: None refs and times, 0 amounts, "" currency, {} and ()."""
    obj = model.from_dict({"id": "x_1"})
    assert obj.id == "x_1"
    for name, value in obj.__dict__.items():
        if name in ("id", "raw"):
            continue
        assert value in (None, 0, "", {}, False, ()), (name, value)
    assert obj.raw == {"id": "x_1"}


@pytest.mark.parametrize("model", LENIENT)
def test_lenient_objects_need_an_id(model: Any) -> None:
    """Without an id, from_dict raises KeyError, as the dataclasses it replaced did."""
    with pytest.raises(KeyError):
        model.from_dict({"object": "charge"})


def test_lenient_fields_read_odd_values_the_way_they_always_did() -> None:
    """Odd values read as before: expanded refs as ids, bools as no amount, str() ids."""
    charge = objects.GatewayCharge.from_dict(
        {
            "id": 7,
            "payment_intent": {"id": "pi_1", "object": "payment_intent"},
            "amount": True,
            "amount_refunded": 300,
            "currency": "gbp",
            "status": None,
            "created": 1767225600,
            "metadata": {"booking_id": 42},
        }
    )
    assert (charge.id, charge.payment_intent_id, charge.amount) == ("7", "pi_1", 0)
    assert (charge.amount_refunded, charge.currency, charge.status) == (300, "GBP", "")
    assert charge.created == datetime(2026, 1, 1, tzinfo=UTC)
    assert charge.metadata == {"booking_id": "42"}
    session = objects.GatewayCheckoutSession.from_dict({"id": "cs_1", "amount_total": "5000"})
    assert session.amount_total is None
    transfer = objects.GatewayTransfer.from_dict(
        {"id": "tr_1", "destination": {"id": 5}, "reversed": 1}
    )
    assert (transfer.destination, transfer.reversed) == (None, True)


def test_raw_is_kept_but_not_compared_hashed_or_shown() -> None:
    """Equality, hashing and repr ignore ``raw``, as the dataclasses did (compare=False)."""
    first = objects.GatewayDispute.from_dict({"id": "dp_1", "status": "won", "extra": 1})
    second = objects.GatewayDispute.from_dict({"id": "dp_1", "status": "won", "extra": 2})
    assert first == second
    assert hash(first) == hash(second)
    assert first.raw["extra"] == 1
    assert "raw" not in repr(first)
    assert repr(first).startswith("GatewayDispute(id='dp_1', payment_intent_id=None")
    assert first.closed
    assert first != objects.GatewayRefund.from_dict({"id": "dp_1", "status": "won"})


def test_lenient_objects_are_frozen_and_build_money_on_demand() -> None:
    """A parsed object cannot change; ``money`` uses the received amount, else the amount."""
    pi = objects.GatewayPaymentIntent.from_dict({"id": "pi_1", "amount": 5000, "currency": "gbp"})
    assert pi.money == Money(5000, "GBP")
    with pytest.raises(ValidationError):
        pi.status = "succeeded"  # type: ignore[misc]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
stripe_keys = st.sampled_from(
    [
        "object",
        "status",
        "amount",
        "amount_received",
        "amount_refunded",
        "amount_reversed",
        "amount_total",
        "currency",
        "payment_intent",
        "latest_charge",
        "charge",
        "transfer",
        "destination",
        "reversed",
        "metadata",
        "reason",
        "url",
        "transfer_group",
        "expires_at",
    ]
)


@given(
    model=st.sampled_from(LENIENT),
    body=st.dictionaries(stripe_keys, json_values, max_size=8),
    object_id=st.text(min_size=1, max_size=10),
)
def test_lenient_objects_accept_any_json_object_and_reread_their_raw(
    model: Any, body: dict[str, Any], object_id: str
) -> None:
    """Any JSON object with an id parses, and re-reading its ``raw`` gives an equal object."""
    body["id"] = object_id
    if isinstance(body.get("expires_at"), int):
        body["expires_at"] %= 2**32  # within datetime's range
    obj = model.from_dict(body)
    assert obj.id == object_id
    assert obj.raw == body
    assert model.from_dict(obj.raw) == obj


@given(st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s), st.booleans())
def test_both_families_read_a_reference_the_same_way(ref: str, expanded: bool) -> None:
    """A payment intent named by id or as an expanded object reads as that id, strict or lenient."""
    value: Any = {"id": ref, "object": "payment_intent"} if expanded else ref
    body = {"id": "ch_1", "payment_intent": value, "amount_refunded": 0, "currency": "gbp"}
    assert ChargeObject.model_validate(body).payment_intent == ref
    assert objects.GatewayCharge.from_dict(body).payment_intent_id == ref


# -- strict: webhook event objects ---------------------------------------------------------------


def test_the_gateway_reexports_the_lenient_models() -> None:
    """``mentorpay.gateway`` re-exports every lenient model of the two Stripe object modules."""
    modules = (objects, billing)
    lenient = {
        n for m in modules for n in m.__all__ if n.startswith("Gateway") and n != "GatewayObject"
    }
    assert {model.__name__ for model in LENIENT} == lenient
    assert all(any(getattr(m, model.__name__, None) is model for m in modules) for model in LENIENT)


def test_strict_parse_names_every_garbled_field() -> None:
    """A negative amount and a NUL id are a 400 naming both fields."""
    body = {"id": "dp\x00", "amount": -1, "currency": "gbp", "status": "won"}
    with pytest.raises(WebhookPayloadError) as caught:
        parse_object(DisputeObject, envelope(body))
    assert caught.value.details["fields"] == ["amount", "id"]


def test_strict_event_money_refuses_a_missing_currency() -> None:
    """No currency on an event's amount is a 400, not a crash."""
    with pytest.raises(WebhookPayloadError, match="unusable amount"):
        objects.event_money(100, None, envelope({"id": "ch_1"}))


# -- the read methods both gateways share ---------------------------------------------------------


def test_fake_retrieve_takes_its_argument_by_position_or_by_name() -> None:
    """A retrieve method takes its id by position or by its protocol name, nothing else."""
    fake = FakeGateway()
    pi = fake.add_payment_intent(payment_intent(id="pi_1", amount=5000))
    assert fake.retrieve_payment_intent("pi_1").id == pi["id"]
    assert fake.retrieve_payment_intent(payment_intent_id="pi_1").money == Money(5000, "GBP")
    assert [c.args for c in fake.calls_to("retrieve_payment_intent")] == [
        {"payment_intent_id": "pi_1"}
    ] * 2
    with pytest.raises(TypeError):
        fake.retrieve_payment_intent(charge_id="pi_1")
    with pytest.raises(TypeError):
        fake.retrieve_charge()
    with pytest.raises(GatewayInvalidRequestError, match="No such charge"):
        fake.retrieve_charge("ch_missing")


def test_fake_lists_newest_first_within_the_window() -> None:
    """list_* filters on ``created`` in [gte, lt) and records its bounds."""
    clock = iter([SINCE.replace(hour=h) for h in (1, 2, 3, 4)])
    fake = FakeGateway(clock=lambda: next(clock))
    for n in (1, 2, 3):
        fake.add_payment_intent(payment_intent(id=f"pi_{n}"))
    listed = fake.list_charges(created_gte=SINCE.replace(hour=2), created_lt=SINCE.replace(hour=4))
    assert [c.payment_intent_id for c in listed] == ["pi_3", "pi_2"]
    (call,) = fake.calls_to("list_charges")
    assert call.args == {"created_gte": SINCE.replace(hour=2), "created_lt": SINCE.replace(hour=4)}


@pytest.mark.parametrize("gateway", [FakeGateway(), StripeGateway("sk_test_1")])
def test_post_methods_refuse_unknown_and_missing_keywords(gateway: Any) -> None:
    """POST methods refuse a misspelt or missing keyword, as an explicit signature would."""
    assert isinstance(gateway, PaymentGateway)
    with pytest.raises(TypeError, match="unexpected keyword argument 'metdata'"):
        gateway.create_refund(
            payment_intent_id="pi_1", amount=None, idempotency_key="k", metdata={}
        )
    with pytest.raises(TypeError, match="missing required keyword-only argument: 'amount'"):
        gateway.create_refund(payment_intent_id="pi_1", idempotency_key="k")
    with pytest.raises(TypeError, match="'destination'"):
        gateway.create_transfer(amount=Money(100, "GBP"), idempotency_key="k")
    with pytest.raises(TypeError, match="'idempotency_key'"):
        gateway.create_transfer_reversal("tr_1")


# -- the SDK's pagination -------------------------------------------------------------------------


def page(has_more: bool, *ids: str) -> dict[str, Any]:
    """One page of a transfers listing."""
    data = [{"id": i, "object": "transfer"} for i in ids]
    return {"object": "list", "url": "/v1/transfers", "has_more": has_more, "data": data}


def test_every_page_is_sent_on_behalf_of_the_connected_account(
    http: responses.RequestsMock,
) -> None:
    """The SDK's next-page request keeps the Stripe-Account header and the filters."""
    gateway = StripeGateway(
        "sk_test_1", max_network_retries=0, stripe_account="acct_9", page_size=1
    )
    http.get(f"{API}/v1/transfers", json=page(True, "tr_2"))
    http.get(f"{API}/v1/transfers", json=page(False, "tr_1"))
    assert [t.id for t in gateway.list_transfers(created_gte=SINCE)] == ["tr_2", "tr_1"]
    assert [c.request.headers["Stripe-Account"] for c in http.calls] == ["acct_9"] * 2
    assert "limit=1&starting_after=tr_2" in str(http.calls[1].request.url)


def test_an_empty_first_page_ends_the_listing(http: responses.RequestsMock) -> None:
    """An empty page that claims ``has_more`` asks for nothing more (there is no last id)."""
    gateway = StripeGateway("sk_test_1", max_network_retries=0)
    http.get(f"{API}/v1/transfers", json=page(True))
    assert list(gateway.list_transfers(created_gte=SINCE)) == []
    assert len(http.calls) == 1


def test_a_failing_later_page_is_a_gateway_error(http: responses.RequestsMock) -> None:
    """A 404 on the second page leaves as GatewayInvalidRequestError after the first page."""
    gateway = StripeGateway("sk_test_1", max_network_retries=0)
    http.get(f"{API}/v1/transfers", json=page(True, "tr_2"))
    http.get(f"{API}/v1/transfers", status=404, json={"error": {"type": "invalid_request_error"}})
    listed = gateway.list_transfers(created_gte=SINCE)
    assert next(listed).id == "tr_2"
    with pytest.raises(GatewayInvalidRequestError, match="list transfers"):
        next(listed)


def test_a_page_without_its_url_is_a_gateway_error(http: responses.RequestsMock) -> None:
    """A list page the SDK cannot follow (no ``url``) is a GatewayError, not a ValueError."""
    gateway = StripeGateway("sk_test_1", max_network_retries=0)
    http.get(f"{API}/v1/transfers", json={**page(True, "tr_2"), "url": None})
    listed = gateway.list_transfers(created_gte=SINCE)
    assert next(listed).id == "tr_2"
    with pytest.raises(GatewayError, match="list transfers: cannot page"):
        next(listed)


def test_strict_objects_cannot_be_changed_after_parsing() -> None:
    """Kills `frozen=True -> False` on the shared config: a parsed webhook object is read-only."""
    charge = ChargeObject.model_validate(
        {"id": "ch_1", "amount_refunded": 0, "currency": "gbp", "payment_intent": "pi_1"}
    )
    with pytest.raises(ValidationError):
        charge.amount_refunded = 500  # type: ignore[misc]
