"""The one exception tree of mentorpay.

Every error a caller can handle derives from :class:`MentorpayError` and carries the HTTP status
an adapter should answer with, a stable machine-readable ``code`` and structured ``details``::

    MentorpayError (500)
    ├── ConfigurationError (500)            the library was set up wrongly
    ├── InvalidAmountError (400)            negative, not an int, excess precision, currency rule
    │   └── UnknownCurrencyError (400)
    ├── CurrencyMismatchError (400)
    ├── InvalidRequestError (400)           a malformed argument (cursor, id, URL)
    ├── WebhookSignatureError (400)
    ├── WebhookPayloadError (400)
    ├── PayloadTooLargeError (413)
    ├── NotFoundError (404)
    │   ├── BookingNotFoundError
    │   ├── PaymentNotFoundError
    │   ├── PayoutNotFoundError
    │   ├── MentorNotFoundError
    │   └── PlanNotFoundError               no such plan, plan purchase or subscription
    ├── NotAuthorizedError (403)
    │   └── NotBookingOwnerError
    ├── ConflictError (409)
    │   ├── BookingNotPayableError
    │   ├── AlreadyPaidError
    │   ├── PaymentPendingError             a delayed payment (bank debit) is still pending
    │   ├── InsufficientBalanceError
    │   ├── PayoutStateError
    │   ├── AccountNotReadyError            the mentor's connected account cannot receive money
    │   ├── AccountMismatchError            the booking names another account than mentorpay's
    │   ├── AlreadySubscribedError          the mentee already has this plan
    │   └── NoCreditsError                  the plan has no session credit left to spend
    ├── GatewayError (502)                  Stripe said no or could not be reached
    │   ├── CardError (402)
    │   ├── GatewayRateLimitError (503)
    │   ├── GatewayConnectionError (502)
    │   ├── IdempotencyConflictError (409)
    │   └── GatewayInvalidRequestError (502)
    ├── WebhookProcessingError (500)        handler failed; Stripe must retry
    └── DatabaseBusyError (503)             retries on serialization failure exhausted
        └── DatabaseUnavailableError (503)  connection refused or lost; retry later

Subclasses never need a custom ``__init__``: pass a message and keyword details.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AccountMismatchError",
    "AccountNotReadyError",
    "AlreadyPaidError",
    "AlreadySubscribedError",
    "BookingNotFoundError",
    "BookingNotPayableError",
    "CardError",
    "ConfigurationError",
    "ConflictError",
    "CurrencyMismatchError",
    "DatabaseBusyError",
    "DatabaseUnavailableError",
    "GatewayConnectionError",
    "GatewayError",
    "GatewayInvalidRequestError",
    "GatewayRateLimitError",
    "IdempotencyConflictError",
    "InsufficientBalanceError",
    "InvalidAmountError",
    "InvalidRequestError",
    "MentorNotFoundError",
    "MentorpayError",
    "NoCreditsError",
    "NotAuthorizedError",
    "NotBookingOwnerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PaymentNotFoundError",
    "PaymentPendingError",
    "PayoutNotFoundError",
    "PayoutStateError",
    "PlanNotFoundError",
    "UnknownCurrencyError",
    "WebhookPayloadError",
    "WebhookProcessingError",
    "WebhookSignatureError",
]


class MentorpayError(Exception):
    """Base of every error mentorpay raises on purpose."""

    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "mentorpay_error"
    #: Whether trying the same call again later may succeed.
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready body for adapters: ``{"error": code, "message": ..., **details}``."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        body.update({k: v for k, v in self.details.items() if _jsonable(v)})
        return body


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | bool | list | dict)


class ConfigurationError(MentorpayError):
    """mentorpay was configured in a way that cannot work (missing secret, bad URL)."""

    code = "configuration_error"


class InvalidAmountError(MentorpayError):
    """An amount is negative, has excess precision, or breaks a currency rule."""

    http_status = 400
    code = "invalid_amount"


class UnknownCurrencyError(InvalidAmountError):
    """The currency code is not one mentorpay knows Stripe's exponent for."""

    code = "unknown_currency"


class CurrencyMismatchError(MentorpayError):
    """Two amounts of different currencies were combined."""

    http_status = 400
    code = "currency_mismatch"


class InvalidRequestError(MentorpayError):
    """An argument is malformed (a pagination cursor, an id, a URL)."""

    http_status = 400
    code = "invalid_request"


class WebhookSignatureError(MentorpayError):
    """The Stripe-Signature header is missing, malformed, stale or matches no secret."""

    http_status = 400
    code = "webhook_signature_invalid"


class WebhookPayloadError(MentorpayError):
    """A verified webhook body is not a Stripe event mentorpay can read."""

    http_status = 400
    code = "webhook_payload_invalid"


