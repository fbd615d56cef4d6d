"""Tests for mentorpay.money: Money, Stripe's currency rules, parse/format and allocate()."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mentorpay import money as money_module
from mentorpay.errors import CurrencyMismatchError, InvalidAmountError, UnknownCurrencyError
from mentorpay.money import (
    Money,
    allocate,
    charge_increment,
    check_charge_amount,
    check_payout_amount,
    currency_exponent,
    minimum_charge_amount,
    normalize_currency,
    payout_increment,
    supported_currencies,
)

ALL_CURRENCIES = supported_currencies()

ZERO_DECIMAL: tuple[str, ...] = (
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "JPY",
    "KMF",
    "KRW",
    "MGA",
    "PYG",
    "RWF",
    "VND",
)
ZERO_DECIMAL += ("VUV", "XAF", "XOF", "XPF")
THREE_DECIMAL = ("BHD", "JOD", "KWD", "OMR", "TND")
COMMON_TWO_DECIMAL: tuple[str, ...] = (
    "USD",
    "EUR",
    "GBP",
    "AUD",
    "CAD",
    "CHF",
    "SEK",
    "NOK",
    "DKK",
    "PLN",
)
COMMON_TWO_DECIMAL += ("CZK", "HUF", "RON", "BGN", "NZD", "SGD", "HKD", "MXN", "BRL", "INR")
COMMON_TWO_DECIMAL += ("ZAR", "AED", "TRY", "ILS", "THB", "MYR", "PHP", "IDR", "TWD", "ISK", "UGX")


# -- the currency table ---------------------------------------------------------------------


def test_all_dunder_all_is_sorted_and_exported() -> None:
    """money.__all__ is sorted and every listed name exists."""
    assert list(money_module.__all__) == sorted(money_module.__all__)
    for name in money_module.__all__:
        assert hasattr(money_module, name)


@pytest.mark.parametrize("code", ZERO_DECIMAL)
def test_zero_decimal_currencies_have_exponent_zero(code: str) -> None:
    """Every currency on Stripe's zero-decimal list (except UGX) has exponent 0."""
    assert currency_exponent(code) == 0


@pytest.mark.parametrize("code", THREE_DECIMAL)
def test_three_decimal_currencies_have_exponent_three(code: str) -> None:
    """BHD JOD KWD OMR TND have exponent 3 and charges/payouts in steps of 10."""
    assert currency_exponent(code) == 3
    assert charge_increment(code) == 10
    assert payout_increment(code) == 10


@pytest.mark.parametrize("code", COMMON_TWO_DECIMAL)
def test_common_presentment_currencies_are_two_decimal(code: str) -> None:
    """Common Stripe presentment currencies, including the special cases, use exponent 2."""
    assert currency_exponent(code) == 2


def test_table_holds_a_few_dozen_currencies_with_known_exponents() -> None:
    """The table is broad and every exponent is one Stripe uses (0, 2 or 3)."""
    assert len(ALL_CURRENCIES) >= 50
    assert {currency_exponent(c) for c in ALL_CURRENCIES} == {0, 2, 3}
    assert list(ALL_CURRENCIES) == sorted(ALL_CURRENCIES)


def test_normalize_currency_upper_cases_known_codes() -> None:
    """normalize_currency accepts any case and returns the upper-case code."""
    assert normalize_currency("gbp") == "GBP"
    assert normalize_currency("Jpy") == "JPY"


@pytest.mark.parametrize("bad", ["XXX", "", "GB", "GBPP", " gbp", "usd\n"])
def test_normalize_currency_rejects_unknown_codes(bad: str) -> None:
    """Unknown codes raise UnknownCurrencyError carrying the code."""
    with pytest.raises(UnknownCurrencyError) as info:
        normalize_currency(bad)
    assert info.value.details["currency"] == bad
    assert isinstance(info.value, InvalidAmountError)


