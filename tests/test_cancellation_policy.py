"""The cancellation policy and the kept-fee refund targets, as properties with oracles written
from the rules (module docstring of mentorpay.cancellation, DESIGN.md section 4), not from the
code under test."""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mentorpay.cancellation import CancellationPolicy, RefundWindow, describe_notice
from mentorpay.commission import CommissionPolicy
from mentorpay.errors import InvalidRequestError
from mentorpay.ledger import rules
from mentorpay.ledger.state import PaymentState
from mentorpay.money import Money

POLICY = CancellationPolicy(
    windows=(RefundWindow(timedelta(hours=24), 5_000), RefundWindow(timedelta(hours=48), 10_000)),
    late_refund_bps=0,
    keep_fee_on_late=True,
)


def oracle_round(numerator: int, denominator: int) -> int:
    """Half-even rounding of an exact fraction, independently of the code under test."""
    return round(Fraction(numerator, denominator))  # Python's round is half-even on Fractions


def test_windows_pick_the_most_generous_one_met() -> None:
    """48h+ ahead refunds all, 24h+ half, later nothing; windows given in any order."""
    gbp = Money(5000, "GBP")
    payout = Money(4500, "GBP")
    cases = [(timedelta(hours=72), 5000), (timedelta(hours=30), 2500), (timedelta(hours=2), 0)]
    for notice, refund in cases:
        assert POLICY.decide("mentee", notice, remaining=gbp, payout_left=payout).refund == Money(
            refund, "GBP"
        )
    after_start = POLICY.decide("mentee", -timedelta(minutes=5), remaining=gbp, payout_left=payout)
    assert after_start.refund == Money(0, "GBP")


def test_mentor_and_platform_cancel_with_a_full_refund_and_the_fee_returned() -> None:
    """Whoever is not the mentee gets everything that remains back, even after the session."""
    for by in ("mentor", "platform"):
        decision = POLICY.decide(
            by, -timedelta(days=1), remaining=Money(3000, "GBP"), payout_left=Money(100, "GBP")
        )
        assert (decision.refund, decision.fee_kept) == (Money(3000, "GBP"), False)


def test_notices_read_as_hours() -> None:
    """Rules name their windows in hours ("24 hours"), odd notices to the minute."""
    assert describe_notice(timedelta(hours=24)) == "24 hours"
    assert describe_notice(timedelta(hours=1)) == "1 hour"
    assert describe_notice(timedelta(minutes=90)) == "1h30m"
    rule = POLICY.refund_bps("mentee", timedelta(hours=30))[1]
    assert rule == "cancelled by the mentee at least 24 hours ahead"


def test_bad_policies_and_inputs_are_refused() -> None:
    """Out-of-range basis points, negative notice, unknown canceller, no session time."""
    with pytest.raises(InvalidRequestError):
        RefundWindow(timedelta(hours=1), 10_001)
    with pytest.raises(InvalidRequestError):
        RefundWindow(timedelta(hours=-1), 100)
    with pytest.raises(InvalidRequestError):
        CancellationPolicy(late_refund_bps=-1)
    with pytest.raises(InvalidRequestError):
        POLICY.refund_bps("guest", timedelta(hours=1))  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        POLICY.refund_bps("mentee", None)


def test_three_decimal_currencies_refund_in_charge_steps() -> None:
    """KWD refunds end in 0 (Stripe's rule), rounded once to that step."""
    decision = CancellationPolicy(
        windows=(RefundWindow(timedelta(0), 3_333),), keep_fee_on_late=False
    ).decide(
        "mentee", timedelta(hours=1), remaining=Money(10_000, "KWD"), payout_left=Money(0, "KWD")
    )
    assert decision.refund == Money(3330, "KWD")


bps = st.integers(min_value=0, max_value=10_000)


