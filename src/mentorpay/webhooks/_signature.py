"""The Stripe-Signature check, and why it failed when it does (logged, never a secret).

``stripe.WebhookSignature.verify_header`` against each configured secret in turn, with the
tolerance passed explicitly. ``construct_event`` is not used: it builds SDK objects (hundreds of
microseconds) that mentorpay would throw away.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import NoReturn

import stripe

from mentorpay.config import MentorpayConfig
from mentorpay.errors import WebhookSignatureError

__all__ = ["verify"]

logger = logging.getLogger("mentorpay.webhooks")


def _verifies(payload: str, header: str, secret: str, tolerance: int | None) -> bool:
    """Whether ``header`` signs ``payload`` with ``secret``; any malformed header is False.

    The SDK raises TypeError from ``hmac.compare_digest`` on non-ASCII signatures and may raise
    ValueError on odd timestamps: to an unauthenticated caller these are all just "not signed".
    """
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=tolerance)
    except (stripe.SignatureVerificationError, TypeError, ValueError, UnicodeError):
        return False
    return True


def verify(config: MentorpayConfig, payload: str, header: str | None) -> None:
    """Return if a configured secret signed ``payload``; else raise WebhookSignatureError (400)."""
    if header is None or not header.strip():
        _reject(config, "missing_header", "no Stripe-Signature header", None)
    assert header is not None
    tolerance = config.webhook_tolerance
    for secret in config.webhook_secrets:
        if _verifies(payload, header, secret.get_secret_value(), tolerance):
            return
    _diagnose(config, payload, header)


def _diagnose(config: MentorpayConfig, payload: str, header: str) -> NoReturn:
    """Every secret failed: work out why, for the log. Never logs a secret or signature."""
    timestamp: int | None = None
    has_v1 = False
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and timestamp is None:
            with contextlib.suppress(ValueError):
                timestamp = int(value)
        elif key == "v1" and value:
            has_v1 = True
    if timestamp is None:
        _reject(config, "malformed_header", "the header has no t=<timestamp>", None)
    if not has_v1:
        _reject(config, "no_v1_signature", "the header carries no v1 signature", timestamp)
    assert timestamp is not None
    if timestamp < time.time() - config.webhook_tolerance:
        # Stripe's SDK checks the signature before the timestamp: a stale delivery signed
        # with a known secret verifies without the tolerance. That tells clock skew (or a
        # replayed request) apart from a wrong secret.
        for secret in config.webhook_secrets:
            if not _verifies(payload, header, secret.get_secret_value(), None):
                continue
            _reject(
                config,
                "timestamp_outside_tolerance",
                "the signature is valid but its timestamp is older than the tolerance "
                "(clock skew, or a replayed request)",
                timestamp,
            )
    _reject(
        config,
        "no_secret_matched",
        "no configured secret produced this signature (wrong whsec_ secret for this "
        "endpoint, or the body was modified or re-serialized before verification)",
        timestamp,
    )


def _reject(config: MentorpayConfig, reason: str, detail: str, timestamp: int | None) -> NoReturn:
    age = None if timestamp is None else int(time.time()) - timestamp
    logger.warning(
        "webhook signature rejected: %s (%s); timestamp age %s s, tolerance %s s, "
        "%d secret(s) tried",
        reason,
        detail,
        age,
        config.webhook_tolerance,
        len(config.webhook_secrets),
    )
    raise WebhookSignatureError(f"webhook signature verification failed: {detail}", reason=reason)
