"""What mentorpay asks of a payment gateway: the :class:`PaymentGateway` protocol (hosts may
implement it), the checkout parameters, and the refund reasons Stripe accepts.

Every implementation follows these rules: every POST takes a required ``idempotency_key`` (see
:mod:`mentorpay.gateway.keys`); results come back as the ``Gateway*`` objects of
:mod:`mentorpay.stripe_objects`; only :class:`~mentorpay.errors.GatewayError` subclasses are
raised (see :mod:`mentorpay.gateway.errors`).
"""

# No ``from __future__ import annotations`` here: the request TypedDicts below are read at run
# time (their required keys), which needs real annotations.
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, Protocol, TypedDict, runtime_checkable

from mentorpay.gateway._accounts import ConnectLink, LinkType
from mentorpay.money import Money
from mentorpay.stripe_billing import GatewaySubscription
from mentorpay.stripe_objects import (
    GatewayAccount,
    GatewayBalanceTransaction,
    GatewayCharge,
    GatewayCheckoutSession,
    GatewayDispute,
    GatewayPaymentIntent,
    GatewayRefund,
    GatewayTransfer,
    GatewayTransferReversal,
)

__all__ = [
    "REFUND_REASONS",
    "CheckoutSessionParams",
    "PaymentGateway",
    "PlanCheckoutParams",
    "RefundReason",
    "RefundRequest",
    "ReversalRequest",
    "TransferRequest",
]

RefundReason = Literal["duplicate", "fraudulent", "requested_by_customer"]
#: The reasons Stripe accepts on a refund.
REFUND_REASONS: Final[frozenset[str]] = frozenset(
    {"duplicate", "fraudulent", "requested_by_customer"}
)


@dataclass(frozen=True, slots=True)
class CheckoutSessionParams:
    """What mentorpay asks Stripe Checkout for: one line item for one booking."""

    booking_id: str
    mentor_id: str
    mentee_id: str
    amount: Money
    line_item_name: str
    success_url: str
    cancel_url: str
    expires_at: datetime
    #: Connect destination charges: the platform's commission and the mentor's account.
    application_fee: Money | None = None
    destination: str | None = None

    @property
    def metadata(self) -> dict[str, str]:
        """Set on the session and its payment intent; webhooks find the booking through it.

        Destination charges also name the mentor's account (``mentor_account``) and the
        application fee (``platform_fee``): whichever event records the payment knows the
        mentor's share left with Stripe's transfer, and what Stripe kept.
        """
        metadata = {
            "booking_id": self.booking_id,
            "mentor_id": self.mentor_id,
            "mentee_id": self.mentee_id,
        }
        if self.destination is not None:
            metadata["mentor_account"] = self.destination
        if self.application_fee is not None:
            # The fee Stripe will keep, so the ledger records exactly it even if the policy
            # changes between checkout and payment.
            metadata["platform_fee"] = str(self.application_fee.amount)
        return metadata


@dataclass(frozen=True, slots=True)
class PlanCheckoutParams:
    """What mentorpay asks Stripe Checkout for to sell a plan: a subscription-mode session
    (``kind="subscription"``: ``amount`` every ``interval_count`` ``interval``) or a
    payment-mode one (``kind="package"``), one line item either way.

    ``purchase_id`` is mentorpay's id of this purchase; it and the plan, mentor and mentee go
    in the metadata of the session and of ``subscription_data`` (subscriptions) or
    ``payment_intent_data`` (packages), which is how webhooks find the purchase.
    """

    purchase_id: str
    plan_id: str
    kind: Literal["subscription", "package"]
    mentor_id: str
    mentee_id: str
    amount: Money
    line_item_name: str
    success_url: str
    cancel_url: str
    expires_at: datetime
    interval: Literal["day", "week", "month", "year"] = "month"
    interval_count: int = 1
    #: Sell an existing Stripe Price instead of inline ``price_data``.
    stripe_price_id: str | None = None
    #: Reuse the mentee's Stripe customer (from an earlier subscription), so the billing
    #: portal shows all their plans.
    customer_id: str | None = None
    #: Connect destination charges: the mentor's account, and the platform's commission as
    #: Stripe takes it: ``subscription_data.application_fee_percent`` (a percentage with at
    #: most two decimals, as a string such as ``"10.00"``) for subscriptions, an exact
    #: ``payment_intent_data.application_fee_amount`` for packages.
    destination: str | None = None
    application_fee_percent: str | None = None
    application_fee: Money | None = None

    @property
    def metadata(self) -> dict[str, str]:
        """Set on the session and on its subscription or payment intent."""
        metadata = {
            "plan_purchase_id": self.purchase_id,
            "plan_id": self.plan_id,
            "mentor_id": self.mentor_id,
            "mentee_id": self.mentee_id,
        }
        if self.destination is not None:
            metadata["mentor_account"] = self.destination
        return metadata


