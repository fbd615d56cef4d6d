"""The Stripe Billing calls of the gateway: plan checkout, subscription cancel and plan change,
billing-portal sessions.

- :func:`check_plan_params`: what both gateways refuse before asking Stripe (a commission in
  the form the other kind of plan takes, a malformed percentage), so no plan is ever sold
  without the commission its caller asked for.
- :func:`plan_session_body`: the Checkout Session request, shared by the real gateway and the
  fake's record of it.
- :class:`StripePlanCalls`: the methods on ``stripe.StripeClient``, mixed into
  :class:`~mentorpay.gateway.StripeGateway`; each POST carries its idempotency key in the request
  options (:mod:`mentorpay.gateway.keys`), never in the params.

A subscription that is already canceled: Stripe answers a cancel (``DELETE``) with a 404
``resource_missing``, as if it did not exist, and an update with a 400. The gateway then reads
the subscription once; if it exists and is ``canceled`` the error it raises carries
``subscription_status="canceled"`` (:func:`is_subscription_canceled`), so a caller can tell
"already done" from "no such subscription" (which :func:`~mentorpay.gateway.is_missing_resource`
alone cannot).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, cast

from mentorpay.errors import GatewayError, GatewayInvalidRequestError, InvalidRequestError
from mentorpay.gateway._reads import Resource
from mentorpay.gateway.protocol import PlanCheckoutParams
from mentorpay.stripe_billing import GatewaySubscription
from mentorpay.stripe_objects import GatewayCheckoutSession, GatewayObject

if TYPE_CHECKING:
    import stripe
    from stripe.params import PriceCreateParams, SubscriptionUpdateParams
    from stripe.params.billing_portal import SessionCreateParams as PortalSessionCreateParams
    from stripe.params.checkout import SessionCreateParams

__all__ = [
    "SUBSCRIPTIONS",
    "StripePlanCalls",
    "change_metadata",
    "check_plan_params",
    "is_subscription_canceled",
    "plan_session_body",
    "subscription_canceled_error",
]

SUBSCRIPTIONS = Resource(
    GatewaySubscription, "subscription", "subscription", "subscriptions", "subscription_id"
)

# Stripe's application_fee_percent: 0 to 100 with at most two decimals.
_PERCENT: Final = re.compile(r"\d{1,3}(\.\d{1,2})?")


def check_plan_params(params: PlanCheckoutParams) -> None:
    """Refuse a plan whose commission Stripe would silently drop or misread."""
    if params.kind not in ("subscription", "package"):
        raise InvalidRequestError(f"unknown plan kind {params.kind!r}", kind=params.kind)
    if params.kind == "subscription" and params.application_fee is not None:
        raise InvalidRequestError(
            "a subscription takes its commission as application_fee_percent, "
            "not application_fee (Stripe applies a percentage to every invoice)"
        )
    if params.kind == "package" and params.application_fee_percent is not None:
        raise InvalidRequestError(
            "a package takes its commission as an exact application_fee, "
            "not application_fee_percent"
        )
    percent = params.application_fee_percent
    if percent is not None and (not _PERCENT.fullmatch(percent) or Decimal(percent) > 100):
        raise InvalidRequestError(
            f"application_fee_percent must be 0 to 100 with at most two decimals, got {percent!r}",
            application_fee_percent=percent,
        )
    if params.interval_count < 1:
        raise InvalidRequestError("interval_count must be at least 1")


def _price_data(params: PlanCheckoutParams) -> dict[str, Any]:
    amount = params.amount
    data: dict[str, Any] = {
        "currency": amount.currency.lower(),
        "unit_amount": amount.amount,
        "product_data": {"name": params.line_item_name},
    }
    if params.kind == "subscription":
        data["recurring"] = _recurring(params)
    return data


def _recurring(params: PlanCheckoutParams) -> dict[str, Any]:
    return {"interval": params.interval, "interval_count": params.interval_count}


def plan_session_body(params: PlanCheckoutParams) -> dict[str, Any]:
    """The Checkout Session request selling the plan (see :class:`PlanCheckoutParams`)."""
    check_plan_params(params)
    if params.expires_at.tzinfo is None:
        raise InvalidRequestError("mentorpay needs aware datetimes; pass tzinfo=UTC")
    line_item: dict[str, Any] = {"quantity": 1}
    if params.stripe_price_id is not None:
        line_item["price"] = params.stripe_price_id
    else:
        line_item["price_data"] = _price_data(params)
    # The purchase's metadata goes on the object that outlives the session too: the
    # subscription (its invoices carry it) or the package's payment intent.
    data: dict[str, Any] = {"metadata": params.metadata}
    if params.destination is not None:
        data["transfer_data"] = {"destination": params.destination}
    if params.kind == "subscription":
        if params.application_fee_percent is not None:
            data["application_fee_percent"] = params.application_fee_percent
    elif params.application_fee is not None:
        data["application_fee_amount"] = params.application_fee.amount
    body: dict[str, Any] = {
        "mode": "subscription" if params.kind == "subscription" else "payment",
        "line_items": [line_item],
        "success_url": params.success_url,
        "cancel_url": params.cancel_url,
        "client_reference_id": params.mentee_id,
        "expires_at": int(params.expires_at.timestamp()),
        "metadata": params.metadata,
        "subscription_data" if params.kind == "subscription" else "payment_intent_data": data,
    }
    if params.customer_id is not None:
        body["customer"] = params.customer_id
    return body


def change_metadata(params: PlanCheckoutParams) -> dict[str, str]:
    """The subscription's metadata after a plan change. Stripe merges metadata on update, so
    a ``mentor_account`` the new plan lacks is unset (an empty value) rather than left stale."""
    metadata = dict(params.metadata)
    metadata.setdefault("mentor_account", "")
    return metadata


def subscription_canceled_error(
    subscription_id: str, action: str, details: Mapping[str, Any]
) -> GatewayInvalidRequestError:
    """Stripe's refusal of a call on a canceled subscription (its ``details``), saying so."""
    details = {**details, "subscription_status": "canceled", "subscription_id": subscription_id}
    return GatewayInvalidRequestError(
        f"{action}: subscription {subscription_id} is already canceled; Stripe changes nothing "
        "on a canceled subscription. Retrying will not help.",
        **details,
    )


