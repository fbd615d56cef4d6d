"""mentorpay: exact commission, a per-mentor double-entry ledger and exactly-once Stripe webhooks.

Importing mentorpay has no side effects: no environment reads, no connections, no tables.

The public names load on first use (PEP 562): ``import mentorpay`` by itself loads only the
version, so the ``mentorpay`` command starts without SQLAlchemy, Stripe or pydantic. The first
use of any other attribute imports the whole public API at once, after which the package is
what an eager import would have made it. Type checkers read the imports below as usual.
"""

# Private aliases: every public attribute of the package is in __all__.
import importlib as _importlib
import typing as _typing

from mentorpay._version import __version__

if _typing.TYPE_CHECKING:
    from mentorpay.accounts import AccountLink, AccountService, AccountStatus
    from mentorpay.analytics import (
        AnalyticsReport,
        AnalyticsService,
        CheckoutFunnel,
        CurrencySummary,
    )
    from mentorpay.app import MentorPay
    from mentorpay.bookings import BookingInfo, BookingSource
    from mentorpay.cancellation import (
        CancellationDecision,
        CancellationPolicy,
        CancelledBy,
        RefundWindow,
    )
    from mentorpay.cancellations import BookingService, CancellationResult
    from mentorpay.checkout import CheckoutService, CheckoutSessionInfo
    from mentorpay.commission import CommissionPolicy, CommissionResolver, Split, split_refund
    from mentorpay.config import MentorpayConfig
    from mentorpay.dashboard import (
        CurrencySeries,
        DashboardOverview,
        DashboardService,
        InboxHealth,
        MentorEarnings,
        PayoutQueue,
    )
    from mentorpay.errors import (
        AccountMismatchError,
        AccountNotReadyError,
        AlreadyPaidError,
        AlreadySubscribedError,
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
        NoCreditsError,
        NotAuthorizedError,
        NotBookingOwnerError,
        NotFoundError,
        PayloadTooLargeError,
        PaymentNotFoundError,
        PaymentPendingError,
        PayoutNotFoundError,
        PayoutStateError,
        PlanNotFoundError,
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
    from mentorpay.plans import (
        CreditView,
        PlanCheckoutInfo,
        PlanInfo,
        PlanPeriodView,
        PlanPurchaseView,
        PlanSource,
        PlansService,
    )
    from mentorpay.reconcile import Reconciler, ReconcileReport, ReconcileRun
    from mentorpay.refunds import RefundResult, RefundService
    from mentorpay.webhooks import InboxEvent, WebhookProcessor, WebhookResult, WorkSummary

__all__ = [
    "AccountLink",
    "AccountMismatchError",
    "AccountNotReadyError",
    "AccountService",
    "AccountStatus",
    "AlreadyPaidError",
    "AlreadySubscribedError",
    "AnalyticsReport",
    "AnalyticsService",
    "BalanceView",
    "BookingInfo",
    "BookingNotFoundError",
    "BookingNotPayableError",
    "BookingService",
    "BookingSource",
    "CancellationDecision",
    "CancellationPolicy",
    "CancellationResult",
    "CancelledBy",
    "CardError",
    "CheckoutFunnel",
    "CheckoutService",
    "CheckoutSessionInfo",
    "CommissionPolicy",
    "CommissionResolver",
    "ConfigurationError",
    "ConflictError",
    "CreditView",
    "CurrencyMismatchError",
    "CurrencySeries",
    "CurrencySummary",
    "DashboardOverview",
    "DashboardService",
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
    "InboxHealth",
    "InsufficientBalanceError",
    "InvalidAmountError",
    "InvalidRequestError",
    "LedgerService",
    "MentorEarnings",
    "MentorNotFoundError",
    "MentorPay",
    "MentorpayConfig",
    "MentorpayError",
    "Money",
    "NoCreditsError",
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
    "PayoutQueue",
    "PayoutService",
    "PayoutStateError",
    "PayoutView",
    "PlanCheckoutInfo",
    "PlanInfo",
    "PlanNotFoundError",
    "PlanPeriodView",
    "PlanPurchaseView",
    "PlanSource",
    "PlansService",
    "ReconcileReport",
    "ReconcileRun",
    "Reconciler",
    "RefundResult",
    "RefundService",
    "RefundWindow",
    "Split",
    "StripeGateway",
    "UnknownCurrencyError",
    "VerifyReport",
    "WebhookPayloadError",
    "WebhookProcessingError",
    "WebhookProcessor",
    "WebhookResult",
    "WebhookSignatureError",
    "WorkSummary",
    "__version__",
    "allocate",
    "split_refund",
]

#: The modules the public names come from (each exports them in its own ``__all__``).
_SOURCES: tuple[str, ...] = (
    "mentorpay.accounts",
    "mentorpay.analytics",
    "mentorpay.app",
    "mentorpay.bookings",
    "mentorpay.cancellation",
    "mentorpay.cancellations",
    "mentorpay.checkout",
    "mentorpay.commission",
    "mentorpay.config",
    "mentorpay.dashboard",
    "mentorpay.errors",
    "mentorpay.events",
    "mentorpay.gateway",
    "mentorpay.ledger",
    "mentorpay.money",
    "mentorpay.payouts",
    "mentorpay.plans",
    "mentorpay.reconcile",
    "mentorpay.refunds",
    "mentorpay.webhooks",
)


def _load_public_api() -> None:
    """Import every public name into the package namespace (once; cheap afterwards)."""
    namespace = globals()
    public = set(__all__)
    for module_name in _SOURCES:
        module = _importlib.import_module(module_name)
        for name in public.intersection(module.__all__):
            namespace[name] = getattr(module, name)


if not _typing.TYPE_CHECKING:  # hidden from type checkers, which must not see every name as valid

    def __getattr__(name: str) -> object:
        _load_public_api()
        try:
            return globals()[name]
        except KeyError:  # not a public name, nor a submodule imported meanwhile
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(__all__))
