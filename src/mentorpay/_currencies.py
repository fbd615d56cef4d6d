"""Stripe's currency table: for each currency mentorpay supports, the exponent of its API
amounts, the charge and payout granularity, and Stripe's minimum charge. Dated and sourced
below; :mod:`mentorpay.money` is its only reader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["CURRENCIES", "CurrencyRule"]


@dataclass(frozen=True, slots=True)
class CurrencyRule:
    """What Stripe's API expects for one currency.

    ``exponent``: digits after the decimal point in Stripe's ``amount`` (10**exponent minor units
    make one major unit). ``charge_increment`` / ``payout_increment``: a charge or payout
    ``amount`` must be a multiple of this many minor units. ``min_charge``: Stripe's documented
    minimum charge in minor units, or ``None`` when mentorpay does not record one.
    """

    exponent: int
    charge_increment: int = 1
    payout_increment: int = 1
    min_charge: int | None = None


def _two(min_charge: int | None = None) -> CurrencyRule:
    return CurrencyRule(exponent=2, min_charge=min_charge)


_ZERO: Final = CurrencyRule(exponent=0)
# Three-decimal: Stripe requires the last digit of the amount to be 0 (multiples of 10 fils).
# Stripe documents this for charges, refunds and disputes; mentorpay also applies it to payouts,
# conservatively, because the same payment partners move the money.
_THREE: Final = CurrencyRule(exponent=3, charge_increment=10, payout_increment=10)
# ISK and UGX: effectively zero-decimal, but Stripe's API keeps them two-decimal for backwards
# compatibility, so ``amount`` is in hundredths and must end in 00 (5 ISK is sent as 500).
_WHOLE_UNITS_IN_TWO_DECIMALS: Final = CurrencyRule(
    exponent=2, charge_increment=100, payout_increment=100
)
# HUF and TWD: charged as ordinary two-decimal amounts, but paid out as zero-decimal, so a payout
# ``amount`` must be divisible by 100 (HUF 10.45 available -> pay out 1000, i.e. HUF 10).
_ZERO_DECIMAL_PAYOUTS: Final = CurrencyRule(exponent=2, payout_increment=100)

# THE currency table. Checked 2026-11 against Stripe's "Supported currencies" page
# (https://docs.stripe.com/currencies: "Minor units in API amounts", "Zero-decimal currencies",
# "Special cases", "Minimum and maximum charge amounts") and Stripe's support note
# "Deprecation of fractional ISK charges and refunds" (ISK "will remain a two-decimal currency in
# the Stripe API, and an ISK amount of 100 will continue to represent 1 krona").
#
# Exponents are Stripe's, not ISO 4217's: ISO says ISK and UGX have 0 decimals, Stripe's API
# expects 2. Decision on UGX: Stripe's page lists UGX both as zero-decimal and as a special case
# ("UGX transitioned to a zero-decimal currency, but backwards compatibility requires you to
# represent it as a two-decimal value, where the decimal amount is always 00. For example, to
# charge 5 UGX, provide an amount value of 500"). The API follows the special case: it rejects
# UGX amounts not divisible by 100 ("Currency UGX has become effectively zero-decimal and
# charged amounts must be evenly divisible by 100") and reads 100 as 1.00 UGX. mentorpay
# therefore stores UGX, like ISK, with exponent 2 and requires charges and payouts to end in 00.
#
# Minimum charges (minor units) are from Stripe's table; Stripe applies the minimum of the
# *settlement* currency after conversion, so the figure is exact only when the charge and
# settlement currencies are the same. Currencies without a recorded minimum map to ``None``.
CURRENCIES: Final[dict[str, CurrencyRule]] = {
    # Two-decimal currencies.
    "AED": _two(200),
    "ARS": _two(),
    "AUD": _two(50),
    "BDT": _two(),
    "BGN": _two(),
    "BRL": _two(50),
    "CAD": _two(50),
    "CHF": _two(50),
    "CNY": _two(),
    "COP": _two(),
    "CZK": _two(1500),
    "DKK": _two(250),
    "EGP": _two(),
    "EUR": _two(50),
    "GBP": _two(30),
    "GEL": _two(),
    "HKD": _two(400),
    "IDR": _two(),
    "ILS": _two(),
    "INR": _two(50),
    "KES": _two(),
    "KZT": _two(),
    "LKR": _two(),
    "MAD": _two(),
    "MXN": _two(1000),
    "MYR": _two(200),
    "NGN": _two(),
    "NOK": _two(300),
    "NZD": _two(50),
    "PEN": _two(),
    "PHP": _two(),
    "PKR": _two(),
    "PLN": _two(200),
    "QAR": _two(),
    "RON": _two(200),
    "RSD": _two(),
    "SAR": _two(),
    "SEK": _two(300),
    "SGD": _two(50),
    "THB": _two(1000),
    "TRY": _two(),
    "UAH": _two(),
    "USD": _two(50),
    "ZAR": _two(),
    # Special cases (see above).
    "HUF": CurrencyRule(exponent=2, payout_increment=100, min_charge=17500),
    "TWD": _ZERO_DECIMAL_PAYOUTS,
    "ISK": _WHOLE_UNITS_IN_TWO_DECIMALS,
    "UGX": _WHOLE_UNITS_IN_TWO_DECIMALS,
    # Zero-decimal currencies (Stripe's list, minus UGX which is a special case above).
    "BIF": _ZERO,
    "CLP": _ZERO,
    "DJF": _ZERO,
    "GNF": _ZERO,
    "JPY": CurrencyRule(exponent=0, min_charge=50),
    "KMF": _ZERO,
    "KRW": _ZERO,
    "MGA": _ZERO,
    "PYG": _ZERO,
    "RWF": _ZERO,
    "VND": _ZERO,
    "VUV": _ZERO,
    "XAF": _ZERO,
    "XOF": _ZERO,
    "XPF": _ZERO,
    # Three-decimal currencies.
    "BHD": _THREE,
    "JOD": _THREE,
    "KWD": _THREE,
    "OMR": _THREE,
    "TND": _THREE,
}