@runtime_checkable
class PaymentGateway(Protocol):
    """The Stripe calls mentorpay makes. ``StripeGateway`` is the real one; ``FakeGateway`` in
    :mod:`mentorpay.testing` is the in-memory one.

    POST methods take a required ``idempotency_key`` (build it with the ``*_idempotency_key``
    functions). ``list_*`` methods page through Stripe's objects created in
    ``[created_gte, created_lt)`` and yield every one of them, oldest page first. All methods
    raise :class:`~mentorpay.errors.GatewayError` subclasses only.
    """

    def create_checkout_session(
        self, params: CheckoutSessionParams, *, idempotency_key: str
    ) -> GatewayCheckoutSession:
        """Create a payment-mode Checkout Session with one line item for the booking."""

    def create_plan_checkout_session(
        self, params: PlanCheckoutParams, *, idempotency_key: str
    ) -> GatewayCheckoutSession:
        """Create a Checkout Session selling a plan: subscription mode for a monthly plan,
        payment mode for a package (see :class:`PlanCheckoutParams`)."""

    def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool, idempotency_key: str
    ) -> GatewaySubscription:
        """Cancel a subscription now (``DELETE /v1/subscriptions/{id}``), or at the end of
        the current period (``cancel_at_period_end=true``)."""

    def change_subscription_plan(
        self,
        subscription_id: str,
        *,
        item_id: str,
        params: PlanCheckoutParams,
        idempotency_key: str,
    ) -> GatewaySubscription:
        """Replace the subscription's one item's price with ``params``' plan from the next
        period on (no proration) and its metadata with ``params.metadata``."""

    def retrieve_subscription(self, subscription_id: str) -> GatewaySubscription:
        """One Subscription, as Stripe has it now (its item, status, cancellation)."""

    def create_billing_portal_session(
        self, customer_id: str, *, return_url: str, idempotency_key: str
    ) -> str:
        """A Stripe billing-portal session for the customer; returns its URL."""

    def expire_checkout_session(
        self, session_id: str, *, idempotency_key: str
    ) -> GatewayCheckoutSession:
        """Expire an open Checkout Session so it can no longer be paid (Stripe refuses
        a completed or already expired one)."""

    def retrieve_checkout_session(self, session_id: str) -> GatewayCheckoutSession:
        """One Checkout Session, as Stripe has it now."""

    def create_refund(
        self,
        *,
        payment_intent_id: str,
        amount: Money | None,
        idempotency_key: str,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        reverse_transfer: bool | None = None,
        refund_application_fee: bool | None = None,
    ) -> GatewayRefund:
        """Refund a payment intent, fully (``amount=None``) or partially; ``reason`` is one
        of :data:`REFUND_REASONS`. Stripe never refunds more than remains on the charge."""

    def create_transfer(
        self,
        *,
        amount: Money,
        destination: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        transfer_group: str | None = None,
        description: str | None = None,
    ) -> GatewayTransfer:
        """Move ``amount`` from the platform's balance to the connected account
        ``destination`` (``acct_...``): a mentor's payout."""

    def create_transfer_reversal(
        self,
        transfer_id: str,
        *,
        idempotency_key: str,
        amount: Money | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> GatewayTransferReversal:
        """Pull a transfer (all of it, or ``amount``) back from the connected account."""

    def retrieve_payment_intent(self, payment_intent_id: str) -> GatewayPaymentIntent:
        """One PaymentIntent: its status, amounts and ``latest_charge``."""

    def retrieve_charge(self, charge_id: str) -> GatewayCharge:
        """One Charge; its ``amount_refunded`` is cumulative."""

    def retrieve_dispute(self, dispute_id: str) -> GatewayDispute:
        """One Dispute; ``closed`` once it has an outcome."""

    def retrieve_transfer(self, transfer_id: str) -> GatewayTransfer:
        """One Transfer; ``reversed`` once fully pulled back."""

    def create_account(
        self, *, mentor_id: str, idempotency_key: str, country: str | None = None
    ) -> GatewayAccount:
        """Create the mentor's Express connected account (``metadata[mentor_id]``)."""

    def create_account_link(
        self,
        account_id: str,
        *,
        refresh_url: str,
        return_url: str,
        idempotency_key: str,
        link_type: LinkType = "account_onboarding",
    ) -> ConnectLink:
        """A fresh, single-use onboarding link for a connected account."""

    def create_login_link(self, account_id: str, *, idempotency_key: str) -> ConnectLink:
        """A single-use link into a connected account's Express dashboard."""

    def retrieve_account(self, account_id: str) -> GatewayAccount:
        """One connected account: charges/payouts enabled, details submitted, what is due."""

    def retrieve_balance_transaction(
        self, balance_transaction_id: str
    ) -> GatewayBalanceTransaction:
        """One BalanceTransaction (``txn_...``): Stripe's ``fee`` on a charge or dispute."""

    def list_payment_intents(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayPaymentIntent]:
        """PaymentIntents created in the period: reconciliation looks for payments
        Stripe took that the ledger lacks, and for amounts that differ."""

    def list_checkout_sessions(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayCheckoutSession]:
        """Checkout Sessions created in the period (a completed one names its
        payment intent)."""

    def list_charges(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayCharge]:
        """Charges created in the period: a refund made outside mentorpay shows in their
        ``amount_refunded``."""

    def list_refunds(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayRefund]:
        """Refunds created in the period."""

    def list_disputes(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayDispute]:
        """Disputes created in the period, open or closed."""

    def list_transfers(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayTransfer]:
        """Transfers created in the period: what the platform paid to connected accounts,
        to match against payout requests."""


# -- the keyword arguments of the POST methods, for implementations -----------------------------
# StripeGateway and FakeGateway take these as ``**request: Unpack[...]`` instead of spelling the
# protocol's signatures out again; ``gateway._check.check_request`` refuses at run time what
# Python would refuse for the explicit signature (a missing or unknown keyword).


class _RefundKeys(TypedDict):
    payment_intent_id: str
    amount: Money | None
    idempotency_key: str


class RefundRequest(_RefundKeys, total=False):
    """:meth:`PaymentGateway.create_refund`'s keyword arguments."""

    reason: str | None
    metadata: Mapping[str, str] | None
    reverse_transfer: bool | None
    refund_application_fee: bool | None


class _TransferKeys(TypedDict):
    amount: Money
    destination: str
    idempotency_key: str


class TransferRequest(_TransferKeys, total=False):
    """:meth:`PaymentGateway.create_transfer`'s keyword arguments."""

    metadata: Mapping[str, str] | None
    transfer_group: str | None
    description: str | None


class _ReversalKeys(TypedDict):
    idempotency_key: str


class ReversalRequest(_ReversalKeys, total=False):
    """:meth:`PaymentGateway.create_transfer_reversal`'s keyword arguments."""

    amount: Money | None
    metadata: Mapping[str, str] | None
