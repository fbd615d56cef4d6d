"""mentorpay: exact commission, a per-mentor double-entry ledger and exactly-once Stripe webhooks.

Importing mentorpay has no side effects: no environment reads, no connections, no tables.
"""

from mentorpay._version import __version__
from mentorpay.analytics import AnalyticsReport, AnalyticsService, CheckoutFunnel, CurrencySummary
from mentorpay.app import MentorPay
from mentorpay.bookings import BookingInfo, BookingSource
from mentorpay.checkout import CheckoutService, CheckoutSessionInfo
from mentorpay.commission import CommissionPolicy, CommissionResolver, Split, split_refund
from mentorpay.config import MentorpayConfig
from mentorpay.errors import (
    AlreadyPaidError,
    BookingNotFoundError,
    BookingNotPayableError,
    CardError,
    ConfigurationError,
    ConflictError,
    CurrencyMismatchError,
    DatabaseBusyError,
    DatabaseUnavailableError,
    GatewayConnectionError,
    GatewayError,
    GatewayInvalidRequestError,
    GatewayRateLimitError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidAmountError,
    InvalidRequestError,
    MentorNotFoundError,
    MentorpayError,
    NotAuthorizedError,
    NotBookingOwnerError,
    NotFoundError,
    PayloadTooLargeError,
    PaymentNotFoundError,
    PaymentPendingError,
    PayoutNotFoundError,
    PayoutStateError,
    UnknownCurrencyError,
    WebhookPayloadError,
    WebhookProcessingError,
    WebhookSignatureError,
)
from mentorpay.events import Effect, EffectKind
from mentorpay.gateway import PaymentGateway, StripeGateway
from mentorpay.ledger import BalanceView, LedgerService, Page, PaymentRecord, VerifyReport
from mentorpay.money import Money, allocate
from mentorpay.payouts import PayoutService, PayoutView
from mentorpay.reconcile import Reconciler, ReconcileReport
from mentorpay.refunds import RefundResult, RefundService
from mentorpay.webhooks import InboxEvent, WebhookProcessor, WebhookResult

__all__ = [
    "AlreadyPaidError",
    "AnalyticsReport",
    "AnalyticsService",
    "BalanceView",
    "BookingInfo",
    "BookingNotFoundError",
    "BookingNotPayableError",
    "BookingSource",
    "CardError",
    "CheckoutFunnel",
    "CheckoutService",
    "CheckoutSessionInfo",
    "CommissionPolicy",
    "CommissionResolver",
    "ConfigurationError",
    "ConflictError",
    "CurrencyMismatchError",
    "CurrencySummary",
    "DatabaseBusyError",
    "DatabaseUnavailableError",
    "Effect",
    "EffectKind",
    "GatewayConnectionError",
    "GatewayError",
    "GatewayInvalidRequestError",
    "GatewayRateLimitError",
    "IdempotencyConflictError",
    "InboxEvent",
    "InsufficientBalanceError",
    "InvalidAmountError",
    "InvalidRequestError",
    "LedgerService",
    "MentorNotFoundError",
    "MentorPay",
    "MentorpayConfig",
    "MentorpayError",
    "Money",
    "NotAuthorizedError",
    "NotBookingOwnerError",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PaymentGateway",
    "PaymentNotFoundError",
    "PaymentPendingError",
    "PaymentRecord",
    "PayoutNotFoundError",
    "PayoutService",
    "PayoutStateError",
    "PayoutView",
    "ReconcileReport",
    "Reconciler",
    "RefundResult",
    "RefundService",
    "Split",
    "StripeGateway",
    "UnknownCurrencyError",
    "VerifyReport",
    "WebhookPayloadError",
    "WebhookProcessingError",
    "WebhookProcessor",
    "WebhookResult",
    "WebhookSignatureError",
    "__version__",
    "allocate",
    "split_refund",
]
