"""Tests that kill surviving mutants of mentorpay.money and mentorpay.commission.

Each test names, in its docstring, the injected fault (``original -> mutant``) it catches; see
scripts/mutation.sh and the README's "Mutation testing" section.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from mentorpay.commission import CommissionPolicy, split_refund
from mentorpay.errors import InvalidAmountError
from mentorpay.money import (
    Money,
    allocate,
    minimum_charge_amount,
    supported_currencies,
)

# Stripe's "Minimum and maximum charge amounts" table, in minor units (checked 2026-11), for
# every currency mentorpay records a minimum for; every other currency has none recorded.
STRIPE_MINIMUMS = {
    "AED": 200,
    "AUD": 50,
    "BRL": 50,
    "CAD": 50,
    "CHF": 50,
    "CZK": 1500,
    "DKK": 250,
    "EUR": 50,
    "GBP": 30,
    "HKD": 400,
    "HUF": 17500,
    "INR": 50,
    "JPY": 50,
    "MXN": 1000,
    "MYR": 200,
    "NOK": 300,
    "NZD": 50,
    "PLN": 200,
    "RON": 200,
    "SEK": 300,
    "SGD": 50,
    "THB": 1000,
    "USD": 50,
}


# -- comparisons (issue 14, survivor 3) ---------------------------------------------------------


def test_equal_amounts_are_not_greater_or_less() -> None:
    """Kills `>` -> `>=` in Money.__gt__ and `<` -> `<=` in __lt__: equal is neither."""
    a, b = Money(500, "GBP"), Money(500, "GBP")
    assert not a > b
    assert not a < b
    assert a >= b
    assert a <= b


def test_strict_order_of_neighbouring_amounts() -> None:
    """Kills `>=` -> `>` in __ge__ and `<=` -> `<` in __le__ (and swapped operands) by one unit."""
    low, high = Money(499, "GBP"), Money(500, "GBP")
    assert high > low and high >= low and not high < low and not high <= low
    assert low < high and low <= high and not low > high and not low >= high


# -- allocate (survivor 7) ----------------------------------------------------------------------


def test_allocate_rejects_a_negative_weight_even_with_a_positive_sum() -> None:
    """Kills deleting the negative-weight guard: [2, -1] sums to 1 but is still refused."""
    with pytest.raises(InvalidAmountError):
        allocate(Money(100, "USD"), [2, -1])


def test_allocate_with_a_single_unit_weight_returns_the_total() -> None:
    """Kills `weight_sum <= 0` -> `<= 1`: one weight of 1 is a valid split into one part."""
    assert allocate(Money(100, "USD"), [1]) == [Money(100, "USD")]
    assert allocate(Money(7, "USD"), [0, 1]) == [Money(0, "USD"), Money(7, "USD")]


# -- minimum charges (survivor 8) ---------------------------------------------------------------


def test_every_recorded_minimum_charge_matches_stripes_table() -> None:
    """Kills any minimum in the currency table being off by one (17 of 22 were unpinned)."""
    for code, minimum in STRIPE_MINIMUMS.items():
        assert minimum_charge_amount(code) == minimum, code
    for code in set(supported_currencies()) - set(STRIPE_MINIMUMS):
        assert minimum_charge_amount(code) is None, code


# -- parse limits (survivor 10) -----------------------------------------------------------------


def test_parse_accepts_exactly_the_maximum_length() -> None:
    """Kills `len(stripped) > 64` -> `>= 64` and 64 -> 65: 64 characters parse, 65 do not."""
    ok = "0" * 26 + "1" * 36 + ".5"  # 64 characters, 36 significant integer digits
    assert len(ok) == 64
    assert Money.parse(ok, "GBP").amount == int("1" * 36) * 100 + 50
    assert Money.parse(f"  {ok}  ", "GBP").amount == int("1" * 36) * 100 + 50
    with pytest.raises(InvalidAmountError, match="longer than 64"):
        Money.parse("0" + ok, "GBP")


def test_parse_accepts_exactly_the_maximum_integer_digits() -> None:
    """Kills `len(digits) + exp > 40` -> `>= 40` and 40 -> 41: 40 digits parse, 41 do not."""
    forty = "9" * 40
    assert Money.parse(forty, "JPY").amount == int(forty)
    assert Money.parse(Decimal(forty), "JPY").amount == int(forty)
    with pytest.raises(InvalidAmountError, match="too large"):
        Money.parse("9" * 41, "JPY")
    with pytest.raises(InvalidAmountError, match="too large"):
        Money.parse(Decimal("1E40"), "JPY")


# -- Money is a value (found by scripts/mutation.sh) ---------------------------------------------


def test_money_is_immutable_and_hashable() -> None:
    """Kills Money's `frozen=True -> frozen=False`: amounts cannot change and work as dict keys."""
    m = Money(500, "GBP")
    with pytest.raises(AttributeError):
        m.amount = 600  # type: ignore[misc]
    assert {m: "x"}[Money(500, "gbp")] == "x"


def test_parse_refuses_non_ascii_space_before_the_code() -> None:
    """Kills `re.ASCII | re.DOTALL` -> `&` on the code-suffix regex: only ASCII spaces separate."""
    with pytest.raises(InvalidAmountError):
        Money.parse("50.00\u2003GBP", "GBP")
    assert Money.parse("50.00 \t GBP", "GBP") == Money(5000, "GBP")


def test_split_is_immutable_and_hashable() -> None:
    """Kills Split's `frozen=True -> frozen=False`: a payment's frozen terms cannot be edited."""
    split = CommissionPolicy(rate_bps=1000).split(Money(5000, "GBP"))
    with pytest.raises(AttributeError):
        split.rate_bps = 0  # type: ignore[misc]
    assert len({split, CommissionPolicy(rate_bps=1000).split(Money(5000, "GBP"))}) == 1


def test_allocate_refuses_weights_that_are_not_a_sequence() -> None:
    """Kills `str | bytes or not Sequence` -> `and`: a set (unordered) is refused, not split."""
    with pytest.raises(TypeError):
        allocate(Money(100, "USD"), {1, 2})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        allocate(Money(100, "USD"), (w for w in [1, 2]))  # type: ignore[arg-type]


def test_split_refund_refuses_a_refund_that_is_not_money() -> None:
    """Kills deleting `_check_money(refund, ...)` in split_refund: a bare int is a TypeError."""
    split = CommissionPolicy(rate_bps=1000).split(Money(5000, "GBP"))
    with pytest.raises(TypeError, match="refund must be Money"):
        split_refund(split, Money(0, "GBP"), 100)  # type: ignore[arg-type]
