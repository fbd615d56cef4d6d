""":class:`StripeGateway`: the :class:`~mentorpay.gateway.PaymentGateway` on the official SDK.

Synchronous ``client.v1.*`` calls, so tests intercept the real HTTP requests with ``responses``.
Every POST sends its idempotency key in the request *options*, never in the params; listings
page with the SDK's ``auto_paging_iter``; every Stripe exception leaves as a
:class:`~mentorpay.errors.GatewayError` (:mod:`mentorpay.gateway.errors`).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar, Unpack, cast

import stripe
from pydantic import SecretStr

from mentorpay.errors import ConfigurationError, GatewayError, InvalidRequestError
from mentorpay.gateway._accounts import StripeAccountCalls
from mentorpay.gateway._check import check_request
from mentorpay.gateway._plans import StripePlanCalls
from mentorpay.gateway._reads import GatewayReads, Resource
from mentorpay.gateway.errors import _map_stripe_error
from mentorpay.gateway.protocol import (
    REFUND_REASONS,
    CheckoutSessionParams,
    RefundRequest,
    ReversalRequest,
    TransferRequest,
)
from mentorpay.stripe_objects import (
    GatewayCheckoutSession,
    GatewayObject,
    GatewayRefund,
    GatewayTransfer,
    GatewayTransferReversal,
)

if TYPE_CHECKING:
    from stripe.params import (
        RefundCreateParams,
        TransferCreateParams,
        TransferReversalCreateParams,
    )
    from stripe.params.checkout import SessionCreateParams

    from mentorpay.config import MentorpayConfig

__all__ = ["StripeGateway"]

_PAGE_SIZE: Final = 100

T = TypeVar("T")
M = TypeVar("M", bound=GatewayObject)


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


def _given(request: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """The optional parameters a caller gave, as Stripe takes them: an empty ``metadata`` and
    a ``None`` are left out, so Stripe's defaults apply."""
    given: dict[str, Any] = {}
    for name in names:
        value = request.get(name)
        if name == "metadata":
            if value:
                given[name] = dict(value)
        elif value is not None:
            given[name] = value
    return given


class StripeGateway(GatewayReads, StripeAccountCalls, StripePlanCalls):
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

    def _post(
        self, model: type[M], action: str, key: str, send: Callable[[stripe.RequestOptions], Any]
    ) -> M:
        """One POST with its idempotency key in the options; the answer read into ``model``."""
        options = self._options(key)
        return model.from_dict(_as_dict(self._call(action, key, lambda: send(options))))

    def _service(self, resource: Resource[Any]) -> Any:
        return operator.attrgetter(f"v1.{resource.path}")(self._client)

    def _retrieve(self, resource: Resource[M], object_id: str, method: str) -> M:
        options = self._options()
        obj = self._call(
            f"retrieve {resource.noun} {object_id}",
            None,
            lambda: self._service(resource).retrieve(object_id, None, options),
        )
        return resource.model.from_dict(_as_dict(obj))

    def _list(
        self, resource: Resource[M], gte: datetime, lt: datetime | None, method: str
    ) -> Iterator[M]:
        """Every object created in the period, page by page (``starting_after`` the last id)."""
        action = f"list {resource.noun}s"
        options = self._options()
        params = {"created": _created_filter(gte, lt), "limit": self._page_size}
        first = self._call(action, None, lambda: self._service(resource).list(params, options))
        if not first.data:
            # The SDK would ask for a next page after an empty one that claims ``has_more``.
            return
        items = iter(first.auto_paging_iter())
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except stripe.StripeError as exc:
                raise _map_stripe_error(exc, action, None) from exc
            except ValueError as exc:
                # The SDK follows a page by its ``url`` and its last item's id; a server that
                # sends neither (not Stripe: an emulator, a proxy) must not leak a ValueError.
                raise GatewayError(f"{action}: cannot page through the answer ({exc})") from exc
            yield resource.model.from_dict(_as_dict(item))

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
        send = functools.partial(self._client.v1.checkout.sessions.create, body)
        return self._post(GatewayCheckoutSession, "create checkout session", idempotency_key, send)

    def expire_checkout_session(
        self, session_id: str, *, idempotency_key: str
    ) -> GatewayCheckoutSession:
        """Expire an open Checkout Session so it can no longer be paid."""
        send = functools.partial(self._client.v1.checkout.sessions.expire, session_id, None)
        action = f"expire checkout session {session_id}"
        return self._post(GatewayCheckoutSession, action, idempotency_key, send)

    # -- refunds and transfers ------------------------------------------------------------------

    def create_refund(self, **request: Unpack[RefundRequest]) -> GatewayRefund:
        """Refund a payment intent, fully (``amount=None``) or partially (see the protocol)."""
        check_request("create_refund", request, RefundRequest)
        payment_intent_id = request["payment_intent_id"]
        body: dict[str, Any] = {"payment_intent": payment_intent_id}
        amount, reason = request["amount"], request.get("reason")
        if amount is not None:
            body["amount"] = amount.amount
        if reason is not None:
            if reason not in REFUND_REASONS:
                raise InvalidRequestError(
                    f"refund reason must be one of {sorted(REFUND_REASONS)}, got {reason!r}",
                    reason=reason,
                )
            body["reason"] = reason
        body.update(_given(request, "metadata", "reverse_transfer", "refund_application_fee"))
        send = functools.partial(self._client.v1.refunds.create, cast("RefundCreateParams", body))
        action = f"refund {payment_intent_id}"
        return self._post(GatewayRefund, action, request["idempotency_key"], send)

    def create_transfer(self, **request: Unpack[TransferRequest]) -> GatewayTransfer:
        """Move ``amount`` from the platform's balance to a connected account."""
        check_request("create_transfer", request, TransferRequest)
        amount, destination = request["amount"], request["destination"]
        body: dict[str, Any] = {
            "amount": amount.amount,
            "currency": amount.currency.lower(),
            "destination": destination,
        }
        body.update(_given(request, "metadata", "transfer_group", "description"))
        params = cast("TransferCreateParams", body)
        send = functools.partial(self._client.v1.transfers.create, params)
        action = f"transfer {amount} to {destination}"
        return self._post(GatewayTransfer, action, request["idempotency_key"], send)

    def create_transfer_reversal(
        self, transfer_id: str, **request: Unpack[ReversalRequest]
    ) -> GatewayTransferReversal:
        """Pull a transfer (or part of it) back from the connected account."""
        check_request("create_transfer_reversal", request, ReversalRequest)
        amount = request.get("amount")
        body = {} if amount is None else {"amount": amount.amount}
        params = cast("TransferReversalCreateParams", body | _given(request, "metadata"))
        send = functools.partial(self._client.v1.transfers.reversals.create, transfer_id, params)
        action = f"reverse transfer {transfer_id}"
        return self._post(GatewayTransferReversal, action, request["idempotency_key"], send)