@pytest.mark.parametrize("bad", [None, 840, b"GBP", ["GBP"]])
def test_normalize_currency_rejects_non_strings(bad: object) -> None:
    """Non-string currency codes raise UnknownCurrencyError, not a bare TypeError."""
    with pytest.raises(UnknownCurrencyError) as info:
        normalize_currency(bad)  # type: ignore[arg-type]
    assert "currency" in info.value.details


def test_currency_exponent_rejects_unknown_currency() -> None:
    """currency_exponent raises UnknownCurrencyError for an unknown code."""
    with pytest.raises(UnknownCurrencyError):
        currency_exponent("ZZZ")


# -- Stripe's amount rules, one test per rule --------------------------------------------------


@pytest.mark.parametrize("code", ["JPY", "KRW"])
def test_zero_decimal_amount_is_whole_units(code: str) -> None:
    """JPY/KRW: amount 500 means 500 units, any positive integer is a valid charge."""
    m = Money(500, code)
    assert str(m) == f"500 {code}"
    assert m.to_decimal() == Decimal(500)
    check_charge_amount(Money(1, code))
    check_charge_amount(Money(501, code))
    check_payout_amount(Money(501, code))


@pytest.mark.parametrize("code", ["KWD", "BHD"])
def test_three_decimal_charges_must_end_in_zero(code: str) -> None:
    """KWD/BHD: 5.124 is stored as 5124 but Stripe only takes amounts ending in 0."""
    assert Money.parse("5.124", code) == Money(5124, code)
    check_charge_amount(Money(5120, code))
    check_charge_amount(Money(5130, code))
    with pytest.raises(InvalidAmountError) as info:
        check_charge_amount(Money(5124, code))
    assert info.value.details["amount"] == 5124
    assert info.value.details["currency"] == code
    assert info.value.details["rule"] == "three_decimal_last_digit_zero"
    assert "multiple of 10" in info.value.message


@pytest.mark.parametrize("code", ["KWD", "BHD"])
def test_three_decimal_payouts_must_end_in_zero(code: str) -> None:
    """KWD/BHD payouts follow the same last-digit-0 rule as charges."""
    check_payout_amount(Money(1500, code))
    with pytest.raises(InvalidAmountError):
        check_payout_amount(Money(1505, code))


@pytest.mark.parametrize("code", ["ISK", "UGX"])
def test_isk_and_ugx_are_two_decimal_whole_units(code: str) -> None:
    """ISK/UGX: Stripe's amount 500 is 5 units (two-decimal form), so Money(500) is '5.00'."""
    assert currency_exponent(code) == 2
    assert Money.parse("5", code) == Money(500, code)
    assert str(Money(500, code)) == f"5.00 {code}"
    assert Money(500, code).to_decimal() == Decimal("5.00")


@pytest.mark.parametrize("code", ["ISK", "UGX"])
def test_isk_and_ugx_charges_must_end_in_00(code: str) -> None:
    """ISK/UGX: charged amounts must be divisible by 100 (no fractional units)."""
    check_charge_amount(Money(500, code))
    check_charge_amount(Money(100, code))
    for bad in (550, 501, 50):
        with pytest.raises(InvalidAmountError) as info:
            check_charge_amount(Money(bad, code))
        assert info.value.details["rule"] == "divisible_by_100"
        assert info.value.details["amount"] == bad


@pytest.mark.parametrize("code", ["ISK", "UGX"])
def test_isk_and_ugx_payouts_must_end_in_00(code: str) -> None:
    """ISK/UGX payouts are whole units too (divisible by 100)."""
    check_payout_amount(Money(1000, code))
    with pytest.raises(InvalidAmountError):
        check_payout_amount(Money(1050, code))


