"""Tests for mentorpay.commission: exact splits, fee bounds, refund allocation, overrides."""

from __future__ import annotations

import itertools
from decimal import (
    ROUND_DOWN,
    ROUND_HALF_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
    localcontext,
)
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mentorpay import commission as commission_module
from mentorpay.commission import (
    CommissionPolicy,
    Rounding,
    Split,
    _div_round,
    resolve_policy,
    split_refund,
)
from mentorpay.errors import CurrencyMismatchError, InvalidAmountError
from mentorpay.money import Money, charge_increment, supported_currencies

ALL_CURRENCIES = supported_currencies()
ROUNDINGS: tuple[Rounding, ...] = get_args(Rounding)
DECIMAL_MODES = {
    "half_even": ROUND_HALF_EVEN,
    "half_up": ROUND_HALF_UP,
    "half_down": ROUND_HALF_DOWN,
    "down": ROUND_DOWN,
    "up": ROUND_UP,
}


def test_all_dunder_all_is_sorted_and_exported() -> None:
    """commission.__all__ is sorted and every listed name exists."""
    assert list(commission_module.__all__) == sorted(commission_module.__all__)
    for name in commission_module.__all__:
        assert hasattr(commission_module, name)


# -- _div_round -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rounding", "expected"),
    [
        ("half_even", [-2, -2, 0, 0, 2, 2]),
        ("half_up", [-3, -2, -1, 1, 2, 3]),
        ("half_down", [-2, -1, 0, 0, 1, 2]),
        ("down", [-2, -1, 0, 0, 1, 2]),
        ("up", [-3, -2, -1, 1, 2, 3]),
    ],
)
def test_div_round_ties(rounding: Rounding, expected: list[int]) -> None:
    """Exact halves (-2.5, -1.5, -0.5, 0.5, 1.5, 2.5) round per mode, symmetric around zero."""
    assert [_div_round(n, 2, rounding) for n in (-5, -3, -1, 1, 3, 5)] == expected


@settings(max_examples=300, deadline=None)
@given(
    numerator=st.integers(min_value=-(10**20), max_value=10**20),
    denominator=st.integers(min_value=1, max_value=10**9),
    rounding=st.sampled_from(ROUNDINGS),
)
def test_div_round_matches_decimal_quantize(
    numerator: int, denominator: int, rounding: Rounding
) -> None:
    """The integer-only rounding agrees with Decimal's rounding modes at high precision."""
    # At 80 digits Decimal division of these magnitudes is precise enough to decide every tie.
    with localcontext() as ctx:
        ctx.prec = 80
        exact = Decimal(numerator) / Decimal(denominator)
        expected = int(exact.quantize(Decimal(1), rounding=DECIMAL_MODES[rounding]))
    assert _div_round(numerator, denominator, rounding) == expected


# -- split ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gross", "fee", "payout"),
    [("50", "5", "45"), ("100", "10", "90"), ("150", "15", "135"), ("200", "20", "180")],
)
def test_seed_table_gbp(gross: str, fee: str, payout: str) -> None:
    """The original app's table: GBP 50/100/150/200 at 10% -> fees 5/10/15/20."""
    s = CommissionPolicy(rate_bps=1000).split(Money.parse(gross, "GBP"))
    assert s.gross == Money.parse(gross, "GBP")
    assert s.platform_fee == Money.parse(fee, "GBP")
    assert s.mentor_payout == Money.parse(payout, "GBP")
    assert s.rate_bps == 1000
    assert s.rounding == "half_even"


@pytest.mark.parametrize(("gross", "fee"), [(50, 5), (100, 10), (150, 15), (200, 20)])
def test_seed_table_in_minor_units(gross: int, fee: int) -> None:
    """The same seed table holds in pence: 50p -> 5p fee, 45p payout."""
    s = CommissionPolicy(rate_bps=1000).split(Money(gross, "GBP"))
    assert s.platform_fee == Money(fee, "GBP")
    assert s.mentor_payout == Money(gross - fee, "GBP")


