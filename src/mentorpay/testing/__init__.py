"""mentorpay's public test kit: use it in your own application's tests.

- :class:`InMemoryBookings`: the reference ``BookingSource``; :class:`InMemoryPlans` the
  reference ``PlanSource``.
- :class:`FakeGateway`: an in-memory ``PaymentGateway`` that behaves like Stripe.
- :class:`OutboxMailer`: a ``Mailer`` that keeps the receipts it is asked to send.
- :func:`sign_payload`, :func:`make_event`, :func:`encode_event` and the object builders
  (:func:`checkout_session`, :func:`payment_intent`, :func:`charge`, :func:`dispute`,
  :func:`refund`, :func:`transfer`): signed, Stripe-shaped webhook events.
- Stripe Billing builders (:func:`subscription`, :func:`invoice`, :func:`invoice_payment`,
  :func:`subscription_checkout_session`, :func:`plan_metadata`), in either API shape.
- :class:`OfflineCheckout`, :func:`post_webhook`: a local page standing in for Stripe Checkout
  that sends the app the signed webhooks Stripe would send (the examples' offline mode), in
  each of Stripe's test :data:`SCENARIOS` (declined card, bank debit settling or failing days
  later, inquiry, dispute), the later steps driven by a :class:`FakeClock`.
- :class:`OfflineConnect`: a local page standing in for Stripe's Connect onboarding that
  enables the fake account and sends the app the signed ``account.updated``.
- :func:`sqlite_engine`, :func:`postgres_engine`, :func:`truncate_all`: databases with
  mentorpay's tables, configured exactly as in production.
"""

from mentorpay.testing._billing_events import (
    invoice,
    invoice_payment,
    plan_metadata,
    subscription,
    subscription_checkout_session,
)
from mentorpay.testing._bookings import InMemoryBookings
from mentorpay.testing._db import POSTGRES_URL_ENV, postgres_engine, sqlite_engine, truncate_all
from mentorpay.testing._events import (
    STRIPE_API_VERSION,
    booking_metadata,
    charge,
    checkout_session,
    dispute,
    encode_event,
    make_event,
    payment_intent,
    refund,
    sign_payload,
    stripe_id,
    transfer,
)
from mentorpay.testing._fake_renewals import BillingEvents, FakeBilling
from mentorpay.testing._gateway import FakeGateway, GatewayCall
from mentorpay.testing._mail import OutboxMailer
from mentorpay.testing._offline import (
    OfflineCheckout,
    PaidSession,
    SignedEvent,
    WebhookDeliverer,
    post_webhook,
)
from mentorpay.testing._offline_connect import OfflineConnect, OnboardedAccount
from mentorpay.testing._plans import InMemoryPlans
from mentorpay.testing._scenarios import SCENARIOS, FakeClock, Scenario, check_scenario

__all__ = [
    "POSTGRES_URL_ENV",
    "SCENARIOS",
    "STRIPE_API_VERSION",
    "BillingEvents",
    "FakeBilling",
    "FakeClock",
    "FakeGateway",
    "GatewayCall",
    "InMemoryBookings",
    "InMemoryPlans",
    "OfflineCheckout",
    "OfflineConnect",
    "OnboardedAccount",
    "OutboxMailer",
    "PaidSession",
    "Scenario",
    "SignedEvent",
    "WebhookDeliverer",
    "booking_metadata",
    "charge",
    "check_scenario",
    "checkout_session",
    "dispute",
    "encode_event",
    "invoice",
    "invoice_payment",
    "make_event",
    "payment_intent",
    "plan_metadata",
    "post_webhook",
    "postgres_engine",
    "refund",
    "sign_payload",
    "sqlite_engine",
    "stripe_id",
    "subscription",
    "subscription_checkout_session",
    "transfer",
    "truncate_all",
]