@pytest.mark.parametrize("code", ["HUF", "TWD"])
def test_huf_and_twd_payouts_must_be_divisible_by_100(code: str) -> None:
    """HUF/TWD: a payout of 1045 (10.45) is refused, 1000 (10.00) is accepted."""
    check_payout_amount(Money(1000, code))
    with pytest.raises(InvalidAmountError) as info:
        check_payout_amount(Money(1045, code))
    assert info.value.details == {
        "amount": 1045,
        "currency": code,
        "rule": "divisible_by_100",
    }
    assert "payout" in info.value.message


@pytest.mark.parametrize("code", ["HUF", "TWD"])
def test_huf_and_twd_charges_may_have_two_decimals(code: str) -> None:
    """HUF/TWD are ordinary two-decimal currencies for charges."""
    check_charge_amount(Money(1045, code))
    assert charge_increment(code) == 1
    assert payout_increment(code) == 100


@pytest.mark.parametrize("code", ["USD", "GBP", "EUR"])
def test_two_decimal_currencies_have_no_granularity_rule(code: str) -> None:
    """Ordinary two-decimal currencies accept any positive amount for charges and payouts."""
    check_charge_amount(Money(1, code))
    check_payout_amount(Money(12345, code))


@pytest.mark.parametrize("amount", [0, -100])
@pytest.mark.parametrize("check", [check_charge_amount, check_payout_amount])
def test_charges_and_payouts_must_be_positive(amount: int, check: object) -> None:
    """Zero and negative amounts are refused as charges and payouts."""
    with pytest.raises(InvalidAmountError) as info:
        check(Money(amount, "GBP"))  # type: ignore[operator]
    assert info.value.details["rule"] == "positive"
    assert info.value.details["currency"] == "GBP"


def test_check_functions_reject_non_money() -> None:
    """The Stripe checks take Money only."""
    with pytest.raises(TypeError):
        check_charge_amount(500)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        check_payout_amount("5.00")  # type: ignore[arg-type]


def test_minimum_charge_amounts_follow_stripes_table() -> None:
    """Stripe's minimum charges: USD 0.50, EUR 0.50, GBP 0.30, JPY 50, HUF 175.00; else None."""
    assert minimum_charge_amount("usd") == 50
    assert minimum_charge_amount("EUR") == 50
    assert minimum_charge_amount("GBP") == 30
    assert minimum_charge_amount("JPY") == 50
    assert minimum_charge_amount("HUF") == 17500
    assert minimum_charge_amount("VUV") is None


# -- construction ---------------------------------------------------------------------------


def test_money_normalizes_currency() -> None:
    """Money(5, 'gbp') stores 'GBP' and equals Money(5, 'GBP')."""
    assert Money(5, "gbp").currency == "GBP"
    assert Money(5, "gbp") == Money(5, "GBP")
    assert hash(Money(5, "gbp")) == hash(Money(5, "GBP"))


@pytest.mark.parametrize("bad", [5.0, Decimal(5), "5", True, None])
def test_money_amount_must_be_int(bad: object) -> None:
    """Non-int amounts (float, Decimal, str, bool) raise TypeError pointing at Money.parse."""
    with pytest.raises(TypeError, match=r"Money\.parse"):
        Money(bad, "GBP")  # type: ignore[arg-type]


def test_money_rejects_unknown_currency() -> None:
    """Money with an unknown currency raises UnknownCurrencyError."""
    with pytest.raises(UnknownCurrencyError):
        Money(5, "ABC")


def test_money_allows_negative_amounts() -> None:
    """Negative balances are representable."""
    m = Money(-150, "GBP")
    assert m.is_negative()
    assert not m.is_positive()
    assert not m.is_zero()


def test_money_is_immutable() -> None:
    """Money is frozen."""
    m = Money(5, "GBP")
    with pytest.raises(AttributeError):
        m.amount = 6  # type: ignore[misc]


def test_zero_and_predicates() -> None:
    """Money.zero is zero in the normalized currency; predicates agree with the sign."""
    z = Money.zero("eur")
    assert z == Money(0, "EUR")
    assert z.is_zero()
    assert not z.is_positive()
    assert not z.is_negative()
    assert Money(1, "EUR").is_positive()