def test_design_example() -> None:
    """DESIGN section 2: 50.00 GBP at 10% -> fee 5.00, payout 45.00."""
    s = CommissionPolicy(rate_bps=1000).split(Money(5000, "GBP"))
    assert s == Split(Money(5000, "GBP"), Money(500, "GBP"), Money(4500, "GBP"), 1000)


@pytest.mark.parametrize(
    ("gross", "rate_bps", "rounding", "fee"),
    [
        (Money(1000, "JPY"), 1000, "half_even", 100),
        (Money(1005, "JPY"), 1000, "half_even", 100),  # 100.5 -> 100 (even)
        (Money(1015, "JPY"), 1000, "half_even", 102),  # 101.5 -> 102 (even)
        (Money(1005, "JPY"), 1000, "half_up", 101),
        (Money(1005, "JPY"), 1000, "down", 100),
        (Money(1001, "JPY"), 1000, "up", 101),
        (Money(55555, "KRW"), 1250, "half_even", 6944),  # 6944.375
        (Money(55555, "KRW"), 1250, "up", 6945),
        (Money(1500, "KWD"), 1000, "half_even", 150),  # 1.500 KWD -> 0.150
        (Money(1234, "KWD"), 1000, "half_even", 123),  # 123.4
        (Money(12345, "BHD"), 1000, "half_up", 1235),  # 1234.5
        (Money(12345, "BHD"), 1000, "half_down", 1234),
        (Money(50000, "ISK"), 1000, "half_even", 5000),  # 500 ISK -> 50 ISK
        (Money(500000, "UGX"), 1500, "half_even", 75000),  # 5000 UGX -> 750 UGX
        # Fees keep the charge step: 155.5 UGX rounds (half-even) to a whole 156 UGX.
        (Money(155500, "UGX"), 1000, "half_even", 15600),
        (Money(1240, "KWD"), 1000, "half_even", 120),  # 0.124 KWD -> 0.120 (10-fils step)
    ],
)
def test_explicit_currency_cases(gross: Money, rate_bps: int, rounding: Rounding, fee: int) -> None:
    """Worked examples in zero-decimal (JPY, KRW), three-decimal (KWD, BHD), ISK and UGX."""
    s = CommissionPolicy(rate_bps=rate_bps, rounding=rounding).split(gross)
    assert s.platform_fee == Money(fee, gross.currency)
    assert s.mentor_payout == Money(gross.amount - fee, gross.currency)
    assert s.platform_fee + s.mentor_payout == gross


def test_rate_extremes() -> None:
    """0 bps keeps nothing; 10000 bps keeps everything."""
    g = Money(12345, "USD")
    assert CommissionPolicy(rate_bps=0).split(g).platform_fee == Money(0, "USD")
    assert CommissionPolicy(rate_bps=10000).split(g).mentor_payout == Money(0, "USD")


def test_split_of_zero_is_zero() -> None:
    """A zero gross splits into zero fee and zero payout, even with a minimum fee."""
    s = CommissionPolicy(rate_bps=1000, min_fee=30).split(Money(0, "GBP"))
    assert s.platform_fee == Money(0, "GBP")
    assert s.mentor_payout == Money(0, "GBP")


def test_split_rejects_negative_gross() -> None:
    """Splitting a negative amount raises InvalidAmountError."""
    with pytest.raises(InvalidAmountError):
        CommissionPolicy(rate_bps=1000).split(Money(-1, "GBP"))


