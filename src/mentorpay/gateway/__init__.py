"""The payment gateway: a small protocol over the Stripe calls mentorpay makes, and its Stripe
implementation on the official SDK.

- :mod:`~mentorpay.gateway.protocol`: :class:`PaymentGateway` (hosts may implement it),
  :class:`CheckoutSessionParams`, :data:`REFUND_REASONS`.
- :mod:`~mentorpay.gateway.stripe`: :class:`StripeGateway`.
- :mod:`~mentorpay.gateway.keys`: the deterministic idempotency keys every POST carries, so a
  retry after a timeout, a crash or a double click replays the original request.
- :mod:`~mentorpay.gateway.errors`: Stripe's exceptions as mentorpay's
  :class:`~mentorpay.errors.GatewayError` tree, and :func:`outcome_unknown`.
- The results (``GatewayCheckoutSession``, ``GatewayPaymentIntent``...) are the lenient models
  of :mod:`mentorpay.stripe_objects`, re-exported here. The in-memory gateway for tests is
  :class:`mentorpay.testing.FakeGateway`.
"""

from mentorpay.gateway._accounts import ConnectLink
from mentorpay.gateway._plans import is_subscription_canceled
from mentorpay.gateway.errors import is_missing_resource, outcome_unknown
from mentorpay.gateway.keys import (
    account_idempotency_key,
    account_link_idempotency_key,
    checkout_expire_idempotency_key,
    checkout_idempotency_key,
    login_link_idempotency_key,
    payout_reversal_idempotency_key,
    payout_transfer_idempotency_key,
    plan_cancel_idempotency_key,
    plan_change_idempotency_key,
    plan_checkout_idempotency_key,
    portal_idempotency_key,
    refund_idempotency_key,
)
from mentorpay.gateway.protocol import (
    REFUND_REASONS,
    CheckoutSessionParams,
    PaymentGateway,
    PlanCheckoutParams,
    RefundReason,
)
from mentorpay.gateway.stripe import StripeGateway
from mentorpay.stripe_billing import GatewaySubscription as GatewaySubscription
from mentorpay.stripe_objects import GatewayAccount as GatewayAccount
from mentorpay.stripe_objects import GatewayBalanceTransaction as GatewayBalanceTransaction
from mentorpay.stripe_objects import GatewayCharge as GatewayCharge
from mentorpay.stripe_objects import GatewayCheckoutSession as GatewayCheckoutSession
from mentorpay.stripe_objects import GatewayDispute as GatewayDispute
from mentorpay.stripe_objects import GatewayPaymentIntent as GatewayPaymentIntent
from mentorpay.stripe_objects import GatewayRefund as GatewayRefund
from mentorpay.stripe_objects import GatewayTransfer as GatewayTransfer
from mentorpay.stripe_objects import GatewayTransferReversal as GatewayTransferReversal

__all__ = [
    "REFUND_REASONS",
    "CheckoutSessionParams",
    "ConnectLink",
    "GatewayAccount",
    "GatewayBalanceTransaction",
    "GatewayCharge",
    "GatewayCheckoutSession",
    "GatewayDispute",
    "GatewayPaymentIntent",
    "GatewayRefund",
    "GatewaySubscription",
    "GatewayTransfer",
    "GatewayTransferReversal",
    "PaymentGateway",
    "PlanCheckoutParams",
    "RefundReason",
    "StripeGateway",
    "account_idempotency_key",
    "account_link_idempotency_key",
    "checkout_expire_idempotency_key",
    "checkout_idempotency_key",
    "is_missing_resource",
    "is_subscription_canceled",
    "login_link_idempotency_key",
    "outcome_unknown",
    "payout_reversal_idempotency_key",
    "payout_transfer_idempotency_key",
    "plan_cancel_idempotency_key",
    "plan_change_idempotency_key",
    "plan_checkout_idempotency_key",
    "portal_idempotency_key",
    "refund_idempotency_key",
]