class PayloadTooLargeError(MentorpayError):
    """The webhook body exceeds the configured limit; it was not parsed."""

    http_status = 413
    code = "payload_too_large"


class NotFoundError(MentorpayError):
    """Something the caller named does not exist."""

    http_status = 404
    code = "not_found"


class BookingNotFoundError(NotFoundError):
    """The host's BookingSource has no such booking."""

    code = "booking_not_found"


class PaymentNotFoundError(NotFoundError):
    """No payment is recorded for that payment intent or booking."""

    code = "payment_not_found"


class PayoutNotFoundError(NotFoundError):
    """No payout request has that id."""

    code = "payout_not_found"


class MentorNotFoundError(NotFoundError):
    """The mentor has no balance in that currency (never earned anything)."""

    code = "mentor_not_found"


class NotAuthorizedError(MentorpayError):
    """The caller may not see or change this resource."""

    http_status = 403
    code = "not_authorized"


class NotBookingOwnerError(NotAuthorizedError):
    """Only the booking's mentee may pay for it."""

    code = "not_booking_owner"


class ConflictError(MentorpayError):
    """The request is valid but the current state forbids it."""

    http_status = 409
    code = "conflict"


class BookingNotPayableError(ConflictError):
    """The booking is cancelled, completed, or has no price."""

    code = "booking_not_payable"


class AlreadyPaidError(ConflictError):
    """The booking has already been paid for."""

    code = "already_paid"


class PaymentPendingError(ConflictError):
    """A delayed payment (SEPA, Bacs or ACH debit) for the booking is still pending: until it
    succeeds (the booking is paid) or fails (the booking can be paid again), no new checkout."""

    code = "payment_pending"


class InsufficientBalanceError(ConflictError):
    """The mentor's available balance does not cover the payout."""

    code = "insufficient_balance"


class PayoutStateError(ConflictError):
    """The payout request cannot make that transition from its current state."""

    code = "payout_state_conflict"


class AccountNotReadyError(ConflictError):
    """The mentor's Stripe connected account cannot receive this money yet (charges or payouts
    not enabled); ``details`` name what Stripe says is due (``currently_due``, ``past_due``,
    ``disabled_reason``). Retry once the mentor finished onboarding."""

    code = "account_not_ready"


class AccountMismatchError(ConflictError):
    """The booking (or payout request) names a connected account other than the one mentorpay
    created for the mentor; mentorpay refuses rather than guess which one is right."""

    code = "account_mismatch"


class PlanNotFoundError(NotFoundError):
    """No plan, plan purchase or subscription by that id."""

    code = "plan_not_found"


class AlreadySubscribedError(ConflictError):
    """The mentee already has a live subscription to this plan."""

    code = "already_subscribed"


class NoCreditsError(ConflictError):
    """The plan purchase has no session credit left (used, lapsed, refunded or not paid)."""

    code = "no_credits"


class GatewayError(MentorpayError):
    """Stripe refused the call or could not be reached; nothing was written locally."""

    http_status = 502
    code = "gateway_error"


class CardError(GatewayError):
    """The card was declined."""

    http_status = 402
    code = "card_error"


class GatewayRateLimitError(GatewayError):
    """Stripe rate-limited the call; retry with backoff."""

    http_status = 503
    code = "gateway_rate_limited"
    retryable = True


class GatewayConnectionError(GatewayError):
    """Stripe could not be reached; the same idempotency key makes a retry safe."""

    code = "gateway_unreachable"
    retryable = True


class IdempotencyConflictError(GatewayError):
    """The idempotency key was reused with different parameters."""

    http_status = 409
    code = "idempotency_conflict"


class GatewayInvalidRequestError(GatewayError):
    """Stripe rejected the parameters (a bug or a stale object); retrying will not help."""

    code = "gateway_invalid_request"


class WebhookProcessingError(MentorpayError):
    """Applying a verified event failed; effects were rolled back and Stripe should retry."""

    code = "webhook_processing_failed"
    retryable = True


class DatabaseBusyError(MentorpayError):
    """The database kept failing with serialization errors or deadlocks after every retry."""

    http_status = 503
    code = "database_busy"
    retryable = True


class DatabaseUnavailableError(DatabaseBusyError):
    """The database refused the connection or the connection was lost (restart, failover,
    network): nothing was half-applied, and retrying the same call later is safe.

    A subclass of :class:`DatabaseBusyError` so that code answering 503 "retry later" to one
    handles the other without change. A transaction cut off before its commit was rolled back by
    the server; one cut off during its commit may have committed whole, and mentorpay's
    idempotency (event ids, business keys) makes the retry find it done.
    """

    code = "database_unavailable"