def is_subscription_canceled(exc: GatewayError) -> bool:
    """Whether Stripe refused the call because the subscription is already canceled."""
    return (
        isinstance(exc, GatewayInvalidRequestError)
        and exc.details.get("subscription_status") == "canceled"
    )


class StripePlanCalls:
    """The Billing calls on ``stripe.StripeClient`` (mixed into ``StripeGateway``)."""

    _client: stripe.StripeClient
    _post: Callable[..., Any]
    _retrieve: Callable[..., Any]

    def retrieve_subscription(self, subscription_id: str) -> GatewaySubscription:
        """One Subscription, as Stripe has it now (canceled ones included)."""
        sub: GatewaySubscription = self._retrieve(
            SUBSCRIPTIONS, subscription_id, "retrieve_subscription"
        )
        return sub

    def create_plan_checkout_session(
        self, params: PlanCheckoutParams, *, idempotency_key: str
    ) -> GatewayCheckoutSession:
        """Create a Checkout Session selling a plan (subscription or payment mode)."""
        body = cast("SessionCreateParams", plan_session_body(params))
        send = functools.partial(self._client.v1.checkout.sessions.create, body)
        action = f"create plan checkout session for purchase {params.purchase_id}"
        session: GatewayCheckoutSession = self._post(
            GatewayCheckoutSession, action, idempotency_key, send
        )
        return session

    def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool, idempotency_key: str
    ) -> GatewaySubscription:
        """Cancel now (``DELETE``) or at the end of the current period."""
        if at_period_end:
            params = cast("SubscriptionUpdateParams", {"cancel_at_period_end": True})
            send = functools.partial(self._client.v1.subscriptions.update, subscription_id, params)
            action = f"cancel subscription {subscription_id} at period end"
        else:
            # Stripe ignores idempotency keys on DELETE (it is idempotent by definition: a
            # second cancel is refused, never performed twice); the SDK sends the key anyway.
            send = functools.partial(self._client.v1.subscriptions.cancel, subscription_id, None)
            action = f"cancel subscription {subscription_id}"
        return self._on_subscription(subscription_id, action, idempotency_key, send)

    def change_subscription_plan(
        self,
        subscription_id: str,
        *,
        item_id: str,
        params: PlanCheckoutParams,
        idempotency_key: str,
    ) -> GatewaySubscription:
        """Put the subscription's one item on ``params``' price from the next period on.

        An inline price needs a Product on a subscription update (``price_data.product``, not
        ``product_data``), so without ``stripe_price_id`` the new Price is created first
        (``POST /v1/prices`` with ``product_data``, under ``idempotency_key + ":price"``).
        """
        check_plan_params(params)
        if params.kind != "subscription":
            raise InvalidRequestError("a subscription can only change to a subscription plan")
        price_id = params.stripe_price_id or self._create_price(params, idempotency_key)
        body: dict[str, Any] = {
            "items": [{"id": item_id, "price": price_id}],
            "proration_behavior": "none",
            "metadata": change_metadata(params),
        }
        # The new plan's commission and mentor, so later invoices split as it says.
        if params.application_fee_percent is not None:
            body["application_fee_percent"] = params.application_fee_percent
        if params.destination is not None:
            body["transfer_data"] = {"destination": params.destination}
        update = cast("SubscriptionUpdateParams", body)
        send = functools.partial(self._client.v1.subscriptions.update, subscription_id, update)
        action = f"change plan of subscription {subscription_id} to {params.plan_id}"
        return self._on_subscription(subscription_id, action, idempotency_key, send)

    def create_billing_portal_session(
        self, customer_id: str, *, return_url: str, idempotency_key: str
    ) -> str:
        """A billing-portal session for the customer; returns its URL."""
        body = cast(
            "PortalSessionCreateParams", {"customer": customer_id, "return_url": return_url}
        )
        send = functools.partial(self._client.v1.billing_portal.sessions.create, body)
        action = f"create billing portal session for {customer_id}"
        portal: GatewayObject = self._post(GatewayObject, action, idempotency_key, send)
        url = portal.raw.get("url")
        if not isinstance(url, str) or not url:
            raise GatewayError(f"{action}: Stripe's answer has no url")
        return url

    def _create_price(self, params: PlanCheckoutParams, idempotency_key: str) -> str:
        amount = params.amount
        body = {
            "currency": amount.currency.lower(),
            "unit_amount": amount.amount,
            "recurring": _recurring(params),
            "product_data": {"name": params.line_item_name},
            "metadata": {"plan_id": params.plan_id},
        }
        send = functools.partial(self._client.v1.prices.create, cast("PriceCreateParams", body))
        action = f"create price for plan {params.plan_id}"
        price: GatewayObject = self._post(GatewayObject, action, idempotency_key + ":price", send)
        return price.id

    def _on_subscription(
        self,
        subscription_id: str,
        action: str,
        idempotency_key: str,
        send: Callable[[stripe.RequestOptions], Any],
    ) -> GatewaySubscription:
        """A call changing a subscription; Stripe's refusal of a canceled one says so."""
        try:
            sub: GatewaySubscription = self._post(
                GatewaySubscription, action, idempotency_key, send
            )
        except GatewayInvalidRequestError as exc:
            # Only a refusal of the object's state or existence; a 409 is a key conflict.
            if exc.details.get("stripe_status") not in (400, 404):
                raise
            if self._status_of(subscription_id) == "canceled":
                raise subscription_canceled_error(subscription_id, action, exc.details) from exc
            raise
        return sub

    def _status_of(self, subscription_id: str) -> str | None:
        try:
            return self.retrieve_subscription(subscription_id).status
        except GatewayError:
            return None