def test_split_rejects_non_money() -> None:
    """split() takes Money, not a bare int."""
    with pytest.raises(TypeError):
        CommissionPolicy(rate_bps=1000).split(5000)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    amount=st.integers(min_value=0, max_value=10**12),
    rate_bps=st.integers(min_value=0, max_value=10_000),
)
def test_fee_plus_payout_is_gross_for_every_currency_and_rounding(
    amount: int, rate_bps: int
) -> None:
    """fee + payout == gross for any amount, rate, every currency and every rounding mode."""
    for rounding in ROUNDINGS:
        policy = CommissionPolicy(rate_bps=rate_bps, rounding=rounding)
        exact_times_10000 = amount * rate_bps
        for code in ALL_CURRENCIES:
            gross = Money(amount, code)
            s = policy.split(gross)
            assert s.platform_fee + s.mentor_payout == gross
            assert 0 <= s.platform_fee.amount <= amount
            assert s.mentor_payout.amount >= 0
            # The fee is the exact fee rounded once to the currency's charge step (1 minor unit,
            # or 10 / 100 when the gross is a multiple of that step): within one step of it.
            step = charge_increment(code) if amount % charge_increment(code) == 0 else 1
            assert s.platform_fee.amount % step == 0
            assert abs(s.platform_fee.amount * 10_000 - exact_times_10000) < 10_000 * step


@settings(max_examples=100, deadline=None)
@given(
    amount=st.integers(min_value=0, max_value=10**12),
    rate_bps=st.integers(min_value=0, max_value=10_000),
    bounds=st.tuples(
        st.none() | st.integers(min_value=0, max_value=10**6),
        st.none() | st.integers(min_value=0, max_value=10**6),
    ),
    rounding=st.sampled_from(ROUNDINGS),
    code=st.sampled_from(ALL_CURRENCIES),
)
def test_fee_bounds_hold_and_never_exceed_gross(
    amount: int,
    rate_bps: int,
    bounds: tuple[int | None, int | None],
    rounding: Rounding,
    code: str,
) -> None:
    """With min/max fees, the fee is the rounded fee clamped to [min, max] then to [0, gross]."""
    low, high = bounds
    if low is not None and high is not None and low > high:
        low, high = high, low
    policy = CommissionPolicy(rate_bps=rate_bps, rounding=rounding, min_fee=low, max_fee=high)
    s = policy.split(Money(amount, code))
    unclamped = CommissionPolicy(rate_bps=rate_bps, rounding=rounding).split(Money(amount, code))
    expected = unclamped.platform_fee.amount
    if low is not None:
        expected = max(expected, low)
    if high is not None:
        expected = min(expected, high)
    expected = min(expected, amount)
    assert s.platform_fee.amount == expected
    assert s.platform_fee + s.mentor_payout == s.gross


def test_min_fee_clamps_small_payments() -> None:
    """A 0.30 GBP minimum fee applies when 10% would be less."""
    policy = CommissionPolicy(rate_bps=1000, min_fee=30)
    assert policy.split(Money(200, "GBP")).platform_fee == Money(30, "GBP")
    assert policy.split(Money(5000, "GBP")).platform_fee == Money(500, "GBP")


def test_max_fee_caps_large_payments() -> None:
    """A 20.00 GBP maximum fee caps 10% of 500.00 GBP."""
    policy = CommissionPolicy(rate_bps=1000, max_fee=2000)
    s = policy.split(Money(50000, "GBP"))
    assert s.platform_fee == Money(2000, "GBP")
    assert s.mentor_payout == Money(48000, "GBP")


def test_min_fee_never_exceeds_gross() -> None:
    """A minimum fee above the gross takes the whole gross, never more."""
    s = CommissionPolicy(rate_bps=1000, min_fee=500).split(Money(200, "GBP"))
    assert s.platform_fee == Money(200, "GBP")
    assert s.mentor_payout == Money(0, "GBP")


def test_equal_min_and_max_fee_is_a_flat_fee() -> None:
    """min_fee == max_fee gives a flat fee (capped by the gross)."""
    policy = CommissionPolicy(rate_bps=1000, min_fee=100, max_fee=100)
    assert policy.split(Money(99999, "USD")).platform_fee == Money(100, "USD")
    assert policy.split(Money(50, "USD")).platform_fee == Money(50, "USD")