# -- parse ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [
        ("50.00", "GBP", Money(5000, "GBP")),
        ("50", "GBP", Money(5000, "GBP")),
        ("50.5", "gbp", Money(5050, "GBP")),
        ("  50.5\n", "GBP", Money(5050, "GBP")),
        ("-1.00", "GBP", Money(-100, "GBP")),
        ("+1.25", "GBP", Money(125, "GBP")),
        ("0", "GBP", Money(0, "GBP")),
        ("-0.00", "GBP", Money(0, "GBP")),
        ("50.000", "GBP", Money(5000, "GBP")),
        ("1000", "JPY", Money(1000, "JPY")),
        ("1000.0", "JPY", Money(1000, "JPY")),
        ("1.5", "KWD", Money(1500, "KWD")),
        ("1.505", "KWD", Money(1505, "KWD")),
        ("5", "ISK", Money(500, "ISK")),
        ("50.00 GBP", "GBP", Money(5000, "GBP")),
        ("50.00 gbp", "GBP", Money(5000, "GBP")),
        ("12345678901234567890.12", "USD", Money(1234567890123456789012, "USD")),
    ],
)
def test_parse_accepts_exact_amounts(text: str, currency: str, expected: Money) -> None:
    """Decimal strings with at most the currency's decimals parse exactly."""
    assert Money.parse(text, currency) == expected


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("50.001", "GBP"),
        ("0.001", "USD"),
        ("1000.5", "JPY"),
        ("1.0001", "KWD"),
        ("5.5", "CLP"),
    ],
)
def test_parse_rejects_excess_precision(text: str, currency: str) -> None:
    """More decimals than the currency has is an error, never rounded."""
    with pytest.raises(InvalidAmountError) as info:
        Money.parse(text, currency)
    assert info.value.details["currency"] == currency
    assert info.value.details["amount"] == text
    assert "never rounds" in info.value.message


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        "sNaN",
        "1e3",
        "1E+2",
        "5e-1",
        "1,000.00",
        "1_000",
        "1 000",
        ".5",
        "5.",
        "£5",
        "$5",
        "--5",
        "5-",
        "0x10",
        "١٢٣",
        "5 XYZ",
        "1" * 200,
    ],
)
def test_parse_rejects_garbage(text: str) -> None:
    """Non-numbers, exponent notation, separators, symbols and huge strings are refused."""
    with pytest.raises(InvalidAmountError):
        Money.parse(text, "GBP")


def test_parse_rejects_a_different_written_currency() -> None:
    """'50.00 USD' parsed as GBP is a currency mismatch, not a silent conversion."""
    with pytest.raises(CurrencyMismatchError):
        Money.parse("50.00 USD", "GBP")


@pytest.mark.parametrize("value", [50.0, 0.1, float("nan"), True, None, [50]])
def test_parse_rejects_floats_and_other_types(value: object) -> None:
    """Floats (and bools, None, lists) raise TypeError."""
    with pytest.raises(TypeError):
        Money.parse(value, "GBP")  # type: ignore[arg-type]


def test_parse_accepts_decimal_and_int() -> None:
    """Decimal and int inputs are major units and obey the same precision rule."""
    assert Money.parse(Decimal("50.25"), "GBP") == Money(5025, "GBP")
    assert Money.parse(Decimal("1E+3"), "GBP") == Money(100000, "GBP")
    assert Money.parse(50, "GBP") == Money(5000, "GBP")
    assert Money.parse(50, "JPY") == Money(50, "JPY")
    assert Money.parse(-2, "KWD") == Money(-2000, "KWD")
    with pytest.raises(InvalidAmountError):
        Money.parse(Decimal("50.001"), "GBP")


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity")])
def test_parse_rejects_non_finite_decimals(value: Decimal) -> None:
    """NaN and infinite Decimals raise InvalidAmountError."""
    with pytest.raises(InvalidAmountError):
        Money.parse(value, "GBP")


