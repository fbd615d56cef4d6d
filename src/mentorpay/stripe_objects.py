"""The Stripe objects mentorpay reads, as pydantic models: one place that knows their fields.

Two families share the field types below:

* **Strict** (:class:`CheckoutSessionObject`, :class:`PaymentIntentObject`, :class:`ChargeObject`,
  :class:`DisputeObject`): the ``data.object`` of a webhook event, checked against what its
  handler needs before any money moves. Ids are bounded and free of NUL, amounts are
  non-negative integers below 2**53; a missing or garbled field is a
  :class:`~mentorpay.errors.WebhookPayloadError` (:func:`parse_object`), never a 500.
* **Lenient** (``Gateway*``): what the gateway returns and reconciliation lists. A listing may
  hold objects in currencies mentorpay does not know or fields a newer API version dropped, and
  reconciliation must still see them: a missing or odd field reads as ``None``, ``0`` or ``""``,
  currencies are upper-cased, timestamps become aware datetimes, and ``raw`` keeps the API
  object as a plain ``dict`` (reconciliation replays it as an event's ``data.object``).
  Amounts stay ``int`` minor units; ``.money`` builds :class:`~mentorpay.money.Money` on demand.

In both, an expandable reference (``payment_intent``, ``charge``...) may be an id or an
expanded object with an id; it reads as the id.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    SkipValidation,
    StrictInt,
    ValidationError,
)

from mentorpay.db import ID_MAX
from mentorpay.errors import InvalidAmountError, WebhookPayloadError
from mentorpay.money import Money

if TYPE_CHECKING:
    from mentorpay.events import EventEnvelope

__all__ = [
    "Amount",
    "ChargeObject",
    "CheckoutSessionObject",
    "DisputeObject",
    "GatewayAccount",
    "GatewayBalanceTransaction",
    "GatewayCharge",
    "GatewayCheckoutSession",
    "GatewayDispute",
    "GatewayObject",
    "GatewayPaymentIntent",
    "GatewayRefund",
    "GatewayTransfer",
    "GatewayTransferReversal",
    "PaymentIntentObject",
    "RefundObject",
    "StripeId",
    "StripeObject",
    "StripeRef",
    "event_money",
    "parse_object",
]

# Stripe amounts are far below this; the bound keeps a hostile body from overflowing BIGINT.
_AMOUNT_MAX = 2**53

#: Both families: unknown fields are ignored, parsed objects cannot be changed.
_FROZEN = ConfigDict(extra="ignore", frozen=True)

M = TypeVar("M", bound=BaseModel)


# -- field types ---------------------------------------------------------------------------------


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


StripeId = Annotated[str, Field(min_length=1, max_length=ID_MAX), AfterValidator(_clean_id)]
StripeRef = Annotated[StripeId | None, BeforeValidator(_expanded_id)]
Amount = Annotated[StrictInt, Field(ge=0, le=_AMOUNT_MAX)]


def _loose_ref(value: Any) -> str | None:
    value = _expanded_id(value)
    return value if isinstance(value, str) else None


def _loose_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _loose_currency(value: Any) -> str:
    return value.upper() if isinstance(value, str) else ""


def _loose_metadata(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _loose_time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, int) else None


def _text(value: Any) -> str:
    return str(value or "")


def _as_given(value: Any) -> Any:
    return value


#: The lenient family's fields, each read the same way in every object (see the module doc).
LooseRef = Annotated[str | None, PlainValidator(_loose_ref)]
LooseAmount = Annotated[int, PlainValidator(_loose_int)]
LooseCurrency = Annotated[str, PlainValidator(_loose_currency)]
LooseMetadata = Annotated[Mapping[str, str], PlainValidator(_loose_metadata)]
Timestamp = Annotated[datetime | None, PlainValidator(_loose_time)]
LooseText = Annotated[str, PlainValidator(_text)]
#: A field passed on exactly as Stripe sent it (``reason``, ``url``...).
AsGiven = Annotated[str | None, PlainValidator(_as_given)]


# -- strict: webhook event objects ---------------------------------------------------------------


class StripeObject(BaseModel):
    """Any object a webhook handler reads: its id and metadata."""

    model_config = _FROZEN

    id: StripeId
    metadata: dict[str, str] | None = None


class CheckoutSessionObject(StripeObject):
    """A ``checkout.session`` event's object."""

    mode: str | None = None
    payment_status: str | None = None
    payment_intent: StripeRef = None
    amount_total: Amount | None = None
    currency: str | None = None
    #: Subscription mode: the subscription and customer Checkout created.
    subscription: StripeRef = None
    customer: StripeRef = None