# -- policy validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_bps": -1},
        {"rate_bps": 10_001},
        {"rate_bps": 1000, "rounding": "bankers"},
        {"rate_bps": 1000, "rounding": "HALF_EVEN"},
        {"rate_bps": 1000, "rounding": None},
        {"rate_bps": 1000, "min_fee": -1},
        {"rate_bps": 1000, "max_fee": -5},
        {"rate_bps": 1000, "min_fee": 100, "max_fee": 99},
    ],
)
def test_invalid_policies_raise_invalid_amount(kwargs: dict[str, object]) -> None:
    """Out-of-range rates, unknown roundings, negative or inverted fee bounds are refused."""
    with pytest.raises(InvalidAmountError):
        CommissionPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_bps": 10.0},
        {"rate_bps": Decimal(1000)},
        {"rate_bps": "1000"},
        {"rate_bps": True},
        {"rate_bps": 1000, "min_fee": 1.5},
        {"rate_bps": 1000, "max_fee": Decimal(5)},
    ],
)
def test_non_int_policy_numbers_raise_type_error(kwargs: dict[str, object]) -> None:
    """Floats, Decimals, strings and bools as rates or fee bounds raise TypeError."""
    with pytest.raises(TypeError):
        CommissionPolicy(**kwargs)  # type: ignore[arg-type]


def test_valid_policy_keeps_its_fields() -> None:
    """A valid policy is a frozen record of its terms."""
    policy = CommissionPolicy(rate_bps=1500, rounding="up", min_fee=0, max_fee=0)
    assert (policy.rate_bps, policy.rounding, policy.min_fee, policy.max_fee) == (1500, "up", 0, 0)
    with pytest.raises(AttributeError):
        policy.rate_bps = 1  # type: ignore[misc]


# -- Split invariant ------------------------------------------------------------------------


def test_split_invariant_requires_fee_plus_payout_equal_gross() -> None:
    """A Split whose parts do not add up is refused."""
    with pytest.raises(InvalidAmountError):
        Split(Money(100, "GBP"), Money(10, "GBP"), Money(91, "GBP"), 1000)


def test_split_invariant_requires_one_currency() -> None:
    """A Split mixing currencies raises CurrencyMismatchError."""
    with pytest.raises(CurrencyMismatchError):
        Split(Money(100, "GBP"), Money(10, "USD"), Money(90, "GBP"), 1000)


def test_split_invariant_refuses_negative_parts() -> None:
    """A Split cannot hide a negative fee behind a larger payout."""
    with pytest.raises(InvalidAmountError):
        Split(Money(100, "GBP"), Money(-10, "GBP"), Money(110, "GBP"), 1000)


@pytest.mark.parametrize(
    ("rate_bps", "rounding", "error"),
    [(-1, "half_even", InvalidAmountError), (1000, "nope", InvalidAmountError)],
)
def test_split_validates_its_terms(rate_bps: int, rounding: str, error: type[Exception]) -> None:
    """A Split's stored rate and rounding must be valid."""
    with pytest.raises(error):
        Split(Money(100, "GBP"), Money(10, "GBP"), Money(90, "GBP"), rate_bps, rounding)  # type: ignore[arg-type]


def test_split_requires_money_fields() -> None:
    """A Split's amounts must be Money."""
    with pytest.raises(TypeError):
        Split(100, Money(10, "GBP"), Money(90, "GBP"), 1000)  # type: ignore[arg-type]


# -- refunds --------------------------------------------------------------------------------


def test_design_refund_example() -> None:
    """DESIGN section 2: refunding 20.00 of a 50.00 GBP payment reverses 2.00 fee, 18.00 payout."""
    policy = CommissionPolicy(rate_bps=1000)
    s = policy.split(Money(5000, "GBP"))
    r = policy.split_refund(s, already_refunded=Money(0, "GBP"), refund=Money(2000, "GBP"))
    assert r == Split(Money(2000, "GBP"), Money(200, "GBP"), Money(1800, "GBP"), 1000)