@given(
    gross=st.integers(min_value=1, max_value=10**9),
    reversed_=st.integers(min_value=0, max_value=10**9),
    refund_bps=bps,
    keep=st.booleans(),
    by=st.sampled_from(["mentee", "mentor", "platform"]),
    notice_h=st.integers(min_value=-100, max_value=100),
    rate=bps,
)
def test_the_refund_never_exceeds_what_remains(
    *, gross: int, reversed_: int, refund_bps: int, keep: bool, by: str, notice_h: int, rate: int
) -> None:
    """The refund is the rounded percentage of what remains, capped by it (and the share left)."""
    # Fee kept: capped by the mentor's share left; the mentor and the platform refund it all.
    reversed_ = min(reversed_, gross)
    remaining = gross - reversed_
    split = CommissionPolicy(rate_bps=rate).split(Money(gross, "USD"))
    payout_left = max(0, split.mentor_payout.amount - reversed_)
    policy = CancellationPolicy(
        windows=(RefundWindow(timedelta(0), refund_bps),), keep_fee_on_late=keep
    )
    decision = policy.decide(
        by,  # type: ignore[arg-type]
        timedelta(hours=notice_h),
        remaining=Money(remaining, "USD"),
        payout_left=Money(payout_left, "USD"),
    )
    got = decision.refund.amount
    assert 0 <= got <= remaining
    if by != "mentee":
        assert got == remaining and not decision.fee_kept
        return
    pct = refund_bps if notice_h >= 0 else 0
    expected = oracle_round(remaining * pct, 10_000)
    late = pct < 10_000
    if late and keep:
        expected = min(expected, payout_left)
        assert decision.fee_kept
    assert got == expected


def state(gross: int, rate: int, **columns: int) -> PaymentState:
    """A captured USD payment of ``gross`` split at ``rate`` bps, with extra row columns."""
    split = CommissionPolicy(rate_bps=rate).split(Money(gross, "USD"))
    return PaymentState.from_mapping(
        {
            "id": 1,
            "payment_intent_id": "pi_1",
            "booking_id": "b",
            "mentor_id": "m",
            "mentee_id": "e",
            "currency": "USD",
            "status": "succeeded",
            "amount": gross,
            "platform_fee": split.platform_fee.amount,
            "mentor_payout": split.mentor_payout.amount,
            "rate_bps": rate,
            **columns,
        }
    )


def apply(s: PaymentState, change: rules.RefundChange) -> PaymentState:
    """The state after a refund change, as the service writes it."""
    return PaymentState.from_mapping({**{f: getattr(s, f) for f in s.__slots__}, **change.values})


@given(
    gross=st.integers(min_value=1, max_value=10**7),
    rate=bps,
    # Zero often: a late cancellation of an untouched payment is the common case.
    before=st.one_of(st.just(0), st.integers(min_value=0, max_value=10**7)),
    late_bps=bps,
    after=st.lists(st.integers(min_value=1, max_value=10**7), max_size=3),
    mentor_cancels=st.booleans(),
)
def test_fee_and_payout_reversed_add_up_exactly(
    *,
    gross: int,
    rate: int,
    before: int,
    late_bps: int,
    after: list[int],
    mentor_cancels: bool,
) -> None:
    """Fee and payout reversed add up exactly, whatever comes before and after a kept fee."""
    # Pro-rata refunds, then a mentee's late cancellation keeping the fee, then more refunds or
    # a mentor's full refund: each step's fee + payout is exactly its refund, the kept-fee step
    # takes nothing from the fee on an untouched payment, nothing goes negative or beyond the
    # split, and a full refund reverses exactly fee and payout.
    s = state(gross, rate)
    fee, payout = s.platform_fee, s.mentor_payout
    total = 0

    def refund_to(s: PaymentState, new_total: int) -> PaymentState:
        change = rules.refund_change(s, amount_refunded=new_total, refund_failed=0)
        delta = change.values["amount_reversed"] - s.amount_reversed
        assert change.delta == delta == change.fee + change.payout
        nxt = apply(s, change)
        assert 0 <= nxt.fee_reversed <= fee and 0 <= nxt.payout_reversed <= payout
        assert nxt.fee_reversed + nxt.payout_reversed == nxt.amount_reversed <= gross
        return nxt

    total = min(before, gross)
    if total:
        s = refund_to(s, total)
    # The mentee cancels late, the platform keeping its fee.
    decision = CancellationPolicy(
        windows=(RefundWindow(timedelta(hours=24), late_bps),), keep_fee_on_late=True
    ).decide(
        "mentee",
        timedelta(hours=25),
        remaining=Money(gross - s.amount_reversed, "USD"),
        payout_left=Money(s.mentor_payout - s.payout_reversed, "USD"),
    )
    kept = decision.refund.amount
    if decision.fee_kept and kept:
        assert kept <= s.mentor_payout - s.payout_reversed
        s = PaymentState.from_mapping(
            {**{f: getattr(s, f) for f in s.__slots__}, **rules.keep_fee(s, kept)}
        )
        fee_before = s.fee_reversed
        s = refund_to(s, total + kept)
        total += kept
        if before == 0:
            # A late cancellation on an untouched payment takes nothing from the fee.
            assert s.fee_reversed == fee_before == 0
    if mentor_cancels:
        s = refund_to(s, gross)
        assert (s.fee_reversed, s.payout_reversed) == (fee, payout)
        return
    for extra in after:
        total = min(gross, total + extra)
        s = refund_to(s, total)
    if total == gross:
        assert (s.fee_reversed, s.payout_reversed) == (fee, payout)


