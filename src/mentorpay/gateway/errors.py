"""Stripe's exceptions as mentorpay's, saying what happened and whether a retry can help.

Stripe's exceptions never escape the gateway::

    no answer, 5xx, unreadable 2xx -> GatewayConnectionError (outcome unknown, retry is safe)
    429 or stripe.RateLimitError   -> GatewayRateLimitError      (retry after a backoff)
    409 or stripe.IdempotencyError -> IdempotencyConflictError   (key reused with other params)
    stripe.CardError               -> CardError                  (402, retry will not help)
    stripe.InvalidRequestError     -> GatewayInvalidRequestError (fix the call; includes 404s)
    AuthenticationError, PermissionError -> GatewayError         (check the key)
    any other 4xx, whatever its body     -> GatewayInvalidRequestError (a refusal)

The HTTP status decides first: a proxy's HTML 403 or an emulator's text 404 is a refusal with a
known outcome, never a lost answer. :func:`outcome_unknown` tells a caller whether Stripe may
have acted despite the error (only then must local state keep the attempt, so the retry replays
the same request).
"""

from __future__ import annotations

from typing import Any

import stripe

from mentorpay.errors import (
    CardError,
    GatewayConnectionError,
    GatewayError,
    GatewayInvalidRequestError,
    GatewayRateLimitError,
    IdempotencyConflictError,
)

__all__ = ["is_missing_resource", "outcome_unknown"]


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