def test_three_equal_refunds_reverse_exactly() -> None:
    """Refunding 1.00 GBP in three parts (33/33/34p) reverses exactly the 10p fee and 90p payout."""
    s = CommissionPolicy(rate_bps=1000).split(Money(100, "GBP"))
    parts = []
    done = Money(0, "GBP")
    for amount in (33, 33, 34):
        part = split_refund(s, done, Money(amount, "GBP"))
        parts.append(part)
        done = done + part.gross
    assert sum(p.platform_fee.amount for p in parts) == 10
    assert sum(p.mentor_payout.amount for p in parts) == 90
    # Payout targets: round(90 * 33 / 100) = 30, round(90 * 66 / 100) = 59, 90.
    assert [p.mentor_payout.amount for p in parts] == [30, 29, 31]


def test_refund_uses_the_originals_rounding_not_the_policys() -> None:
    """CommissionPolicy.split_refund follows the stored split's rounding and rate."""
    old = CommissionPolicy(rate_bps=1000, rounding="up").split(Money(105, "JPY"))
    assert old.platform_fee == Money(11, "JPY")
    today = CommissionPolicy(rate_bps=2000, rounding="down")
    part = today.split_refund(old, already_refunded=Money(0, "JPY"), refund=Money(1, "JPY"))
    # payout target: 94 * 1 / 105 = 0.895... rounded "up" -> 1 (would be 0 with "down").
    assert part.mentor_payout == Money(1, "JPY")
    assert part.rounding == "up"
    assert part.rate_bps == 1000
    assert part == split_refund(old, Money(0, "JPY"), Money(1, "JPY"))


def test_refund_above_remaining_is_refused() -> None:
    """A refund larger than what is left to refund raises InvalidAmountError."""
    s = CommissionPolicy(rate_bps=1000).split(Money(5000, "GBP"))
    with pytest.raises(InvalidAmountError) as info:
        split_refund(s, Money(4000, "GBP"), Money(1001, "GBP"))
    assert info.value.details["refundable"] == 1000
    with pytest.raises(InvalidAmountError):
        split_refund(s, Money(0, "GBP"), Money(5001, "GBP"))
    with pytest.raises(InvalidAmountError):
        split_refund(s, Money(5001, "GBP"), Money(0, "GBP"))
    # Exactly the remainder is fine.
    assert split_refund(s, Money(4000, "GBP"), Money(1000, "GBP")).gross == Money(1000, "GBP")


def test_negative_refunds_are_refused() -> None:
    """Negative refund or already-refunded amounts raise InvalidAmountError."""
    s = CommissionPolicy(rate_bps=1000).split(Money(5000, "GBP"))
    with pytest.raises(InvalidAmountError):
        split_refund(s, Money(0, "GBP"), Money(-1, "GBP"))
    with pytest.raises(InvalidAmountError):
        split_refund(s, Money(-1, "GBP"), Money(1, "GBP"))


def test_refund_in_another_currency_is_refused() -> None:
    """Refunding USD against a GBP payment raises CurrencyMismatchError."""
    s = CommissionPolicy(rate_bps=1000).split(Money(5000, "GBP"))
    with pytest.raises(CurrencyMismatchError):
        split_refund(s, Money(0, "GBP"), Money(100, "USD"))
    with pytest.raises(CurrencyMismatchError):
        split_refund(s, Money(0, "USD"), Money(100, "GBP"))


def test_refund_of_a_zero_payment() -> None:
    """For a zero gross only a zero refund is allowed, and it splits into zeros."""
    s = CommissionPolicy(rate_bps=1000).split(Money(0, "EUR"))
    r = split_refund(s, Money(0, "EUR"), Money(0, "EUR"))
    assert r == Split(Money(0, "EUR"), Money(0, "EUR"), Money(0, "EUR"), 1000)
    with pytest.raises(InvalidAmountError):
        split_refund(s, Money(0, "EUR"), Money(1, "EUR"))


