"""Mentorship plans: monthly subscriptions and prepaid session packages.

A plan comes from the host (:class:`PlanInfo` through a :class:`PlanSource`). A mentee buys it
through Stripe Checkout (``mp.checkout.create_plan_session``): a subscription renews every
period, a package is paid once. Each paid period is a ledger payment split by the commission
policy exactly like a booking, credited to the mentor's pending balance, and grants the
plan's session credits. A credit is spent on a booking (``mp.plans.consume``) and, when the
session took place, ``mp.ledger.release(booking_id)`` releases that session's share of the
period's payout (``allocate``: the shares sum to exactly the payout). Unused credits lapse at
the period's end (plus ``carry_over_periods``) or the package's validity, and the rest of the
share is then released to the mentor (``mp.plans.expire_due``). A refund or lost dispute
removes the unused credits its money paid for first (:mod:`mentorpay.plans.rules`).

Layout: :mod:`.info` (the host's plans), :mod:`.rules` (pure), :mod:`.storage` (the plan
tables' statements), :mod:`.checkout` (selling a plan), :mod:`.service` (``mp.plans``;
credits in :mod:`.credits`),
:mod:`.views`; the webhook side is :mod:`mentorpay.webhooks.handlers.plans`.
"""

from mentorpay.plans.checkout import PlanCheckout, PlanCheckoutInfo
from mentorpay.plans.info import (
    DEFAULT_PACKAGE_VALIDITY,
    PlanInfo,
    PlanInterval,
    PlanKind,
    PlanSource,
)
from mentorpay.plans.service import PlansService
from mentorpay.plans.views import CreditView, PlanPeriodView, PlanPurchaseView

__all__ = [
    "DEFAULT_PACKAGE_VALIDITY",
    "CreditView",
    "PlanCheckout",
    "PlanCheckoutInfo",
    "PlanInfo",
    "PlanInterval",
    "PlanKind",
    "PlanPeriodView",
    "PlanPurchaseView",
    "PlanSource",
    "PlansService",
]