def test_parse_rejects_absurd_decimal_exponents() -> None:
    """Decimals like 1E+999999 or 1E-999999999 are refused before any huge integer is built."""
    with pytest.raises(InvalidAmountError, match="too large"):
        Money.parse(Decimal("1E+999999"), "GBP")
    with pytest.raises(InvalidAmountError, match="decimal places"):
        Money.parse(Decimal("1E-999999999"), "GBP")
    with pytest.raises(InvalidAmountError, match="decimal places"):
        Money.parse(Decimal("123E-5"), "GBP")
    assert Money.parse(Decimal("0E+999999"), "GBP") == Money(0, "GBP")
    assert Money.parse(Decimal("-0E-999999"), "GBP") == Money(0, "GBP")
    assert Money.parse(Decimal("12300E-4"), "GBP") == Money(123, "GBP")


def test_parse_rejects_unknown_currency() -> None:
    """Parsing into an unknown currency raises UnknownCurrencyError."""
    with pytest.raises(UnknownCurrencyError):
        Money.parse("5.00", "ABC")


# -- formatting -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("m", "text"),
    [
        (Money(5000, "GBP"), "50.00 GBP"),
        (Money(5, "GBP"), "0.05 GBP"),
        (Money(0, "GBP"), "0.00 GBP"),
        (Money(-150, "GBP"), "-1.50 GBP"),
        (Money(-5, "GBP"), "-0.05 GBP"),
        (Money(1000, "JPY"), "1000 JPY"),
        (Money(-7, "KRW"), "-7 KRW"),
        (Money(1500, "KWD"), "1.500 KWD"),
        (Money(5, "BHD"), "0.005 BHD"),
        (Money(50000, "ISK"), "500.00 ISK"),
    ],
)
def test_str_formats_major_units_and_code(m: Money, text: str) -> None:
    """str() prints the amount with the currency's decimals and its code."""
    assert str(m) == text


def test_repr_is_constructor_like() -> None:
    """repr(Money(5000, 'GBP')) is Money(5000, 'GBP')."""
    assert repr(Money(5000, "gbp")) == "Money(5000, 'GBP')"


def test_to_decimal_is_exact() -> None:
    """to_decimal gives exact major units, even beyond Decimal's default 28-digit precision."""
    assert Money(5000, "GBP").to_decimal() == Decimal("50.00")
    assert Money(1500, "KWD").to_decimal() == Decimal("1.500")
    assert Money(-5, "GBP").to_decimal() == Decimal("-0.05")
    huge = 10**40 + 1
    assert Money(huge, "USD").to_decimal() == Decimal(f"{huge}e-2")
    assert str(Money(huge, "USD").to_decimal()).endswith(".01")


# -- arithmetic -----------------------------------------------------------------------------


def test_add_subtract_negate_abs_within_one_currency() -> None:
    """+, -, unary - and abs() work within one currency."""
    a, b = Money(500, "GBP"), Money(120, "GBP")
    assert a + b == Money(620, "GBP")
    assert a - b == Money(380, "GBP")
    assert b - a == Money(-380, "GBP")
    assert -a == Money(-500, "GBP")
    assert +a == a
    assert abs(Money(-500, "GBP")) == a


def test_multiply_by_int_both_sides() -> None:
    """Money * int and int * Money scale the amount."""
    assert Money(250, "GBP") * 3 == Money(750, "GBP")
    assert 3 * Money(250, "GBP") == Money(750, "GBP")
    assert Money(250, "GBP") * -1 == Money(-250, "GBP")


