"""Stripe-shaped events for tests: sign them the way Stripe does, build the objects they carry.

The builders produce the fields Stripe sends for the API version the installed stripe SDK pins
(:data:`STRIPE_API_VERSION`); mentorpay's own tests check every field name against the SDK's
resource classes, so the shapes cannot drift into invented ones. Pass ``**extra`` to add or
override any field.

Example::

    event = make_event("payment_intent.succeeded", payment_intent(amount=5000, currency="gbp",
                       metadata=booking_metadata("42", mentor_id="3", mentee_id="7")))
    body = encode_event(event)
    result = mp.webhooks.process(body, sign_payload(body, "whsec_test"))
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import string
import time
from collections.abc import Mapping
from typing import Any

from stripe._api_version import _ApiVersion

__all__ = [
    "STRIPE_API_VERSION",
    "booking_metadata",
    "charge",
    "checkout_session",
    "dispute",
    "encode_event",
    "make_event",
    "payment_intent",
    "refund",
    "sign_payload",
    "stripe_id",
    "transfer",
]

#: The API version the installed stripe SDK pins; events are shaped for it.
STRIPE_API_VERSION: str = _ApiVersion.CURRENT

_ALPHABET = string.ascii_letters + string.digits


def stripe_id(prefix: str) -> str:
    """A random id in Stripe's style, e.g. ``stripe_id("pi")`` -> ``pi_3Qx...`` (24 chars)."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def sign_payload(raw: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send for ``raw`` signed with ``secret``.

    Stripe's scheme: ``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the secret>``.
    ``timestamp`` defaults to now; pass an old one to test the tolerance.
    """
    payload = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode("utf-8"), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The request body Stripe would send for ``event`` (compact UTF-8 JSON)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def make_event(
    type: str,
    obj: Mapping[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
    api_version: str = STRIPE_API_VERSION,
    account: str | None = None,
    livemode: bool = False,
    previous_attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A Stripe event of ``type`` about ``obj``; ``account`` makes it a Connect event."""
    data: dict[str, Any] = {"object": dict(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = dict(previous_attributes)
    event: dict[str, Any] = {
        "id": event_id or stripe_id("evt"),
        "object": "event",
        "api_version": api_version,
        "created": int(time.time()) if created is None else created,
        "data": data,
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }
    if account is not None:
        event["account"] = account
    return event


def booking_metadata(booking_id: str, *, mentor_id: str, mentee_id: str) -> dict[str, str]:
    """The metadata mentorpay's checkout puts on the session and its payment intent."""
    return {"booking_id": booking_id, "mentor_id": mentor_id, "mentee_id": mentee_id}


def _now() -> int:
    return int(time.time())


def checkout_session(
    *,
    id: str | None = None,
    payment_intent: str | None = None,
    amount_total: int = 5000,
    currency: str = "gbp",
    payment_status: str = "paid",
    status: str = "complete",
    mode: str = "payment",
    metadata: Mapping[str, str] | None = None,
    client_reference_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``checkout.session`` object (Checkout in payment mode)."""
    created = _now()
    obj: dict[str, Any] = {
        "id": id or stripe_id("cs_test"),
        "object": "checkout.session",
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "cancel_url": "https://example.com/cancel",
        "client_reference_id": client_reference_id,
        "created": created,
        "currency": currency,
        "customer": None,
        "customer_details": None,
        "customer_email": None,
        "expires_at": created + 3600,
        "livemode": False,
        "locale": None,
        "metadata": dict(metadata or {}),
        "mode": mode,
        "payment_intent": payment_intent,
        "payment_method_types": ["card"],
        "payment_status": payment_status,
        "status": status,
        "success_url": "https://example.com/success",
        "url": None,
    }
    obj.update(extra)
    return obj


def payment_intent(
    *,
    id: str | None = None,
    amount: int = 5000,
    currency: str = "gbp",
    status: str = "succeeded",
    metadata: Mapping[str, str] | None = None,
    latest_charge: str | None = None,
    amount_received: int | None = None,
    last_payment_error: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``payment_intent`` object; ``amount_received`` defaults to the amount when succeeded."""
    if amount_received is None:
        amount_received = amount if status == "succeeded" else 0
    obj: dict[str, Any] = {
        "id": id or stripe_id("pi"),
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": amount_received,
        "application_fee_amount": None,
        "capture_method": "automatic_async",
        "client_secret": None,
        "confirmation_method": "automatic",
        "created": _now(),
        "currency": currency,
        "customer": None,
        "description": None,
        "last_payment_error": dict(last_payment_error) if last_payment_error else None,
        "latest_charge": latest_charge,
        "livemode": False,
        "metadata": dict(metadata or {}),
        "payment_method": stripe_id("pm"),
        "payment_method_types": ["card"],
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }
    obj.update(extra)
    return obj


def charge(
    *,
    id: str | None = None,
    payment_intent: str | None = None,
    amount: int = 5000,
    amount_refunded: int = 0,
    currency: str = "gbp",
    metadata: Mapping[str, str] | None = None,
    disputed: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A ``charge`` object; ``refunded`` is true once ``amount_refunded`` reaches the amount."""
    obj: dict[str, Any] = {
        "id": id or stripe_id("ch"),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "balance_transaction": stripe_id("txn"),
        "captured": True,
        "created": _now(),
        "currency": currency,
        "customer": None,
        "description": None,
        "disputed": disputed,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": dict(metadata or {}),
        "paid": True,
        "payment_intent": payment_intent,
        "payment_method": stripe_id("pm"),
        "refunded": amount_refunded >= amount,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }
    obj.update(extra)
    return obj


def dispute(
    *,
    id: str | None = None,
    charge: str | None = None,
    payment_intent: str | None = None,
    amount: int = 5000,
    currency: str = "gbp",
    status: str = "needs_response",
    reason: str = "fraudulent",
    **extra: Any,
) -> dict[str, Any]:
    """A ``dispute`` object; closed disputes have status ``won``, ``lost`` or ``warning_closed``."""
    obj: dict[str, Any] = {
        "id": id or stripe_id("dp"),
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": charge or stripe_id("ch"),
        "created": _now(),
        "currency": currency,
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": payment_intent,
        "reason": reason,
        "status": status,
    }
    obj.update(extra)
    return obj


def refund(
    *,
    id: str | None = None,
    charge: str | None = None,
    payment_intent: str | None = None,
    amount: int = 1000,
    currency: str = "gbp",
    status: str = "succeeded",
    failure_reason: str | None = None,
    reason: str | None = None,
    metadata: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``refund`` object, shaped like Stripe's own fixture; ``failure_reason`` when failed.

    Stripe's fixture leaves ``payment_intent`` null (the refund names its charge), so
    handlers must find the payment by the charge too.
    """
    obj: dict[str, Any] = {
        "id": id or stripe_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": stripe_id("txn"),
        "charge": charge or stripe_id("ch"),
        "created": _now(),
        "currency": currency,
        "metadata": dict(metadata or {}),
        "payment_intent": payment_intent,
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }
    if status == "failed" or failure_reason is not None:
        obj["failure_reason"] = failure_reason or "unknown"
        obj["failure_balance_transaction"] = stripe_id("txn")
    obj.update(extra)
    return obj


def transfer(
    *,
    id: str | None = None,
    amount: int = 4500,
    currency: str = "gbp",
    destination: str | None = None,
    metadata: Mapping[str, str] | None = None,
    amount_reversed: int = 0,
    transfer_group: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``transfer`` object (platform -> connected account), for payout handlers."""
    obj: dict[str, Any] = {
        "id": id or stripe_id("tr"),
        "object": "transfer",
        "amount": amount,
        "amount_reversed": amount_reversed,
        "balance_transaction": stripe_id("txn"),
        "created": _now(),
        "currency": currency,
        "description": None,
        "destination": destination or stripe_id("acct"),
        "destination_payment": stripe_id("py"),
        "livemode": False,
        "metadata": dict(metadata or {}),
        "reversed": amount_reversed >= amount > 0,
        "source_transaction": None,
        "source_type": "card",
        "transfer_group": transfer_group,
    }
    obj.update(extra)
    return obj
