"""The plan rules, pure functions (no SQL): session credits left after refunds, each session's
share of a period's mentor payout, when credits lapse, a subscription's status from Stripe's,
and whether Stripe's ``application_fee_percent`` can express the commission exactly.

Credits and refunds. A period of gross ``G`` grants ``N`` credits; refunds and lost disputes
that gave back ``R`` of it remove ``ceil(R * N / G)`` credits, unused ones first (a used credit
is a delivered or booked session and is never taken back), so::

    credits left = max(0, N - used - ceil(R * N / G))

is cumulative like the ledger's refund targets: any order of refunds, failed refunds and
disputes, with duplicates, leaves the same credits, and a refund that fails gives its credits
back.

Shares. The ``k``-th credit of a period releases ``allocate(P, [1] * N)[k]`` of the period's
mentor payout ``P`` (largest remainder: the shares sum to exactly ``P``), capped by what is
still pending when a refund took part of it. Unused credits lapse at ``expires_at``; the rest
of the period's share is then released to the mentor as a whole.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, Literal

from mentorpay.commission import CommissionPolicy
from mentorpay.money import Money, allocate

__all__ = [
    "LIVE_STATUSES",
    "PurchaseStatus",
    "credits_left",
    "credits_removed",
    "expires_at",
    "fee_percent",
    "open_key",
    "purchase_status",
    "session_share",
]

PurchaseStatus = Literal[
    "creating", "checkout", "active", "past_due", "canceled", "abandoned", "paid"
]

#: Statuses in which a subscription blocks another purchase of the same plan by the mentee.
LIVE_STATUSES: Final = ("creating", "checkout", "active", "past_due")

# Stripe's subscription statuses -> mentorpay's. ``incomplete`` is a first payment not yet made
# (Checkout keeps it open), ``unpaid`` / ``paused`` stop renewals without ending the purchase.
_STATUSES: Final[dict[str, PurchaseStatus]] = {
    "active": "active",
    "trialing": "active",
    "past_due": "past_due",
    "unpaid": "past_due",
    "paused": "past_due",
    "incomplete": "checkout",
    "incomplete_expired": "abandoned",
    "canceled": "canceled",
}


def credits_removed(credits: int, amount: int, reversed_total: int) -> int:
    """Credits the refunds and lost disputes of a period paid for: ``ceil(R * N / G)``."""
    if amount <= 0 or reversed_total <= 0:
        return 0
    return min(credits, -(-min(reversed_total, amount) * credits // amount))


def credits_left(credits: int, used: int, amount: int, reversed_total: int) -> int:
    """The credits still usable (see the module docstring)."""
    return max(0, credits - used - credits_removed(credits, amount, reversed_total))


def session_share(payout: Money, credits: int, seq: int) -> Money:
    """The ``seq``-th credit's share of the period's mentor payout (0-based)."""
    return allocate(payout, [1] * credits)[seq]


def expires_at(
    *,
    kind: str,
    paid_at: datetime,
    period_start: datetime | None,
    period_end: datetime | None,
    validity: timedelta,
    carry_over_periods: int,
) -> datetime:
    """When a period's unused credits lapse: a package's ``validity`` after payment; a
    subscription period's end plus ``carry_over_periods`` more periods of the same length."""
    if kind == "package" or period_start is None or period_end is None:
        return paid_at + validity
    return period_end + (period_end - period_start) * carry_over_periods


def purchase_status(stripe_status: str) -> PurchaseStatus | None:
    """mentorpay's status for a subscription Stripe reports in ``stripe_status``."""
    return _STATUSES.get(stripe_status)


def open_key(kind: str, mentee_id: str, plan_id: str) -> str:
    """The unique key a live purchase holds: one open subscription (or package checkout)
    per mentee and plan (a plan has one mentor)."""
    return f"{kind}\x1f{mentee_id}\x1f{plan_id}"


def fee_percent(policy: CommissionPolicy, price: Money) -> str | None:
    """Stripe's ``application_fee_percent`` that keeps exactly the policy's fee on ``price``
    every period, or ``None`` when no percentage can (a minimum or maximum fee applies, or
    the rate does not divide the price into whole minor units, so Stripe's own rounding
    would decide the last unit)."""
    fee = policy.split(price).platform_fee.amount
    if (price.amount * policy.rate_bps) % 10_000 != 0:
        return None
    if fee != price.amount * policy.rate_bps // 10_000:
        return None
    return f"{policy.rate_bps // 100}.{policy.rate_bps % 100:02d}"