@pytest.mark.parametrize("factor", [1.5, 2.0, Decimal(2), True, "2"])
def test_multiply_by_non_int_raises_type_error(factor: Any) -> None:
    """Multiplying by float, Decimal, bool or str raises TypeError."""
    with pytest.raises(TypeError):
        Money(250, "GBP") * factor
    with pytest.raises(TypeError):
        factor * Money(250, "GBP")


@pytest.mark.parametrize("other", [0, 1, 0.5, Decimal("0.5"), "1", None])
def test_adding_non_money_raises_type_error(other: object) -> None:
    """Money + 0, + float, + Decimal and the reverse all raise TypeError."""
    m = Money(100, "GBP")
    with pytest.raises(TypeError):
        m + other  # type: ignore[operator]
    with pytest.raises(TypeError):
        other + m  # type: ignore[operator]
    with pytest.raises(TypeError):
        m - other  # type: ignore[operator]


def test_sum_without_start_value_is_refused() -> None:
    """sum() of Money needs an explicit Money start (0 + Money is a TypeError)."""
    items = [Money(1, "GBP"), Money(2, "GBP")]
    with pytest.raises(TypeError):
        sum(items)  # type: ignore[arg-type]
    assert sum(items, Money.zero("GBP")) == Money(3, "GBP")


def test_mixed_currency_add_and_subtract_raise() -> None:
    """Adding or subtracting GBP and USD raises CurrencyMismatchError with both codes."""
    with pytest.raises(CurrencyMismatchError) as info:
        Money(1, "GBP") + Money(1, "USD")
    assert info.value.details == {"currency": "GBP", "other_currency": "USD"}
    with pytest.raises(CurrencyMismatchError):
        Money(1, "GBP") - Money(1, "USD")


def test_comparisons_within_one_currency() -> None:
    """<, <=, >, >= compare amounts of one currency."""
    small, big = Money(1, "EUR"), Money(2, "EUR")
    assert small < big
    assert small <= big
    assert small <= Money(1, "EUR")
    assert big > small
    assert big >= small
    assert not big < small
    assert max(small, big) == big


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_mixed_currency_comparisons_raise(op: str) -> None:
    """Ordering GBP against USD raises CurrencyMismatchError."""
    a, b = Money(1, "GBP"), Money(1, "USD")
    ops = {
        "<": lambda: a < b,
        "<=": lambda: a <= b,
        ">": lambda: a > b,
        ">=": lambda: a >= b,
    }
    with pytest.raises(CurrencyMismatchError):
        ops[op]()


def test_comparison_with_non_money_raises_type_error() -> None:
    """Ordering Money against an int raises TypeError."""
    with pytest.raises(TypeError):
        _ = Money(1, "GBP") < 2  # type: ignore[operator]


def test_equality_is_plain_value_equality() -> None:
    """Different currencies are simply unequal; Money never equals a bare number."""
    assert Money(1, "GBP") != Money(1, "USD")
    assert Money(1, "GBP") == Money(1, "GBP")
    bare_zero: object = 0
    assert Money(0, "GBP") != bare_zero
    assert len({Money(1, "GBP"), Money(1, "gbp"), Money(1, "USD")}) == 2


# -- allocate -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (100, [1, 1, 1], [34, 33, 33]),
        (101, [1, 1, 1], [34, 34, 33]),
        (-100, [1, 1, 1], [-34, -33, -33]),
        (5, [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]),
        (100, [1, 0, 1], [50, 0, 50]),
        (100, [9000, 1000], [90, 10]),
        (7, [3, 4], [3, 4]),
        (10, [1, 2], [3, 7]),
        (0, [1, 2, 3], [0, 0, 0]),
        (100, [5], [100]),
    ],
)
def test_allocate_examples(total: int, weights: list[int], expected: list[int]) -> None:
    """Largest-remainder allocation with earlier index winning ties."""
    parts = allocate(Money(total, "USD"), weights)
    assert parts == [Money(x, "USD") for x in expected]