class TransferData(BaseModel):
    """A payment intent's ``transfer_data`` (destination charges)."""

    model_config = _FROZEN

    destination: StripeRef = None


class ChargeList(BaseModel):
    """A payment intent's ``charges`` list (API versions before 2022-11-15)."""

    model_config = _FROZEN

    data: list[StripeObject] = Field(default_factory=list, max_length=100)


class PaymentIntentObject(StripeObject):
    """A ``payment_intent.*`` event's object."""

    amount: Amount
    amount_received: Amount | None = None
    currency: str
    latest_charge: StripeRef = None
    #: API versions before 2022-11-15 list the charges instead of naming the latest one.
    charges: ChargeList | None = None
    last_payment_error: dict[str, Any] | None = None
    transfer_data: TransferData | None = None
    application_fee_amount: Amount | None = None


class ChargeObject(StripeObject):
    """A ``charge.*`` event's object (``amount_refunded`` is cumulative)."""

    payment_intent: StripeRef = None
    amount_refunded: Amount
    currency: str


class DisputeObject(StripeObject):
    """A ``charge.dispute.*`` event's object."""

    charge: StripeRef = None
    payment_intent: StripeRef = None
    amount: Amount
    currency: str
    status: str


class RefundObject(StripeObject):
    """A ``refund.*`` event's object (``charge.refunded`` carries a :class:`ChargeObject`)."""

    amount: Amount
    currency: str
    charge: StripeRef = None
    payment_intent: StripeRef = None
    status: str | None = None
    failure_reason: str | None = None


def parse_object(model: type[M], env: EventEnvelope) -> M:
    """``env.data.object`` read into ``model``; a missing or garbled field is a 400."""
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


def event_money(amount: int, currency: str | None, env: EventEnvelope) -> Money:
    """An event's amount as :class:`Money`; an unknown or missing currency is a 400."""
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


# -- lenient: what the gateway returns and lists -------------------------------------------------


class GatewayObject(BaseModel):
    """Base of the ``Gateway*`` objects: ``id``, ``raw``, and :meth:`from_dict`.

    Equality and hashing ignore ``raw``, like the dataclasses these models replaced.
    """

    model_config = _FROZEN

    id: Annotated[str, PlainValidator(str)]
    #: The API object as a plain ``dict``.
    raw: SkipValidation[Mapping[str, Any]] = Field(default_factory=dict, repr=False, exclude=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """Read the fields mentorpay uses from a Stripe object (``d["id"]`` is required)."""
        raw = dict(d)
        return cls.model_validate({**raw, "id": d["id"], "raw": raw})

    def _compared(self) -> tuple[Any, ...]:
        return tuple(v for k, v in self.__dict__.items() if k != "raw")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, GatewayObject)
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())


class GatewayCheckoutSession(GatewayObject):
    """A Checkout Session as mentorpay uses it."""

    url: AsGiven = None
    status: AsGiven = None
    payment_status: AsGiven = None
    payment_intent_id: LooseRef = Field(default=None, validation_alias="payment_intent")
    amount_total: Annotated[int | None, PlainValidator(_int_or_none)] = None
    currency: LooseCurrency = ""
    expires_at: Timestamp = None
    created: Timestamp = None
    mode: AsGiven = None
    subscription_id: LooseRef = Field(default=None, validation_alias="subscription")
    customer_id: LooseRef = Field(default=None, validation_alias="customer")
    metadata: LooseMetadata = Field(default_factory=dict)


class GatewayPaymentIntent(GatewayObject):
    """A PaymentIntent as reconciliation uses it."""

    status: LooseText = ""
    amount: LooseAmount = 0
    amount_received: LooseAmount = 0
    currency: LooseCurrency = ""
    latest_charge: LooseRef = None
    created: Timestamp = None
    metadata: LooseMetadata = Field(default_factory=dict)

    @property
    def money(self) -> Money:
        """What was received (for a succeeded intent, the whole amount)."""
        return Money(self.amount_received or self.amount, self.currency)


class GatewayCharge(GatewayObject):
    """A Charge: reconciliation reads its cumulative ``amount_refunded``."""

    payment_intent_id: LooseRef = Field(default=None, validation_alias="payment_intent")
    amount: LooseAmount = 0
    amount_refunded: LooseAmount = 0
    currency: LooseCurrency = ""
    status: LooseText = ""
    created: Timestamp = None
    metadata: LooseMetadata = Field(default_factory=dict)
    #: Its balance transaction (id, or expanded): where Stripe's processing fee is.
    balance_transaction_id: LooseRef = Field(default=None, validation_alias="balance_transaction")