@given(gross=st.integers(min_value=1, max_value=10**7), rate=bps, kept_bps=bps)
def test_a_failed_kept_fee_refund_gives_back_exactly_what_it_took(
    gross: int, rate: int, kept_bps: int
) -> None:
    """A kept-fee refund that fails afterwards puts the mentor's share back exactly."""
    s = state(gross, rate)
    kept = oracle_round(s.mentor_payout * kept_bps, 10_000)
    if kept == 0:
        return
    s = PaymentState.from_mapping(
        {**{f: getattr(s, f) for f in s.__slots__}, **rules.keep_fee(s, kept)}
    )
    refunded = apply(s, rules.refund_change(s, amount_refunded=kept, refund_failed=0))
    assert (refunded.payout_reversed, refunded.fee_reversed) == (kept, 0)
    undone = rules.refund_change(refunded, amount_refunded=kept, refund_failed=kept)
    assert (undone.payout, undone.fee) == (-kept, 0)


def with_updates(s: PaymentState, updates: dict[str, object]) -> PaymentState:
    """The state after a plan's row updates."""
    return PaymentState.from_mapping({**{f: getattr(s, f) for f in s.__slots__}, **updates})


@given(
    gross=st.integers(min_value=1, max_value=10**7),
    rate=bps,
    kept_bps=bps,
    disputed_bps=st.integers(min_value=1, max_value=10_000),
    refund_first=st.booleans(),
)
def test_a_lost_dispute_after_a_kept_fee_stays_exact(
    *, gross: int, rate: int, kept_bps: int, disputed_bps: int, refund_first: bool
) -> None:
    """A dispute lost around a kept-fee refund reverses fee and payout within the split."""
    s = state(gross, rate)
    kept = oracle_round(s.mentor_payout * kept_bps, 10_000)
    s = with_updates(s, rules.keep_fee(s, kept))
    if refund_first and kept:
        s = apply(s, rules.refund_change(s, amount_refunded=kept, refund_failed=0))
    disputed = max(1, oracle_round((gross - s.amount_reversed) * disputed_bps, 10_000))
    opening = rules.dispute_opened(s, Money(disputed, "USD"))
    if opening.plan is None:
        return
    s = with_updates(s, opening.plan.updates)
    closing = rules.dispute_closed(s, held=opening.hold, disputed=opening.disputed, won=False)
    s = with_updates(s, closing.updates)
    assert s.fee_reversed + s.payout_reversed == s.amount_reversed <= gross
    assert 0 <= s.fee_reversed <= s.platform_fee and 0 <= s.payout_reversed <= s.mentor_payout
    if not refund_first and kept:
        # The kept-fee refund arrives after the lost dispute: still exact, never beyond gross
        # (Stripe's amount_refunded counts refunds only; the ledger clamps to what is left).
        s = apply(s, rules.refund_change(s, amount_refunded=kept, refund_failed=0))
        assert s.fee_reversed + s.payout_reversed == s.amount_reversed <= gross
        assert 0 <= s.fee_reversed <= s.platform_fee and 0 <= s.payout_reversed <= s.mentor_payout
    if s.amount_reversed == gross:
        assert (s.fee_reversed, s.payout_reversed) == (s.platform_fee, s.mentor_payout)
    legs = closing.legs or []
    assert sum(amount for _, _, amount in legs) == 0