@pytest.mark.parametrize("weights", [[], [0, 0], [1, -1], [-1]])
def test_allocate_rejects_bad_weights(weights: list[int]) -> None:
    """Empty, all-zero and negative weights raise InvalidAmountError."""
    with pytest.raises(InvalidAmountError):
        allocate(Money(100, "USD"), weights)


@pytest.mark.parametrize("weights", [[1.5, 1], [True, 1], "11"])
def test_allocate_rejects_non_int_weights(weights: object) -> None:
    """Float, bool or string weights raise TypeError."""
    with pytest.raises(TypeError):
        allocate(Money(100, "USD"), weights)  # type: ignore[arg-type]


def test_allocate_requires_money_total() -> None:
    """allocate() takes a Money total, not a bare int."""
    with pytest.raises(TypeError):
        allocate(100, [1, 1])  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    amount=st.integers(min_value=-(10**15), max_value=10**15),
    weights=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=12).filter(
        lambda ws: sum(ws) > 0
    ),
)
def test_allocate_always_sums_exactly_for_every_currency(amount: int, weights: list[int]) -> None:
    """For every currency, parts sum to the total, keep its sign and miss the exact share by < 1."""
    weight_sum = sum(weights)
    for code in ALL_CURRENCIES:
        total = Money(amount, code)
        parts = allocate(total, weights)
        assert len(parts) == len(weights)
        assert all(p.currency == total.currency for p in parts)
        assert sum(p.amount for p in parts) == amount
        for part, weight in zip(parts, weights, strict=True):
            # |part * weight_sum - amount * weight| < weight_sum, i.e. within one unit of exact.
            assert abs(part.amount * weight_sum - amount * weight) < weight_sum
            assert part.amount * amount >= 0
            if weight == 0:
                assert part.amount == 0


@settings(max_examples=150, deadline=None)
@given(
    amount=st.integers(min_value=-(10**15), max_value=10**15),
    count=st.integers(min_value=1, max_value=20),
)
def test_allocate_equal_weights_differ_by_at_most_one(amount: int, count: int) -> None:
    """With equal weights, for every currency the parts differ by at most one minor unit."""
    for code in ALL_CURRENCIES:
        parts = allocate(Money(amount, code), [7] * count)
        amounts = [p.amount for p in parts]
        assert sum(amounts) == amount
        assert max(amounts) - min(amounts) <= 1
        # Earlier parts get the extra units: magnitudes are non-increasing.
        magnitudes = [abs(a) for a in amounts]
        assert magnitudes == sorted(magnitudes, reverse=True)


# -- round trips ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(amount=st.integers(min_value=-(10**18), max_value=10**18))
def test_parse_of_str_round_trips_for_every_currency(amount: int) -> None:
    """Money.parse(str(m), m.currency) == m, also via the bare number and to_decimal()."""
    for code in ALL_CURRENCIES:
        m = Money(amount, code)
        text = str(m)
        assert Money.parse(text, code) == m
        assert Money.parse(text.rsplit(" ", 1)[0], code.lower()) == m
        assert Money.parse(m.to_decimal(), code) == m


@settings(max_examples=200, deadline=None)
@given(
    whole=st.integers(min_value=0, max_value=10**12),
    fraction=st.text(alphabet="0123456789", min_size=1, max_size=5),
    code=st.sampled_from(ALL_CURRENCIES),
)
def test_parse_accepts_exactly_the_representable_strings(
    whole: int, fraction: str, code: str
) -> None:
    """A string parses iff its non-zero decimals fit the exponent; then the value is exact."""
    text = f"{whole}.{fraction}"
    exponent = currency_exponent(code)
    significant = fraction.rstrip("0")
    if len(significant) <= exponent:
        expected = whole * 10**exponent + int((significant or "0").ljust(exponent, "0") or "0")
        assert Money.parse(text, code) == Money(expected, code)
    else:
        with pytest.raises(InvalidAmountError):
            Money.parse(text, code)
