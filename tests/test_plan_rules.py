"""The plan rules (``mentorpay.plans.rules``) without a database, against oracles written from
DESIGN.md section 10 and the plans' docstring: a refund of R of a period of gross G with N
credits removes ceil(R * N / G) credits, unused ones first; session shares sum to the payout;
Stripe's application_fee_percent is offered only when it keeps exactly the policy's fee."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mentorpay import CommissionPolicy, Money, PlanInfo
from mentorpay.errors import InvalidRequestError
from mentorpay.plans import rules

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@given(st.integers(1, 100_000), st.integers(1, 50), st.integers(0, 50), st.integers(0, 200_000))
def test_credits_left_remove_the_refunded_share_of_the_unused_credits_first(
    gross: int, credits: int, used: int, reversed_total: int
) -> None:
    """Credits left are N - used - ceil(R * N / G), never below zero."""
    used = min(used, credits)
    r = min(reversed_total, gross)
    removed = math.ceil(Fraction(r * credits, gross))
    assert rules.credits_removed(credits, gross, reversed_total) == removed
    assert rules.credits_left(credits, used, gross, reversed_total) == max(
        0, credits - used - removed
    )


def test_a_full_refund_removes_every_unused_credit_and_none_used() -> None:
    """Refunding the whole period leaves no credit; used ones stay used."""
    assert rules.credits_left(4, 1, 8000, 8000) == 0
    assert rules.credits_left(4, 0, 8000, 2000) == 3  # one session's worth
    assert rules.credits_left(4, 3, 8000, 2000) == 0  # the one unused credit goes
    assert rules.credits_left(4, 0, 8000, 1) == 3  # any refund at all costs a credit
    assert rules.credits_left(4, 0, 8000, 0) == 4
    # Degenerate inputs remove nothing instead of raising or adding credits.
    assert rules.credits_removed(4, 0, 0) == 0
    assert rules.credits_removed(4, 0, 100) == 0
    assert rules.credits_removed(4, 8000, -8000) == 0


@given(st.integers(0, 1_000_000), st.integers(1, 60))
def test_session_shares_sum_exactly_to_the_payout(payout: int, credits: int) -> None:
    """The shares of a period's credits sum to its payout and differ by at most one unit."""
    shares = [rules.session_share(Money(payout, "GBP"), credits, k).amount for k in range(credits)]
    assert sum(shares) == payout
    assert max(shares) - min(shares) <= 1
    assert all(
        math.floor(Fraction(payout, credits)) <= s <= math.ceil(Fraction(payout, credits))
        for s in shares
    )


@given(st.integers(1, 10_000_000), st.integers(0, 10_000))
def test_fee_percent_is_offered_only_when_it_keeps_the_exact_fee(price: int, bps: int) -> None:
    """Stripe's percentage of the price equals the policy's fee exactly, or none is offered."""
    policy = CommissionPolicy(rate_bps=bps)
    percent = rules.fee_percent(policy, Money(price, "GBP"))
    fee = policy.split(Money(price, "GBP")).platform_fee.amount
    if percent is None:
        assert (price * bps) % 10_000 != 0
    else:
        assert Decimal(percent) * price / 100 == fee
        assert len(percent.split(".")[1]) == 2


def test_a_minimum_fee_cannot_be_expressed_as_a_percentage() -> None:
    """A minimum fee that binds makes the percentage wrong, so none is offered."""
    policy = CommissionPolicy(rate_bps=1000, min_fee=500)
    assert rules.fee_percent(policy, Money(2000, "GBP")) is None
    assert rules.fee_percent(CommissionPolicy(rate_bps=1000), Money(2000, "GBP")) == "10.00"
    assert rules.fee_percent(CommissionPolicy(rate_bps=1250), Money(800, "GBP")) == "12.50"


def test_credits_lapse_at_period_end_plus_carry_over_or_after_a_package_validity() -> None:
    """A period's credits lapse N periods after its end; a package's after its validity."""
    start, end = NOW, NOW + timedelta(days=31)
    kw = {"paid_at": NOW, "period_start": start, "period_end": end, "validity": timedelta(days=90)}
    assert rules.expires_at(kind="subscription", carry_over_periods=0, **kw) == end  # type: ignore[arg-type]
    assert rules.expires_at(kind="subscription", carry_over_periods=2, **kw) == end + timedelta(
        days=62
    )  # type: ignore[arg-type]
    assert rules.expires_at(kind="package", carry_over_periods=2, **kw) == NOW + timedelta(days=90)  # type: ignore[arg-type]


def test_stripe_statuses_map_to_purchase_statuses() -> None:
    """Every Stripe subscription status maps to a purchase status; unknown ones to none."""
    assert rules.purchase_status("active") == "active"
    assert rules.purchase_status("trialing") == "active"
    assert rules.purchase_status("past_due") == "past_due"
    assert rules.purchase_status("unpaid") == "past_due"
    assert rules.purchase_status("incomplete") == "checkout"
    assert rules.purchase_status("incomplete_expired") == "abandoned"
    assert rules.purchase_status("canceled") == "canceled"
    assert rules.purchase_status("something_new") is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sessions": 0},
        {"sessions": 1001},
        {"price": Money(0, "GBP")},
        {"kind": "weekly"},
        {"interval": "fortnight"},
        {"interval_count": 13},
        {"validity": timedelta(0)},
        {"carry_over_periods": 13},
    ],
)
def test_a_plan_with_impossible_terms_is_refused(kwargs: dict[str, object]) -> None:
    """PlanInfo refuses terms Stripe or the rules cannot honour, with a typed 400."""
    values: dict[str, object] = {
        "id": "p1",
        "mentor_id": "m1",
        "kind": "subscription",
        "price": Money(8000, "GBP"),
        "sessions": 4,
    } | kwargs
    with pytest.raises(InvalidRequestError) as info:
        PlanInfo(**values)  # type: ignore[arg-type]
    assert info.value.http_status == 400


def test_plan_labels_name_the_sessions_and_the_interval() -> None:
    """The line item the mentee sees says how many sessions, and how often."""
    monthly = PlanInfo("p1", "m1", "subscription", Money(8000, "GBP"), 4)
    assert monthly.label == "4 mentoring sessions per month"
    package = PlanInfo("p2", "m1", "package", Money(20000, "GBP"), 5)
    assert package.label == "5 mentoring sessions"
    named = PlanInfo("p3", "m1", "package", Money(1, "GBP"), 1, name="Intro call")
    assert named.label == "Intro call"
