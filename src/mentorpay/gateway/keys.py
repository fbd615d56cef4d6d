"""Idempotency keys: deterministic, built from the booking, refund or payout request.

Every POST carries one in the request *options* (the ``Idempotency-Key`` header), so a retry
after a timeout, a crash or a double click replays the original request instead of acting twice.
"""

from __future__ import annotations

import hashlib
from typing import Final

from mentorpay.errors import InvalidRequestError
from mentorpay.money import Money

__all__ = [
    "account_idempotency_key",
    "account_link_idempotency_key",
    "checkout_expire_idempotency_key",
    "checkout_idempotency_key",
    "login_link_idempotency_key",
    "payout_reversal_idempotency_key",
    "payout_transfer_idempotency_key",
    "plan_cancel_idempotency_key",
    "plan_change_idempotency_key",
    "plan_checkout_idempotency_key",
    "portal_idempotency_key",
    "refund_idempotency_key",
    "review_refund_idempotency_key",
]

# Stripe accepts idempotency keys up to 255 characters; past this length a key is hashed so a
# long host booking id can never push it over (the gateway's namespace prefix needs room too).
_MAX_KEY_LENGTH: Final = 200


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


def review_refund_idempotency_key(payment_intent_id: str) -> str:
    """The one key under which a payment parked for review is ever refunded in full."""
    return _key("review", payment_intent_id, "refund")


def payout_transfer_idempotency_key(payout_request_id: int) -> str:
    """Key for the Stripe transfer that pays one payout request."""
    return _key("payout", str(payout_request_id), "transfer")


def payout_reversal_idempotency_key(payout_request_id: int) -> str:
    """Key for reversing the transfer of one payout request."""
    return _key("payout", str(payout_request_id), "reversal")


def account_idempotency_key(mentor_id: str) -> str:
    """Key for creating the mentor's one connected account: the same for every call, so a
    retry after a lost answer, or a concurrent onboarding, gets the account created first."""
    mentor = mentor_id if len(mentor_id) <= 100 else "sha256-" + _digest(mentor_id)
    return _key("account", mentor)


def account_link_idempotency_key(account_id: str, issued_at: int) -> str:
    """Key for one onboarding link of ``account_id``, issued at ``issued_at`` (epoch seconds).

    Links are single-use and expire within minutes, so each onboarding asks for a fresh one;
    the second makes a double click (and the SDK's own retries) replay one link, not make two.
    """
    return _key("account-link", account_id, str(issued_at))


def login_link_idempotency_key(account_id: str, issued_at: int) -> str:
    """Key for one Express dashboard login link of ``account_id`` (see the account link's)."""
    return _key("login-link", account_id, str(issued_at))


def plan_checkout_idempotency_key(purchase_id: str, attempt: int) -> str:
    """Key for the ``attempt``-th Checkout Session of one plan purchase (mentorpay's id)."""
    return _key("plan-checkout", purchase_id, str(attempt))


def plan_cancel_idempotency_key(subscription_id: str, *, at_period_end: bool) -> str:
    """Key for cancelling a subscription, now or at period end (each asked once)."""
    return _key("plan-cancel", subscription_id, "period-end" if at_period_end else "now")


def plan_change_idempotency_key(subscription_id: str, plan_id: str, change: int) -> str:
    """Key for the ``change``-th plan change of a subscription, to ``plan_id``."""
    plan = plan_id if len(plan_id) <= 100 else "sha256-" + _digest(plan_id)
    return _key("plan-change", subscription_id, str(change), plan)


def portal_idempotency_key(customer_id: str, issued_at: int) -> str:
    """Key for one billing-portal session of a customer, issued at ``issued_at`` (epoch
    seconds): a double click replays one session instead of opening two."""
    return _key("portal", customer_id, str(issued_at))
