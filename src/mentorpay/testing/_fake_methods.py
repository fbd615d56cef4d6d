"""Stripe's test scenarios in the in-memory Stripe: a declined card, a bank debit that settles
days later (or fails), and an inquiry. Each function changes :class:`FakeStripe`'s objects as
Stripe does and returns copies for the webhook events Stripe would send.

Shapes follow the SDK's typed classes (``stripe.PaymentIntent.LastPaymentError``,
``stripe.Charge.Outcome``, ``stripe.Dispute``); values follow Stripe's test cards and test bank
accounts: card 4000 0000 0000 0002 is ``card_declined`` / ``generic_decline``; a bank debit
(SEPA for EUR, Bacs for GBP, ACH for USD) completes Checkout with ``payment_status: unpaid`` and
a ``processing`` PaymentIntent, and settles or fails days later.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any, Final

from mentorpay.testing._fake_stripe import SESSION, FakeStripe, _invalid

__all__ = [
    "BANK_DEBIT_METHODS",
    "complete_delayed",
    "decline",
    "settle_delayed",
]

#: The bank debit Stripe offers Checkout for each currency (others use SEPA's shape).
BANK_DEBIT_METHODS: Final = {"eur": "sepa_debit", "gbp": "bacs_debit", "usd": "us_bank_account"}

_DECLINE: Final = {
    "code": "card_declined",
    "decline_code": "generic_decline",
    "doc_url": "https://stripe.com/docs/error-codes/card-declined",
    "message": "Your card was declined.",
    "type": "card_error",
}
_DEBIT_FAILED: Final = {
    "code": "insufficient_funds",
    "doc_url": "https://stripe.com/docs/error-codes/insufficient-funds",
    "message": "The customer's account has insufficient funds to cover this payment.",
    "type": "invalid_request_error",
}


def _new_id(prefix: str) -> str:
    return f"{prefix}_test_{uuid.uuid4().hex[:24]}"


def _open_session(stripe: FakeStripe, session_id: str) -> dict[str, Any]:
    session = stripe.stored(SESSION, session_id)
    if session["status"] != "open":
        raise _invalid(
            f"Checkout Session {session_id} is {session['status']}, not open",
            "checkout_session_not_open",
        )
    return session


def _attempt(
    stripe: FakeStripe, session_id: str, *, method: str, status: str, charge_status: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A PaymentIntent and its Charge for one payment attempt on the session (stored)."""
    params = stripe.session_params(session_id)
    created, livemode = stripe.now(), stripe.livemode
    pi_id, charge_id = _new_id("pi"), _new_id("ch")
    fee, destination = params.application_fee, params.destination
    currency, amount = params.amount.currency.lower(), params.amount.amount
    pi = stripe.add(
        "payment_intent",
        pi_id,
        {
            "amount": amount,
            "amount_received": 0,
            "currency": currency,
            "status": status,
            "latest_charge": charge_id,
            "payment_method_types": [method],
            "last_payment_error": None,
            "metadata": dict(params.metadata),
            "created": created,
            "livemode": livemode,
            "application_fee_amount": fee.amount if fee else None,
            "transfer_data": {"destination": destination} if destination else None,
        },
    )
    charge = stripe.add(
        "charge",
        charge_id,
        {
            "amount": amount,
            "amount_captured": 0,
            "amount_refunded": 0,
            "refunded": False,
            "currency": currency,
            "status": charge_status,
            "paid": False,
            "payment_intent": pi_id,
            "metadata": dict(params.metadata),
            "created": created,
            "livemode": livemode,
            "failure_code": None,
            "failure_message": None,
        },
    )
    return pi, charge


def _fail(stripe: FakeStripe, pi_id: str, error: dict[str, Any]) -> dict[str, Any]:
    """The attempt failed: the charge says why, the intent wants another payment method."""
    pi = stripe.stored("payment_intent", pi_id)
    charge = stripe.stored("charge", pi["latest_charge"])
    charge.update(status="failed", failure_code=error["code"], failure_message=error["message"])
    if pi["payment_method_types"] == ["card"]:
        charge["outcome"] = {
            "network_status": "declined_by_network",
            "reason": error.get("decline_code"),
            "risk_level": "normal",
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }
    pi.update(
        status="requires_payment_method",
        last_payment_error={
            **error,
            "charge": charge["id"],
            "payment_method_type": pi["payment_method_types"][0],
        },
    )
    return copy.deepcopy(pi)


def decline(stripe: FakeStripe, session_id: str) -> dict[str, Any]:
    """The customer's card is declined: the session stays open (they may try another card);
    returns the failed PaymentIntent (``payment_intent.payment_failed``)."""
    _open_session(stripe, session_id)
    pi, _ = _attempt(
        stripe, session_id, method="card", status="requires_payment_method", charge_status="failed"
    )
    return _fail(stripe, pi["id"], dict(_DECLINE))


def complete_delayed(stripe: FakeStripe, session_id: str) -> dict[str, Any]:
    """The customer authorizes a bank debit: the session completes unpaid and its PaymentIntent
    is ``processing`` until the bank answers; returns the session."""
    session = _open_session(stripe, session_id)
    method = BANK_DEBIT_METHODS.get(session["currency"], "sepa_debit")
    pi, _ = _attempt(
        stripe, session_id, method=method, status="processing", charge_status="pending"
    )
    session.update(status="complete", payment_status="unpaid", payment_intent=pi["id"])
    return copy.deepcopy(session)


def settle_delayed(
    stripe: FakeStripe, session_id: str, *, succeeded: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The bank answers a pending debit: ``(session, payment intent)`` as they are now."""
    session = stripe.stored(SESSION, session_id)
    pi = stripe.stored("payment_intent", str(session["payment_intent"]))
    if pi["status"] != "processing":
        raise _invalid(f"PaymentIntent {pi['id']} is {pi['status']}, not processing")
    if not succeeded:
        return copy.deepcopy(session), _fail(stripe, pi["id"], dict(_DEBIT_FAILED))
    charge = stripe.stored("charge", pi["latest_charge"])
    charge.update(status="succeeded", paid=True, amount_captured=charge["amount"])
    pi.update(status="succeeded", amount_received=pi["amount"])
    session["payment_status"] = "paid"
    return copy.deepcopy(session), copy.deepcopy(pi)