def test_split_refund_type_checks() -> None:
    """split_refund takes a Split and Money amounts."""
    s = CommissionPolicy(rate_bps=1000).split(Money(5000, "GBP"))
    with pytest.raises(TypeError):
        split_refund("split", Money(0, "GBP"), Money(1, "GBP"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        split_refund(s, 0, Money(1, "GBP"))  # type: ignore[arg-type]


@st.composite
def refund_scenarios(
    draw: st.DrawFn,
) -> tuple[CommissionPolicy, Money, list[int]]:
    """A policy, a gross amount and a random partition of the gross into refund parts."""
    code = draw(st.sampled_from(ALL_CURRENCIES))
    gross = draw(st.integers(min_value=0, max_value=10**9) | st.integers(min_value=0, max_value=50))
    rate_bps = draw(st.integers(min_value=0, max_value=10_000))
    rounding = draw(st.sampled_from(ROUNDINGS))
    min_fee = draw(st.none() | st.integers(min_value=0, max_value=10**4))
    max_fee = draw(st.none() | st.integers(min_value=min_fee or 0, max_value=10**7))
    cuts = draw(st.lists(st.integers(min_value=0, max_value=gross), max_size=12))
    points = [0, *sorted(cuts), gross]
    parts = [b - a for a, b in itertools.pairwise(points)]
    policy = CommissionPolicy(
        rate_bps=rate_bps, rounding=rounding, min_fee=min_fee, max_fee=max_fee
    )
    return policy, Money(gross, code), parts


@settings(max_examples=300, deadline=None)
@given(scenario=refund_scenarios())
def test_any_partial_refund_sequence_reverses_exactly(
    scenario: tuple[CommissionPolicy, Money, list[int]],
) -> None:
    """Any partition of G into refunds reverses exactly F and P, never overshooting on the way."""
    policy, gross, parts = scenario
    original = policy.split(gross)
    fee, payout = original.platform_fee.amount, original.mentor_payout.amount
    refunded = Money.zero(gross.currency)
    fee_reversed = payout_reversed = 0
    for amount in parts:
        part = policy.split_refund(original, refunded, Money(amount, gross.currency))
        assert part.gross == Money(amount, gross.currency)
        assert part.platform_fee.amount >= 0
        assert part.mentor_payout.amount >= 0
        assert part.platform_fee + part.mentor_payout == part.gross
        fee_reversed += part.platform_fee.amount
        payout_reversed += part.mentor_payout.amount
        refunded = refunded + part.gross
        assert fee_reversed <= fee
        assert payout_reversed <= payout
    assert refunded == gross
    assert fee_reversed == fee
    assert payout_reversed == payout
    # Nothing is left to refund.
    if gross.amount:
        with pytest.raises(InvalidAmountError):
            split_refund(original, refunded, Money(1, gross.currency))


@settings(max_examples=100, deadline=None)
@given(scenario=refund_scenarios())
def test_refund_parts_depend_only_on_the_cumulative_state(
    scenario: tuple[CommissionPolicy, Money, list[int]],
) -> None:
    """Refunding a then b reverses the same total as refunding a + b at once (idempotent replay)."""
    policy, gross, parts = scenario
    original = policy.split(gross)
    zero = Money.zero(gross.currency)
    if len(parts) < 2:
        return
    a, b = Money(parts[0], gross.currency), Money(parts[1], gross.currency)
    first = split_refund(original, zero, a)
    second = split_refund(original, a, b)
    together = split_refund(original, zero, a + b)
    assert first.mentor_payout + second.mentor_payout == together.mentor_payout
    assert first.platform_fee + second.platform_fee == together.platform_fee


# -- overrides ------------------------------------------------------------------------------


def test_resolve_policy_uses_override_or_default() -> None:
    """A resolver's override wins for its mentor; None or no resolver means the default."""
    default = CommissionPolicy(rate_bps=1000)
    vip = CommissionPolicy(rate_bps=500)
    overrides = {"3": vip}

    assert resolve_policy(default, None, "3") is default
    assert resolve_policy(default, overrides.get, "3") is vip
    assert resolve_policy(default, overrides.get, "4") is default


def test_resolve_policy_rejects_a_resolver_returning_garbage() -> None:
    """A resolver returning something other than a policy or None raises TypeError."""
    with pytest.raises(TypeError):
        resolve_policy(CommissionPolicy(rate_bps=1000), lambda _id: 500, "3")  # type: ignore[arg-type,return-value]
