"""The Billing part of :class:`~mentorpay.testing.FakeGateway`: plan Checkout Sessions,
subscriptions and billing-portal sessions in memory.

Subscriptions are in Stripe's newer shape (the SDK's pinned version: the current period on
the item). Nothing creates one by itself: :meth:`FakeBillingCalls.add_subscription` registers
one (a test, or the offline checkout completing a subscription-mode session), and
``cancel_subscription`` / ``change_subscription_plan`` change it as Stripe does. Stripe's
refusals are kept: an unknown id is ``resource_missing``; a canceled subscription can be
neither canceled again nor changed (the error carries ``subscription_status="canceled"``,
as :class:`~mentorpay.gateway.StripeGateway` raises it).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from mentorpay.gateway._plans import (
    SUBSCRIPTIONS,
    change_metadata,
    check_plan_params,
    subscription_canceled_error,
)
from mentorpay.gateway.protocol import PlanCheckoutParams
from mentorpay.money import Money
from mentorpay.stripe_billing import GatewaySubscription
from mentorpay.stripe_objects import GatewayCheckoutSession
from mentorpay.testing._fake_stripe import (
    SESSION,
    FakeStripe,
    _check_checkout,
    _invalid,
    _missing,
    _new_id,
)

__all__ = ["PORTAL_URL_PREFIX", "FakeBillingCalls"]

PORTAL_URL_PREFIX = "https://billing.stripe.com/p/session/"

Interval = Literal["day", "week", "month", "year"]
_INTERVAL_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}


def _check_plan_checkout(params: PlanCheckoutParams, now: datetime) -> None:
    """Refuse what Stripe refuses (as for booking sessions, plus the plan's own rules)."""
    check_plan_params(params)
    _check_checkout(params, now)
    if params.customer_id is not None and not params.customer_id.startswith("cus_"):
        raise _missing("customer", params.customer_id)


def _plan_session(
    params: PlanCheckoutParams, url: str, created: int, livemode: bool
) -> dict[str, Any]:
    return {
        "mode": "subscription" if params.kind == "subscription" else "payment",
        "url": url,
        "status": "open",
        "payment_status": "unpaid",
        "payment_intent": None,
        "subscription": None,
        "customer": params.customer_id,
        "amount_total": params.amount.amount,
        "currency": params.amount.currency.lower(),
        "client_reference_id": params.mentee_id,
        "success_url": params.success_url,
        "cancel_url": params.cancel_url,
        "expires_at": int(params.expires_at.timestamp()),
        "created": created,
        "metadata": dict(params.metadata),
        "livemode": livemode,
    }


def _price(
    amount: Money, interval: str, interval_count: int, price_id: str | None
) -> dict[str, Any]:
    return {
        "id": price_id or _new_id("price"),
        "object": "price",
        "unit_amount": amount.amount,
        "currency": amount.currency.lower(),
        "recurring": {"interval": interval, "interval_count": interval_count},
        "product": _new_id("prod"),
    }


def _plan_price(params: PlanCheckoutParams) -> dict[str, Any]:
    return _price(params.amount, params.interval, params.interval_count, params.stripe_price_id)


def _open_subscription(
    stripe: FakeStripe, subscription_id: str, action: str, *, delete: bool = False
) -> dict[str, Any]:
    sub = stripe.stored("subscription", subscription_id)
    if sub["status"] == "canceled":
        # Stripe answers a canceled subscription's DELETE with a 404, its update with a 400.
        status = 404 if delete else 400
        code = "resource_missing" if status == 404 else None
        details = {"action": action, "stripe_code": code, "stripe_status": status}
        raise subscription_canceled_error(subscription_id, action, details)
    return sub


class FakeBillingCalls:
    """Plan sessions, subscriptions and portal sessions for the fake (mixed into
    ``FakeGateway``)."""

    _stripe: FakeStripe
    _lock: threading.RLock
    _call: Callable[..., Any]
    _retrieve: Callable[..., Any]
    checkout_url_template: str

    # -- test hooks -----------------------------------------------------------------------------

    def add_subscription(
        self,
        subscription_id: str | None = None,
        *,
        customer_id: str,
        amount: Money,
        metadata: Mapping[str, str] | None = None,
        item_id: str | None = None,
        interval: Interval = "month",
        interval_count: int = 1,
        price_id: str | None = None,
        current_period_start: datetime | None = None,
        status: str = "active",
    ) -> dict[str, Any]:
        """Register a subscription as Stripe keeps it (one item, the period on the item);
        returns the stored object. ``current_period_start`` defaults to now."""
        with self._lock:
            start = current_period_start or datetime.fromtimestamp(self._stripe.now(), UTC)
            end = start + timedelta(days=_INTERVAL_DAYS[interval] * interval_count)
            sub_id = subscription_id or _new_id("sub")
            item = {
                "id": item_id or _new_id("si"),
                "object": "subscription_item",
                "price": _price(amount, interval, interval_count, price_id),
                "quantity": 1,
                "current_period_start": int(start.timestamp()),
                "current_period_end": int(end.timestamp()),
            }
            fields = {
                "status": status,
                "customer": customer_id,
                "cancel_at_period_end": False,
                "cancel_at": None,
                "canceled_at": None,
                "ended_at": None,
                "created": self._stripe.now(),
                "livemode": self._stripe.livemode,
                "metadata": dict(metadata or {}),
                "application_fee_percent": None,
                "transfer_data": None,
                "items": {"object": "list", "data": [item]},
            }
            return self._stripe.add("subscription", sub_id, fields)

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        """The Subscription object as Stripe would return it now."""
        with self._lock:
            return copy.deepcopy(self._stripe.stored("subscription", subscription_id))

    @property
    def subscriptions(self) -> list[dict[str, Any]]:
        """Every subscription registered, oldest first."""
        with self._lock:
            return self._stripe.all("subscription")

    def retrieve_subscription(self, subscription_id: str) -> GatewaySubscription:
        """One Subscription, as Stripe has it now (canceled ones included)."""
        sub: GatewaySubscription = self._retrieve(
            SUBSCRIPTIONS, subscription_id, "retrieve_subscription"
        )
        return sub

    def plan_checkout(self, session_id: str) -> PlanCheckoutParams | None:
        """What a plan Checkout Session was created with (None: not a plan session)."""
        with self._lock:
            return self._stripe.plan_params.get(session_id)

    def complete_subscription_session(
        self, session_id: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The customer pays a subscription-mode session: a customer (unless the session named
        one) and an active subscription on the plan's price appear, carrying the metadata
        mentorpay set; returns the completed session and the subscription."""
        with self._lock:
            session = self._stripe.stored(SESSION, session_id)
            params = self._stripe.plan_params.get(session_id)
            if params is None or params.kind != "subscription" or session["status"] != "open":
                raise _invalid(f"Checkout Session {session_id} is not an open subscription sale")
            customer = session.get("customer") or _new_id("cus")
            sub = self.add_subscription(
                customer_id=customer,
                amount=params.amount,
                metadata=params.metadata,
                interval=params.interval,
                interval_count=params.interval_count,
                price_id=params.stripe_price_id,
            )
            session.update(
                status="complete", payment_status="paid", subscription=sub["id"], customer=customer
            )
            return copy.deepcopy(session), copy.deepcopy(sub)

    def roll_subscription(self, subscription_id: str, **changes: Any) -> dict[str, Any]:
        """Start the subscription's next period (Stripe's renewal), with ``changes`` to the
        subscription's fields (a ``status``); returns it."""
        with self._lock:
            sub = self._stripe.stored("subscription", subscription_id)
            item = sub["items"]["data"][0]
            recurring = item["price"]["recurring"]
            days = _INTERVAL_DAYS[recurring["interval"]] * recurring["interval_count"]
            start = item["current_period_end"]
            item.update(current_period_start=start, current_period_end=start + days * 86_400)
            sub.update(changes)
            return copy.deepcopy(sub)

    def end_subscription(self, subscription_id: str) -> dict[str, Any]:
        """A subscription set to cancel at period end reaches it: ``canceled``."""
        with self._lock:
            sub = self._stripe.stored("subscription", subscription_id)
            now = self._stripe.now()
            sub.update(status="canceled", ended_at=now, canceled_at=sub["canceled_at"] or now)
            return copy.deepcopy(sub)

    def set_subscription_status(self, subscription_id: str, status: str) -> dict[str, Any]:
        """Stripe moved the subscription to ``status`` (past due after a failed renewal...)."""
        with self._lock:
            sub = self._stripe.stored("subscription", subscription_id)
            sub["status"] = status
            return copy.deepcopy(sub)

    def pay_invoice_intent(self, amount: Money) -> dict[str, Any]:
        """The succeeded PaymentIntent (and charge, refundable) paying one invoice: no metadata,
        as Stripe makes an invoice's payment intent."""
        with self._lock:
            created = self._stripe.now()
            return self._stripe.add_payment_intent(
                {
                    "id": _new_id("pi"),
                    "object": "payment_intent",
                    "amount": amount.amount,
                    "amount_received": amount.amount,
                    "currency": amount.currency.lower(),
                    "status": "succeeded",
                    "metadata": {},
                    "description": "Subscription update",
                    "created": created,
                    "livemode": self._stripe.livemode,
                }
            )

    # -- PaymentGateway -------------------------------------------------------------------------

    def create_plan_checkout_session(
        self, params: PlanCheckoutParams, *, idempotency_key: str
    ) -> GatewayCheckoutSession:
        """An open plan session (subscription or payment mode), validated like Stripe."""

        def act() -> GatewayCheckoutSession:
            now = self._stripe.now()
            _check_plan_checkout(params, datetime.fromtimestamp(now, UTC))
            session_id = _new_id("cs")
            url = self.checkout_url_template.format(session_id=session_id)
            self._stripe.plan_params[session_id] = params
            session = _plan_session(params, url, now, self._stripe.livemode)
            return GatewayCheckoutSession.from_dict(self._stripe.add(SESSION, session_id, session))

        args = {"params": params}
        session: GatewayCheckoutSession = self._call(
            "create_plan_checkout_session", args, idempotency_key, act
        )
        return session

    def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool, idempotency_key: str
    ) -> GatewaySubscription:
        """Cancel now (``canceled``, ``canceled_at`` and ``ended_at`` set) or at period end
        (``cancel_at_period_end`` and ``cancel_at``); a canceled one is refused."""

        def act() -> GatewaySubscription:
            action = f"cancel subscription {subscription_id}"
            if at_period_end:
                action += " at period end"
            delete = not at_period_end
            sub = _open_subscription(self._stripe, subscription_id, action, delete=delete)
            now = self._stripe.now()
            if at_period_end:
                period_end = sub["items"]["data"][0]["current_period_end"]
                sub.update(cancel_at_period_end=True, cancel_at=period_end, canceled_at=now)
            else:
                sub.update(status="canceled", canceled_at=now, ended_at=now)
            return GatewaySubscription.from_dict(copy.deepcopy(sub))

        args = {"subscription_id": subscription_id, "at_period_end": at_period_end}
        sub: GatewaySubscription = self._call("cancel_subscription", args, idempotency_key, act)
        return sub

    def change_subscription_plan(
        self,
        subscription_id: str,
        *,
        item_id: str,
        params: PlanCheckoutParams,
        idempotency_key: str,
    ) -> GatewaySubscription:
        """Put the item on the new plan's price and the subscription on its metadata (and
        commission), without proration; a canceled subscription is refused."""

        def act() -> GatewaySubscription:
            check_plan_params(params)
            action = f"change plan of subscription {subscription_id} to {params.plan_id}"
            sub = _open_subscription(self._stripe, subscription_id, action)
            items = sub["items"]["data"]
            item = next((i for i in items if i["id"] == item_id), None)
            if item is None:
                raise _missing("subscription_item", item_id)
            if params.kind != "subscription":
                raise _invalid("a subscription item needs a recurring price")
            item["price"] = _plan_price(params)
            # Stripe merges metadata; an empty value unsets a key.
            merged = {**sub["metadata"], **change_metadata(params)}
            sub["metadata"] = {k: v for k, v in merged.items() if v != ""}
            if params.application_fee_percent is not None:
                # A percentage, not an amount: Stripe's API returns it as a JSON number.
                sub["application_fee_percent"] = float(params.application_fee_percent)
            if params.destination is not None:
                sub["transfer_data"] = {"destination": params.destination}
            return GatewaySubscription.from_dict(copy.deepcopy(sub))

        args = {"subscription_id": subscription_id, "item_id": item_id, "params": params}
        sub: GatewaySubscription = self._call(
            "change_subscription_plan", args, idempotency_key, act
        )
        return sub

    def create_billing_portal_session(
        self, customer_id: str, *, return_url: str, idempotency_key: str
    ) -> str:
        """A fake portal URL (``https://billing.stripe.com/p/session/test_...``)."""

        def act() -> str:
            if not customer_id.startswith("cus_"):
                raise _missing("customer", customer_id)
            return PORTAL_URL_PREFIX + _new_id("bps").removeprefix("bps_")

        args = {"customer_id": customer_id, "return_url": return_url}
        url: str = self._call("create_billing_portal_session", args, idempotency_key, act)
        return url