class _ChargeClaim(GatewayObject):
    """What a refund and a dispute share: an amount claimed back from a charge."""

    payment_intent_id: LooseRef = Field(default=None, validation_alias="payment_intent")
    charge_id: LooseRef = Field(default=None, validation_alias="charge")
    amount: LooseAmount = 0
    currency: LooseCurrency = ""
    status: LooseText = ""
    reason: AsGiven = None
    created: Timestamp = None


class GatewayRefund(_ChargeClaim):
    """A Refund."""

    metadata: LooseMetadata = Field(default_factory=dict)

    @property
    def money(self) -> Money:
        """The refunded amount."""
        return Money(self.amount, self.currency)


def _balance_transactions(value: Any) -> tuple[GatewayBalanceTransaction, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(
        GatewayBalanceTransaction.from_dict(t)
        for t in value
        if isinstance(t, Mapping) and isinstance(t.get("id"), str)
    )


class GatewayBalanceTransaction(GatewayObject):
    """A BalanceTransaction: what a charge or dispute did to the platform's Stripe balance;
    ``fee`` is what Stripe kept (negative when a fee came back)."""

    amount: LooseAmount = 0
    fee: LooseAmount = 0
    net: LooseAmount = 0
    currency: LooseCurrency = ""
    type: LooseText = ""
    source_id: LooseRef = Field(default=None, validation_alias="source")
    created: Timestamp = None

    @property
    def fee_money(self) -> Money:
        """Stripe's fee."""
        return Money(self.fee, self.currency)


class GatewayDispute(_ChargeClaim):
    """A Dispute: ``status`` ``won`` / ``lost`` once closed. ``balance_transactions`` (always
    expanded by Stripe) carry the dispute fee and, when it came back, its return."""

    balance_transactions: Annotated[
        tuple[GatewayBalanceTransaction, ...], PlainValidator(_balance_transactions)
    ] = ()

    @property
    def closed(self) -> bool:
        """Whether the dispute has an outcome. ``warning_closed`` (an inquiry that never became
        a chargeback) and ``prevented`` keep the money, like ``won``."""
        return self.status in ("won", "lost", "warning_closed", "prevented")


class GatewayTransfer(GatewayObject):
    """A Transfer from the platform to a connected account."""

    amount: LooseAmount = 0
    amount_reversed: LooseAmount = 0
    currency: LooseCurrency = ""
    destination: LooseRef = None
    reversed: Annotated[bool, PlainValidator(bool)] = False
    transfer_group: AsGiven = None
    created: Timestamp = None
    metadata: LooseMetadata = Field(default_factory=dict)

    @property
    def money(self) -> Money:
        """The transferred amount."""
        return Money(self.amount, self.currency)


class GatewayTransferReversal(GatewayObject):
    """A (possibly partial) reversal of a Transfer."""

    transfer_id: LooseRef = Field(default=None, validation_alias="transfer")
    amount: LooseAmount = 0
    currency: LooseCurrency = ""
    created: Timestamp = None
    metadata: LooseMetadata = Field(default_factory=dict)


def _flag(value: Any) -> bool:
    return value is True


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(str(v) for v in value)


def _requirements(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


class GatewayAccount(GatewayObject):
    """A Connect account: whether it can take charges and receive payouts, and what is due
    (the fields of the SDK's ``stripe.Account``)."""

    charges_enabled: Annotated[bool, PlainValidator(_flag)] = False
    payouts_enabled: Annotated[bool, PlainValidator(_flag)] = False
    details_submitted: Annotated[bool, PlainValidator(_flag)] = False
    created: Timestamp = None
    metadata: LooseMetadata = Field(default_factory=dict)
    requirements: Annotated[dict[str, Any], PlainValidator(_requirements)] = Field(
        default_factory=dict
    )

    @property
    def currently_due(self) -> tuple[str, ...]:
        """``requirements.currently_due``: what the mentor must provide now."""
        return _names(self.requirements.get("currently_due"))

    @property
    def past_due(self) -> tuple[str, ...]:
        """``requirements.past_due``: overdue, so the account is restricted."""
        return _names(self.requirements.get("past_due"))

    @property
    def disabled_reason(self) -> str | None:
        """``requirements.disabled_reason``, when Stripe disabled something."""
        reason = self.requirements.get("disabled_reason")
        return reason if isinstance(reason, str) else None
