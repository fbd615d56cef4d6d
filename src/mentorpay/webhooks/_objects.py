"""The pydantic models of the Stripe objects webhook handlers read (unknown fields ignored).

Moved unchanged from the former ``webhooks.py``; :mod:`mentorpay.stripe_objects` will own them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
)

from mentorpay.errors import InvalidAmountError, WebhookPayloadError
from mentorpay.events import EventEnvelope
from mentorpay.money import Money

_ID_MAX = 255  # the width of every id column (Stripe ids are at most 255 characters)
# Stripe amounts are far below this; the bound keeps a hostile body from overflowing BIGINT.
_AMOUNT_MAX = 2**53


M = TypeVar("M", bound=BaseModel)


def _clean_id(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refusing it here keeps a hostile body a 400, not a 500.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _expanded_id(value: Any) -> Any:
    # Events never expand references, but objects fetched from the API by reconciliation may.
    if isinstance(value, Mapping):
        return value.get("id")
    return value


StripeId = Annotated[str, Field(min_length=1, max_length=_ID_MAX), AfterValidator(_clean_id)]
StripeRef = Annotated[StripeId | None, BeforeValidator(_expanded_id)]
Amount = Annotated[StrictInt, Field(ge=0, le=_AMOUNT_MAX)]


class _StripeObject(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: StripeId
    metadata: dict[str, str] | None = None


class _CheckoutSessionObject(_StripeObject):
    mode: str | None = None
    payment_status: str | None = None
    payment_intent: StripeRef = None
    amount_total: Amount | None = None
    currency: str | None = None


class _TransferData(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    destination: StripeRef = None


class _ChargeList(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    data: list[_StripeObject] = Field(default_factory=list, max_length=100)


class _PaymentIntentObject(_StripeObject):
    amount: Amount
    amount_received: Amount | None = None
    currency: str
    latest_charge: StripeRef = None
    #: API versions before 2022-11-15 list the charges instead of naming the latest one.
    charges: _ChargeList | None = None
    last_payment_error: dict[str, Any] | None = None
    transfer_data: _TransferData | None = None
    application_fee_amount: Amount | None = None


class _ChargeObject(_StripeObject):
    payment_intent: StripeRef = None
    amount_refunded: Amount
    currency: str


class _DisputeObject(_StripeObject):
    charge: StripeRef = None
    payment_intent: StripeRef = None
    amount: Amount
    currency: str
    status: str


# Not in the former webhooks.py: moved here from refund_events.py (stripe_objects should own it).
class _RefundObject(_StripeObject):
    """The fields of Stripe's Refund object that mentorpay reads (``id``, ``metadata`` too)."""

    amount: Amount
    currency: str
    charge: StripeRef = None
    payment_intent: StripeRef = None
    status: str | None = None
    failure_reason: str | None = None


def _parse_object(model: type[M], env: EventEnvelope) -> M:
    try:
        return model.model_validate(env.data.object)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "object" for e in exc.errors()})
        raise WebhookPayloadError(
            f"{env.type} event {env.id}: data.object lacks or garbles {', '.join(fields)}",
            event_id=env.id,
            event_type=env.type,
            fields=fields,
        ) from None


def _money(amount: int, currency: str | None, env: EventEnvelope) -> Money:
    try:
        if currency is None:
            raise InvalidAmountError("no currency")
        return Money(amount, currency)
    except InvalidAmountError as exc:
        raise WebhookPayloadError(
            f"{env.type} event {env.id}: unusable amount or currency ({exc.message})",
            event_id=env.id,
            event_type=env.type,
        ) from None
