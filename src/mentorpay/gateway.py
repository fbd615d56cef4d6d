"""The payment gateway: a small protocol over the Stripe calls mentorpay makes, and its Stripe
implementation on the official SDK.

Rules every implementation follows:

* Every POST carries an idempotency key in the request *options* (the ``Idempotency-Key``
  header), never in the params. Keys are deterministic: built from the booking, refund or payout
  request by the ``*_idempotency_key`` functions below, so a retry after a timeout, a crash or a
  double click replays the original request instead of acting twice.
* Results come back as small frozen dataclasses with the fields mentorpay uses, plus ``raw``: the
  API object as a plain ``dict`` (reconciliation replays it as an event's ``data.object``).
  Amounts stay ``int`` minor units with an upper-case currency, because a listing may contain
  objects in currencies mentorpay does not know; ``.money`` builds :class:`Money` on demand.
* Stripe's exceptions never escape. They become :class:`~mentorpay.errors.GatewayError`
  subclasses whose message says what happened and whether a retry can help::

      no answer, 5xx, unreadable 2xx -> GatewayConnectionError (outcome unknown, retry is safe)
      429 or stripe.RateLimitError   -> GatewayRateLimitError      (retry after a backoff)
      409 or stripe.IdempotencyError -> IdempotencyConflictError   (key reused with other params)
      stripe.CardError               -> CardError                  (402, retry will not help)
      stripe.InvalidRequestError     -> GatewayInvalidRequestError (fix the call; includes 404s)
      AuthenticationError, PermissionError -> GatewayError         (check the key)
      any other 4xx, whatever its body     -> GatewayInvalidRequestError (a refusal)

  The HTTP status decides first: a proxy's HTML 403 or an emulator's text 404 is a refusal
  with a known outcome, never a lost answer.

  :func:`outcome_unknown` tells a caller whether Stripe may have acted despite the error (only
  then must local state keep the attempt, so the retry replays the same request).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TypeVar, runtime_checkable

import stripe
from pydantic import SecretStr

from mentorpay.errors import (
    CardError,
    ConfigurationError,
    GatewayConnectionError,
    GatewayError,
    GatewayInvalidRequestError,
    GatewayRateLimitError,
    IdempotencyConflictError,
    InvalidRequestError,
)
from mentorpay.money import Money

if TYPE_CHECKING:
    from stripe.params import (
        RefundCreateParams,
        TransferCreateParams,
        TransferReversalCreateParams,
    )
    from stripe.params.checkout import SessionCreateParams

    from mentorpay.config import MentorpayConfig

__all__ = [
    "REFUND_REASONS",
    "CheckoutSessionParams",
    "GatewayCharge",
    "GatewayCheckoutSession",
    "GatewayDispute",
    "GatewayPaymentIntent",
    "GatewayRefund",
    "GatewayTransfer",
    "GatewayTransferReversal",
    "PaymentGateway",
    "RefundReason",
    "StripeGateway",
    "checkout_expire_idempotency_key",
    "checkout_idempotency_key",
    "is_missing_resource",
    "outcome_unknown",
    "payout_reversal_idempotency_key",
    "payout_transfer_idempotency_key",
    "refund_idempotency_key",
]

RefundReason = Literal["duplicate", "fraudulent", "requested_by_customer"]
#: The reasons Stripe accepts on a refund.
REFUND_REASONS: Final[frozenset[str]] = frozenset(
    {"duplicate", "fraudulent", "requested_by_customer"}
)

# Stripe accepts idempotency keys up to 255 characters; past this length a key is hashed so a
# long host booking id can never push it over (the gateway's namespace prefix needs room too).
_MAX_KEY_LENGTH: Final = 200
_PAGE_SIZE: Final = 100


# -- idempotency keys ---------------------------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _key(kind: str, *parts: str) -> str:
    key = ":".join(("mentorpay", kind, *parts))
    if len(key) <= _MAX_KEY_LENGTH:
        return key
    return f"mentorpay:{kind}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def checkout_idempotency_key(
    booking_id: str, amount: Money, attempt: int, fingerprint: str = ""
) -> str:
    """Key for creating the ``attempt``-th Checkout Session of a booking at ``amount``.

    ``attempt`` counts the sessions mentorpay created for the booking before (so a new session
    after one expired gets a new key); ``fingerprint`` summarises the other parameters that
    decide the request (fee, destination, payer), so a corrected request never collides with a
    refused one under the same key.
    """
    # A long host id is hashed on its own, so the key keeps its readable tail (attempt, amount,
    # fingerprint) and stays well inside Stripe's 255 characters.
    booking = booking_id if len(booking_id) <= 100 else "sha256-" + _digest(booking_id)
    parts = [booking, str(attempt), f"{amount.amount}{amount.currency.lower()}"]
    if fingerprint:
        parts.append(fingerprint)
    return _key("checkout", *parts)


def checkout_expire_idempotency_key(session_id: str) -> str:
    """Key for expiring one Checkout Session (expiring twice is the same request)."""
    return _key("checkout-expire", session_id)


def refund_idempotency_key(
    payment_intent_id: str, *, cumulative_target: int | None = None, request_id: str | None = None
) -> str:
    """Key for a platform refund.

    With ``request_id`` (the caller's own identifier for this refund, such as a support ticket)
    the key names that request. Otherwise it names the cumulative amount refunded after this
    refund, so a double click asks for the same refund twice and Stripe performs it once.
    """
    if request_id is not None:
        return _key("refund", payment_intent_id, "request", request_id)
    if cumulative_target is None:
        raise InvalidRequestError("a refund key needs a cumulative target or a request id")
    return _key("refund", payment_intent_id, "to", str(cumulative_target))


def payout_transfer_idempotency_key(payout_request_id: int) -> str:
    """Key for the Stripe transfer that pays one payout request."""
    return _key("payout", str(payout_request_id), "transfer")


def payout_reversal_idempotency_key(payout_request_id: int) -> str:
    """Key for reversing the transfer of one payout request."""
    return _key("payout", str(payout_request_id), "reversal")


# -- results ------------------------------------------------------------------------------------


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, int) else None


def _str(value: Any) -> str | None:
    """An expandable Stripe field: an id string, an expanded object with an id, or None."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        inner = value.get("id")
        return inner if isinstance(inner, str) else None
    return None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _cur(value: Any) -> str:
    return value.upper() if isinstance(value, str) else ""


def _meta(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


@dataclass(frozen=True, slots=True)
class CheckoutSessionParams:
    """What mentorpay asks Stripe Checkout for: one line item for one booking."""

    booking_id: str
    mentor_id: str
    mentee_id: str
    amount: Money
    line_item_name: str
    success_url: str
    cancel_url: str
    expires_at: datetime
    #: Connect destination charges: the platform's commission and the mentor's account.
    application_fee: Money | None = None
    destination: str | None = None

    @property
    def metadata(self) -> dict[str, str]:
        """Set on the session and its payment intent; webhooks find the booking through it.

        Destination charges also name the mentor's account (``mentor_account``) and the
        application fee (``platform_fee``): whichever event records the payment knows the
        mentor's share left with Stripe's transfer, and what Stripe kept.
        """
        metadata = {
            "booking_id": self.booking_id,
            "mentor_id": self.mentor_id,
            "mentee_id": self.mentee_id,
        }
        if self.destination is not None:
            metadata["mentor_account"] = self.destination
        if self.application_fee is not None:
            # The fee Stripe will keep, so the ledger records exactly it even if the policy
            # changes between checkout and payment.
            metadata["platform_fee"] = str(self.application_fee.amount)
        return metadata


@dataclass(frozen=True, slots=True)
class GatewayCheckoutSession:
    """A Checkout Session as mentorpay uses it."""

    id: str
    url: str | None
    status: str | None
    payment_status: str | None
    payment_intent_id: str | None
    amount_total: int | None
    currency: str
    expires_at: datetime | None
    created: datetime | None
    metadata: Mapping[str, str]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GatewayCheckoutSession:
        """Read the fields mentorpay uses from a Stripe ``checkout.session`` object."""
        total = d.get("amount_total")
        return cls(
            id=str(d["id"]),
            url=d.get("url"),
            status=d.get("status"),
            payment_status=d.get("payment_status"),
            payment_intent_id=_str(d.get("payment_intent")),
            amount_total=total if isinstance(total, int) else None,
            currency=_cur(d.get("currency")),
            expires_at=_ts(d.get("expires_at")),
            created=_ts(d.get("created")),
            metadata=_meta(d.get("metadata")),
            raw=dict(d),
        )


@dataclass(frozen=True, slots=True)
class GatewayPaymentIntent:
    """A PaymentIntent as reconciliation uses it."""

    id: str
    status: str
    amount: int
    amount_received: int
    currency: str
    latest_charge: str | None
    created: datetime | None
    metadata: Mapping[str, str]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def money(self) -> Money:
        """What was received (for a succeeded intent, the whole amount)."""
        return Money(self.amount_received or self.amount, self.currency)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GatewayPaymentIntent:
        """Read the fields mentorpay uses from a Stripe ``payment_intent`` object."""
        return cls(
            id=str(d["id"]),
            status=str(d.get("status") or ""),
            amount=_int(d.get("amount")),
            amount_received=_int(d.get("amount_received")),
            currency=_cur(d.get("currency")),
            latest_charge=_str(d.get("latest_charge")),
            created=_ts(d.get("created")),
            metadata=_meta(d.get("metadata")),
            raw=dict(d),
        )


@dataclass(frozen=True, slots=True)
class GatewayCharge:
    """A Charge: reconciliation reads its cumulative ``amount_refunded``."""

    id: str
    payment_intent_id: str | None
    amount: int
    amount_refunded: int
    currency: str
    status: str
    created: datetime | None
    metadata: Mapping[str, str]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GatewayCharge:
        """Read the fields mentorpay uses from a Stripe ``charge`` object."""
        return cls(
            id=str(d["id"]),
            payment_intent_id=_str(d.get("payment_intent")),
            amount=_int(d.get("amount")),
            amount_refunded=_int(d.get("amount_refunded")),
            currency=_cur(d.get("currency")),
            status=str(d.get("status") or ""),
            created=_ts(d.get("created")),
            metadata=_meta(d.get("metadata")),
            raw=dict(d),
        )


@dataclass(frozen=True, slots=True)
class GatewayRefund:
    """A Refund."""

    id: str
    payment_intent_id: str | None
    charge_id: str | None
    amount: int
    currency: str
    status: str
    reason: str | None
    created: datetime | None
    metadata: Mapping[str, str]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def money(self) -> Money:
        """The refunded amount."""
        return Money(self.amount, self.currency)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GatewayRefund:
        """Read the fields mentorpay uses from a Stripe ``refund`` object."""
        return cls(
            id=str(d["id"]),
            payment_intent_id=_str(d.get("payment_intent")),
            charge_id=_str(d.get("charge")),
            amount=_int(d.get("amount")),
            currency=_cur(d.get("currency")),
            status=str(d.get("status") or ""),
            reason=d.get("reason"),
            created=_ts(d.get("created")),
            metadata=_meta(d.get("metadata")),
            raw=dict(d),
        )


@dataclass(frozen=True, slots=True)
class GatewayDispute:
    """A Dispute: ``status`` ``won`` / ``lost`` once closed."""

    id: str
    payment_intent_id: str | None
    charge_id: str | None
    amount: int
    currency: str
    status: str
    reason: str | None
    created: datetime | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def closed(self) -> bool:
        """Whether the dispute has an outcome. ``warning_closed`` (an inquiry that never became
        a chargeback) and ``prevented`` keep the money, like ``won``."""
        return self.status in ("won", "lost", "warning_closed", "prevented")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GatewayDispute:
        """Read the fields mentorpay uses from a Stripe ``dispute`` object."""
        return cls(
            id=str(d["id"]),
            payment_intent_id=_str(d.get("payment_intent")),
            charge_id=_str(d.get("charge")),
            amount=_int(d.get("amount")),
            currency=_cur(d.get("currency")),
            status=str(d.get("status") or ""),
            reason=d.get("reason"),
            created=_ts(d.get("created")),
            raw=dict(d),
        )


@dataclass(frozen=True, slots=True)
class GatewayTransfer:
    """A Transfer from the platform to a connected account."""

    id: str
    amount: int
    amount_reversed: int
    currency: str
    destination: str | None
    reversed: bool
    transfer_group: str | None
    created: datetime | None
    metadata: Mapping[str, str]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def money(self) -> Money:
        """The transferred amount."""
        return Money(self.amount, self.currency)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GatewayTransfer:
        """Read the fields mentorpay uses from a Stripe ``transfer`` object."""
        return cls(
            id=str(d["id"]),
            amount=_int(d.get("amount")),
            amount_reversed=_int(d.get("amount_reversed")),
            currency=_cur(d.get("currency")),
            destination=_str(d.get("destination")),
            reversed=bool(d.get("reversed")),
            transfer_group=d.get("transfer_group"),
            created=_ts(d.get("created")),
            metadata=_meta(d.get("metadata")),
            raw=dict(d),
        )


@dataclass(frozen=True, slots=True)
class GatewayTransferReversal:
    """A (possibly partial) reversal of a Transfer."""

    id: str
    transfer_id: str | None
    amount: int
    currency: str
    created: datetime | None
    metadata: Mapping[str, str]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GatewayTransferReversal:
        """Read the fields mentorpay uses from a Stripe ``transfer_reversal`` object."""
        return cls(
            id=str(d["id"]),
            transfer_id=_str(d.get("transfer")),
            amount=_int(d.get("amount")),
            currency=_cur(d.get("currency")),
            created=_ts(d.get("created")),
            metadata=_meta(d.get("metadata")),
            raw=dict(d),
        )


# -- the protocol -------------------------------------------------------------------------------


@runtime_checkable
class PaymentGateway(Protocol):
    """The Stripe calls mentorpay makes. ``StripeGateway`` is the real one; ``FakeGateway`` in
    :mod:`mentorpay.testing` is the in-memory one.

    POST methods take a required ``idempotency_key`` (build it with the ``*_idempotency_key``
    functions). ``list_*`` methods page through Stripe's objects created in
    ``[created_gte, created_lt)`` and yield every one of them, oldest page first. All methods
    raise :class:`~mentorpay.errors.GatewayError` subclasses only.
    """

    def create_checkout_session(
        self, params: CheckoutSessionParams, *, idempotency_key: str
    ) -> GatewayCheckoutSession: ...

    def expire_checkout_session(
        self, session_id: str, *, idempotency_key: str
    ) -> GatewayCheckoutSession: ...

    def retrieve_checkout_session(self, session_id: str) -> GatewayCheckoutSession: ...

    def create_refund(
        self,
        *,
        payment_intent_id: str,
        amount: Money | None,
        idempotency_key: str,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        reverse_transfer: bool | None = None,
        refund_application_fee: bool | None = None,
    ) -> GatewayRefund: ...

    def create_transfer(
        self,
        *,
        amount: Money,
        destination: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        transfer_group: str | None = None,
        description: str | None = None,
    ) -> GatewayTransfer: ...

    def create_transfer_reversal(
        self,
        transfer_id: str,
        *,
        idempotency_key: str,
        amount: Money | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> GatewayTransferReversal: ...

    def retrieve_payment_intent(self, payment_intent_id: str) -> GatewayPaymentIntent: ...

    def retrieve_charge(self, charge_id: str) -> GatewayCharge: ...

    def retrieve_dispute(self, dispute_id: str) -> GatewayDispute: ...

    def retrieve_transfer(self, transfer_id: str) -> GatewayTransfer: ...

    def list_payment_intents(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayPaymentIntent]: ...

    def list_checkout_sessions(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayCheckoutSession]: ...

    def list_charges(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayCharge]: ...

    def list_refunds(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayRefund]: ...

    def list_disputes(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayDispute]: ...

    def list_transfers(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayTransfer]: ...


# -- error mapping ------------------------------------------------------------------------------


def outcome_unknown(exc: GatewayError) -> bool:
    """Whether Stripe may have performed the call although it raised.

    True for connection failures, timeouts and Stripe-side 5xx errors: the request may have
    been executed and only the answer lost. The caller must then keep what it needs to send the
    *identical* request again (same key, same params), so Stripe replays the original result.
    Every other error is a refusal: nothing happened at Stripe.
    """
    return isinstance(exc, GatewayConnectionError)


def is_missing_resource(exc: GatewayError) -> bool:
    """Whether Stripe answered that the object does not exist (``resource_missing``)."""
    return (
        isinstance(exc, GatewayInvalidRequestError)
        and exc.details.get("stripe_code") == "resource_missing"
    )


def _short(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters: a proxy's error page is not a message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _map_stripe_error(
    exc: stripe.StripeError, action: str, idempotency_key: str | None
) -> GatewayError:
    """Translate a Stripe SDK exception into mentorpay's tree, saying whether to retry.

    The HTTP status decides the outcome; the SDK's class (read from a JSON body) only refines
    it. A body that is not Stripe's JSON (a proxy's HTML 403, an emulator's plain-text 404)
    comes out of the SDK as a generic ``APIError``, and must not pass for a lost answer.
    """
    status = exc.http_status
    stripe_message = _short(exc.user_message or str(exc) or exc.__class__.__name__)
    details: dict[str, Any] = {
        "action": action,
        "stripe_error": exc.__class__.__name__,
        "stripe_code": exc.code,
        "stripe_status": status,
        "request_id": exc.request_id,
    }
    if idempotency_key is not None:
        details["idempotency_key"] = idempotency_key
    param = getattr(exc, "param", None)
    if isinstance(param, str):
        details["param"] = param
    if status is None or status < 400 or status >= 500:
        # No answer, an unreadable success, or a 5xx: Stripe may have executed the request
        # before failing, so the outcome is unknown (the SDK already retried with the same key).
        if isinstance(exc, stripe.APIConnectionError) or status is None:
            what = f"could not get an answer from Stripe ({stripe_message})"
        else:
            what = f"Stripe failed with HTTP {status} ({stripe_message})"
        return GatewayConnectionError(
            f"{action}: {what}; the call may or may not have been performed. Retry: the same "
            "idempotency key makes Stripe return the original result instead of acting twice.",
            outcome="unknown",
            **details,
        )
    if status == 429 or isinstance(exc, stripe.RateLimitError):
        return GatewayRateLimitError(
            f"{action}: Stripe rate-limited the request and did not perform it: "
            f"{stripe_message}. Retry after a backoff; the idempotency key keeps it safe.",
            **details,
        )
    if status == 409 or isinstance(exc, stripe.IdempotencyError):
        return IdempotencyConflictError(
            f"{action}: Stripe refused idempotency key {idempotency_key!r} (HTTP {status}): "
            f"{stripe_message}. The key was used before with different parameters (or that "
            "request is still running); retrying the same call will not help until the "
            "conflicting request is resolved.",
            **details,
        )
    if isinstance(exc, stripe.CardError):
        decline = getattr(exc.error, "decline_code", None) if exc.error else None
        if isinstance(decline, str):
            details["decline_code"] = decline
        return CardError(
            f"{action}: the card was declined ({exc.code or 'card_error'}): {stripe_message}. "
            "Retrying with the same card will not help; ask for another payment method.",
            **details,
        )
    if isinstance(exc, stripe.InvalidRequestError):
        return GatewayInvalidRequestError(
            f"{action}: Stripe rejected the request ({exc.code or 'invalid_request'}"
            f"{', param ' + param if isinstance(param, str) else ''}): {stripe_message}. "
            "Retrying will not help; fix the parameters or the object's state.",
            **details,
        )
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return GatewayError(
            f"{action}: Stripe refused the API key ({stripe_message}). Check the secret key "
            "mentorpay is configured with (STRIPE_SECRET_KEY); retrying will not help.",
            **details,
        )
    # Any other 4xx, whatever its body: a refusal, so nothing happened at Stripe.
    return GatewayInvalidRequestError(
        f"{action}: the request was refused with HTTP {status} ({stripe_message}); nothing "
        "was performed. Retrying will not help: check the parameters, STRIPE_API_BASE and any "
        "proxy between mentorpay and Stripe.",
        **details,
    )


# -- the Stripe implementation ------------------------------------------------------------------

T = TypeVar("T")


def _epoch(value: datetime) -> int:
    if value.tzinfo is None:
        raise InvalidRequestError("mentorpay needs aware datetimes; pass tzinfo=UTC")
    return int(value.timestamp())


def _created_filter(created_gte: datetime, created_lt: datetime | None) -> dict[str, int]:
    created = {"gte": _epoch(created_gte)}
    if created_lt is not None:
        created["lt"] = _epoch(created_lt)
    return created


def _as_dict(obj: Any) -> dict[str, Any]:
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        if isinstance(result, dict):
            return result
    if isinstance(obj, Mapping):
        return dict(obj)
    raise GatewayError(f"Stripe returned an unexpected object: {type(obj).__name__}")


class StripeGateway:
    """:class:`PaymentGateway` on ``stripe.StripeClient`` (synchronous ``client.v1.*`` calls).

    ``max_network_retries``: how often the SDK itself retries a connection failure, a 409 or a
    5xx before giving up, always with the same idempotency key. ``stripe_account``: send every
    request on behalf of that connected account (``Stripe-Account`` header); leave ``None`` for
    a platform using destination charges. ``idempotency_prefix`` namespaces every key, for
    several databases (staging, a developer's laptop) sharing one Stripe account: their
    booking and payout ids collide, their keys must not. ``api_base``: reach Stripe's API
    somewhere else (``stripe-mock``, an emulator, an egress proxy); ignored with ``client``.
    """

    def __init__(
        self,
        secret_key: str | SecretStr | None,
        *,
        client: stripe.StripeClient | None = None,
        max_network_retries: int = 2,
        stripe_account: str | None = None,
        idempotency_prefix: str = "",
        page_size: int = _PAGE_SIZE,
        api_base: str | None = None,
    ) -> None:
        if client is None:
            key = secret_key.get_secret_value() if isinstance(secret_key, SecretStr) else secret_key
            if not key:
                raise ConfigurationError(
                    "StripeGateway needs a Stripe secret key (sk_live_... or sk_test_...); "
                    "set STRIPE_SECRET_KEY or pass a client"
                )
            client = stripe.StripeClient(
                key,
                max_network_retries=max_network_retries,
                base_addresses={"api": api_base} if api_base else None,
            )
        if not 1 <= page_size <= 100:
            raise ConfigurationError("page_size must be between 1 and 100 (Stripe's limit)")
        self._client = client
        self._stripe_account = stripe_account
        self._prefix = idempotency_prefix
        self._page_size = page_size

    @classmethod
    def from_config(cls, config: MentorpayConfig, **kwargs: Any) -> StripeGateway:
        """A gateway using ``config.stripe_secret_key`` and ``config.stripe_api_base``."""
        kwargs.setdefault("api_base", config.stripe_api_base)
        return cls(config.stripe_secret_key, **kwargs)

    # -- plumbing -------------------------------------------------------------------------------

    def _options(self, idempotency_key: str | None = None) -> stripe.RequestOptions:
        options: stripe.RequestOptions = {}
        if idempotency_key is not None:
            if not idempotency_key:
                raise InvalidRequestError("an idempotency key cannot be empty")
            options["idempotency_key"] = self._prefix + idempotency_key
        if self._stripe_account is not None:
            options["stripe_account"] = self._stripe_account
        return options

    def _call(self, action: str, idempotency_key: str | None, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except stripe.StripeError as exc:
            sent_key = None if idempotency_key is None else self._prefix + idempotency_key
            raise _map_stripe_error(exc, action, sent_key) from exc

    def _paginate(
        self,
        action: str,
        list_page: Callable[[dict[str, Any]], Any],
        base: dict[str, Any],
    ) -> Iterator[dict[str, Any]]:
        starting_after: str | None = None
        while True:
            params = {**base, "limit": self._page_size}
            if starting_after is not None:
                params["starting_after"] = starting_after
            page = self._call(action, None, functools.partial(list_page, params))
            items = [_as_dict(item) for item in page.data]
            yield from items
            if not page.has_more or not items:
                return
            starting_after = str(items[-1]["id"])

    # -- checkout -------------------------------------------------------------------------------

    def create_checkout_session(
        self, params: CheckoutSessionParams, *, idempotency_key: str
    ) -> GatewayCheckoutSession:
        """Create a payment-mode Checkout Session with one line item for the booking."""
        amount = params.amount
        payment_intent_data: dict[str, Any] = {"metadata": params.metadata}
        if params.application_fee is not None:
            payment_intent_data["application_fee_amount"] = params.application_fee.amount
        if params.destination is not None:
            payment_intent_data["transfer_data"] = {"destination": params.destination}
        body: SessionCreateParams = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": amount.currency.lower(),
                        "unit_amount": amount.amount,
                        "product_data": {"name": params.line_item_name},
                    },
                }
            ],
            "success_url": params.success_url,
            "cancel_url": params.cancel_url,
            "client_reference_id": params.booking_id,
            "expires_at": _epoch(params.expires_at),
            "metadata": params.metadata,
            "payment_intent_data": payment_intent_data,  # type: ignore[typeddict-item]
        }
        options = self._options(idempotency_key)
        session = self._call(
            "create checkout session",
            idempotency_key,
            lambda: self._client.v1.checkout.sessions.create(body, options),
        )
        return GatewayCheckoutSession.from_dict(_as_dict(session))

    def expire_checkout_session(
        self, session_id: str, *, idempotency_key: str
    ) -> GatewayCheckoutSession:
        """Expire an open Checkout Session so it can no longer be paid."""
        options = self._options(idempotency_key)
        session = self._call(
            f"expire checkout session {session_id}",
            idempotency_key,
            lambda: self._client.v1.checkout.sessions.expire(session_id, None, options),
        )
        return GatewayCheckoutSession.from_dict(_as_dict(session))

    def retrieve_checkout_session(self, session_id: str) -> GatewayCheckoutSession:
        """One Checkout Session."""
        options = self._options()
        session = self._call(
            f"retrieve checkout session {session_id}",
            None,
            lambda: self._client.v1.checkout.sessions.retrieve(session_id, None, options),
        )
        return GatewayCheckoutSession.from_dict(_as_dict(session))

    # -- refunds --------------------------------------------------------------------------------

    def create_refund(
        self,
        *,
        payment_intent_id: str,
        amount: Money | None,
        idempotency_key: str,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        reverse_transfer: bool | None = None,
        refund_application_fee: bool | None = None,
    ) -> GatewayRefund:
        """Refund a payment intent, fully (``amount=None``) or partially."""
        body: RefundCreateParams = {"payment_intent": payment_intent_id}
        if amount is not None:
            body["amount"] = amount.amount
        if reason is not None:
            if reason not in REFUND_REASONS:
                raise InvalidRequestError(
                    f"refund reason must be one of {sorted(REFUND_REASONS)}, got {reason!r}",
                    reason=reason,
                )
            body["reason"] = reason
        if metadata:
            body["metadata"] = dict(metadata)
        if reverse_transfer is not None:
            body["reverse_transfer"] = reverse_transfer
        if refund_application_fee is not None:
            body["refund_application_fee"] = refund_application_fee
        options = self._options(idempotency_key)
        refund = self._call(
            f"refund {payment_intent_id}",
            idempotency_key,
            lambda: self._client.v1.refunds.create(body, options),
        )
        return GatewayRefund.from_dict(_as_dict(refund))

    # -- transfers ------------------------------------------------------------------------------

    def create_transfer(
        self,
        *,
        amount: Money,
        destination: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        transfer_group: str | None = None,
        description: str | None = None,
    ) -> GatewayTransfer:
        """Move ``amount`` from the platform's balance to a connected account."""
        body: TransferCreateParams = {
            "amount": amount.amount,
            "currency": amount.currency.lower(),
            "destination": destination,
        }
        if metadata:
            body["metadata"] = dict(metadata)
        if transfer_group is not None:
            body["transfer_group"] = transfer_group
        if description is not None:
            body["description"] = description
        options = self._options(idempotency_key)
        transfer = self._call(
            f"transfer {amount} to {destination}",
            idempotency_key,
            lambda: self._client.v1.transfers.create(body, options),
        )
        return GatewayTransfer.from_dict(_as_dict(transfer))

    def create_transfer_reversal(
        self,
        transfer_id: str,
        *,
        idempotency_key: str,
        amount: Money | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> GatewayTransferReversal:
        """Pull a transfer (or part of it) back from the connected account."""
        body: TransferReversalCreateParams = {}
        if amount is not None:
            body["amount"] = amount.amount
        if metadata:
            body["metadata"] = dict(metadata)
        options = self._options(idempotency_key)
        reversal = self._call(
            f"reverse transfer {transfer_id}",
            idempotency_key,
            lambda: self._client.v1.transfers.reversals.create(transfer_id, body, options),
        )
        return GatewayTransferReversal.from_dict(_as_dict(reversal))

    # -- retrieval ------------------------------------------------------------------------------

    def retrieve_payment_intent(self, payment_intent_id: str) -> GatewayPaymentIntent:
        """One PaymentIntent."""
        options = self._options()
        obj = self._call(
            f"retrieve payment intent {payment_intent_id}",
            None,
            lambda: self._client.v1.payment_intents.retrieve(payment_intent_id, None, options),
        )
        return GatewayPaymentIntent.from_dict(_as_dict(obj))

    def retrieve_charge(self, charge_id: str) -> GatewayCharge:
        """One Charge."""
        options = self._options()
        obj = self._call(
            f"retrieve charge {charge_id}",
            None,
            lambda: self._client.v1.charges.retrieve(charge_id, None, options),
        )
        return GatewayCharge.from_dict(_as_dict(obj))

    def retrieve_dispute(self, dispute_id: str) -> GatewayDispute:
        """One Dispute."""
        options = self._options()
        obj = self._call(
            f"retrieve dispute {dispute_id}",
            None,
            lambda: self._client.v1.disputes.retrieve(dispute_id, None, options),
        )
        return GatewayDispute.from_dict(_as_dict(obj))

    def retrieve_transfer(self, transfer_id: str) -> GatewayTransfer:
        """One Transfer."""
        options = self._options()
        obj = self._call(
            f"retrieve transfer {transfer_id}",
            None,
            lambda: self._client.v1.transfers.retrieve(transfer_id, None, options),
        )
        return GatewayTransfer.from_dict(_as_dict(obj))

    # -- listings (reconciliation) --------------------------------------------------------------

    def _list_created(
        self,
        what: str,
        list_fn: Callable[[Any, stripe.RequestOptions], Any],
        parse: Callable[[Mapping[str, Any]], T],
        created_gte: datetime,
        created_lt: datetime | None,
    ) -> Iterator[T]:
        """Every object of one kind created in ``[created_gte, created_lt)``, page by page."""
        options = self._options()
        base = {"created": _created_filter(created_gte, created_lt)}
        for d in self._paginate(f"list {what}", lambda p: list_fn(p, options), base):
            yield parse(d)

    def list_payment_intents(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayPaymentIntent]:
        """Every PaymentIntent created in the period."""
        return self._list_created(
            "payment intents",
            self._client.v1.payment_intents.list,
            GatewayPaymentIntent.from_dict,
            created_gte,
            created_lt,
        )

    def list_checkout_sessions(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayCheckoutSession]:
        """Every Checkout Session created in the period."""
        return self._list_created(
            "checkout sessions",
            self._client.v1.checkout.sessions.list,
            GatewayCheckoutSession.from_dict,
            created_gte,
            created_lt,
        )

    def list_charges(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayCharge]:
        """Every Charge created in the period."""
        return self._list_created(
            "charges",
            self._client.v1.charges.list,
            GatewayCharge.from_dict,
            created_gte,
            created_lt,
        )

    def list_refunds(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayRefund]:
        """Every Refund created in the period."""
        return self._list_created(
            "refunds",
            self._client.v1.refunds.list,
            GatewayRefund.from_dict,
            created_gte,
            created_lt,
        )

    def list_disputes(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayDispute]:
        """Every Dispute created in the period."""
        return self._list_created(
            "disputes",
            self._client.v1.disputes.list,
            GatewayDispute.from_dict,
            created_gte,
            created_lt,
        )

    def list_transfers(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayTransfer]:
        """Every Transfer created in the period."""
        return self._list_created(
            "transfers",
            self._client.v1.transfers.list,
            GatewayTransfer.from_dict,
            created_gte,
            created_lt,
        )
