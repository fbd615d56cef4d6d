"""Exact money: an ``int`` amount in Stripe's minor unit plus an ISO 4217 currency code.

Design:

* :class:`Money` stores ``amount`` as a Python ``int`` counted in the *minor unit Stripe's API
  takes as ``amount``* for that currency (cents for USD, yen for JPY, fils for KWD). What
  mentorpay stores is therefore always exactly what it sends to and receives from Stripe; no
  conversion happens at the gateway boundary.
* Floats are refused everywhere. :class:`~decimal.Decimal` only appears when parsing human input
  (:meth:`Money.parse`) or printing (:meth:`Money.to_decimal`, ``str()``). Parsing rejects excess
  precision instead of rounding it.
* Arithmetic is defined only between amounts of one currency; mixing currencies raises
  :class:`~mentorpay.errors.CurrencyMismatchError` and mixing with plain numbers raises
  ``TypeError``. Splitting an amount is done by :func:`allocate` (largest remainder), which always
  sums exactly to the total.
* Every per-currency fact (exponent, charge and payout granularity, Stripe's minimum charge) lives
  in the single table ``CURRENCIES`` of :mod:`mentorpay._currencies`, dated and sourced.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from mentorpay._currencies import CURRENCIES as _CURRENCIES
from mentorpay._currencies import CurrencyRule as _CurrencyRule
from mentorpay.errors import CurrencyMismatchError, InvalidAmountError, UnknownCurrencyError

__all__ = [
    "Money",
    "allocate",
    "charge_increment",
    "check_charge_amount",
    "check_payout_amount",
    "currency_exponent",
    "minimum_charge_amount",
    "normalize_currency",
    "payout_increment",
    "supported_currencies",
]


# Longest decimal string Money.parse reads; far beyond any real amount, short enough that a
# hostile input cannot make int()/Decimal() do unbounded work.
_MAX_PARSE_LENGTH: Final = 64
# Largest number of integer digits a parsed Decimal may have (same reason).
_MAX_PARSE_DIGITS: Final = 40
_DECIMAL_RE: Final = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?", re.ASCII)
_CODE_SUFFIX_RE: Final = re.compile(r"(.*?)\s+([A-Za-z]{3})", re.ASCII | re.DOTALL)


def _rule(code: str) -> _CurrencyRule:
    return _CURRENCIES[normalize_currency(code)]


def normalize_currency(code: str) -> str:
    """Return the upper-case ISO code, or raise :class:`UnknownCurrencyError`.

    Only currencies in mentorpay's table are accepted, because only for those does mentorpay
    know how many decimals Stripe's ``amount`` has.
    """
    if not isinstance(code, str):
        raise UnknownCurrencyError(
            f"currency must be an ISO 4217 code string such as 'GBP', not {type(code).__name__}",
            currency=repr(code),
        )
    upper = code.upper()
    if upper not in _CURRENCIES:
        raise UnknownCurrencyError(
            f"unknown currency {code!r}: mentorpay does not know Stripe's exponent for it",
            currency=code,
        )
    return upper


def currency_exponent(code: str) -> int:
    """Digits after the decimal point in Stripe's ``amount`` for ``code`` (0, 2 or 3)."""
    return _rule(code).exponent


def charge_increment(code: str) -> int:
    """A charged ``amount`` in ``code`` must be a multiple of this many minor units."""
    return _rule(code).charge_increment


def payout_increment(code: str) -> int:
    """A payout ``amount`` in ``code`` must be a multiple of this many minor units."""
    return _rule(code).payout_increment


def minimum_charge_amount(code: str) -> int | None:
    """Stripe's minimum charge in minor units of ``code``, or ``None`` if not recorded.

    Stripe enforces the minimum of the settlement currency after conversion, so this is exact
    only when ``code`` is also the account's settlement currency.
    """
    return _rule(code).min_charge


def supported_currencies() -> tuple[str, ...]:
    """Every currency code mentorpay knows, sorted."""
    return tuple(sorted(_CURRENCIES))


def _require_int(value: object, what: str) -> int:
    if type(value) is not int:
        raise TypeError(
            f"{what} must be an int number of minor units, not {type(value).__name__}; "
            "use Money.parse('12.34', currency) to convert a decimal string"
        )
    return value


def _invalid(message: str, value: object, currency: str) -> InvalidAmountError:
    return InvalidAmountError(message, amount=str(value), currency=currency)


@dataclass(frozen=True, slots=True, repr=False)
class Money:
    """An exact amount: ``amount`` minor units (as Stripe's API counts them) of ``currency``.

    ``Money(5000, "gbp")`` is 50.00 GBP; the currency is normalized to upper case. Amounts may
    be negative (balances can go below zero); services check positivity themselves.
    """

    amount: int
    currency: str

    def __post_init__(self) -> None:
        _require_int(self.amount, "Money.amount")
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Zero in ``currency``."""
        return cls(0, currency)

    @classmethod
    def parse(cls, value: str | Decimal | int, currency: str) -> Money:
        """Read a major-unit amount (``"50.00"``, ``Decimal("50")``, ``50``) in ``currency``.

        ``"50.00"``, ``"50"`` and ``"50.5"`` in GBP give 5000, 5000 and 5050. More decimals than
        the currency has (``"50.001"`` GBP, ``"1000.5"`` JPY) raise :class:`InvalidAmountError`:
        excess precision is rejected, never rounded. Surrounding whitespace is ignored, a leading
        sign is allowed, and the string may end with the currency code (``"50.00 GBP"``, so
        ``Money.parse(str(m), m.currency) == m``); a different code raises
        :class:`CurrencyMismatchError`. Exponent notation, separators, NaN and infinities are
        refused. Floats raise ``TypeError``: they cannot represent most decimal amounts.
        """
        code = normalize_currency(currency)
        exponent = _CURRENCIES[code].exponent
        if isinstance(value, bool) or not isinstance(value, str | Decimal | int):
            raise TypeError(
                f"Money.parse takes a str, Decimal or int, not {type(value).__name__}; "
                "floats cannot represent money exactly, pass a string such as '12.34'"
            )
        if isinstance(value, int):
            return cls(value * 10**exponent, code)
        number = _decimal_from_str(value, code) if isinstance(value, str) else value
        return cls(_scale_exactly(number, exponent, value, code), code)

    # -- conversion ---------------------------------------------------------------------------

    def to_decimal(self) -> Decimal:
        """The amount in major units as an exact ``Decimal`` (5000 GBP -> ``Decimal("50.00")``)."""
        exponent = _CURRENCIES[self.currency].exponent
        return Decimal(f"{self.amount}e-{exponent}") if exponent else Decimal(self.amount)

    def __str__(self) -> str:
        exponent = _CURRENCIES[self.currency].exponent
        sign = "-" if self.amount < 0 else ""
        whole, fraction = divmod(abs(self.amount), 10**exponent)
        if exponent == 0:
            return f"{sign}{whole} {self.currency}"
        return f"{sign}{whole}.{fraction:0{exponent}d} {self.currency}"

    def __repr__(self) -> str:
        return f"Money({self.amount!r}, {self.currency!r})"

    # -- predicates ---------------------------------------------------------------------------

    def is_zero(self) -> bool:
        """Whether the amount is exactly zero."""
        return self.amount == 0

    def is_positive(self) -> bool:
        """Whether the amount is greater than zero."""
        return self.amount > 0

    def is_negative(self) -> bool:
        """Whether the amount is less than zero."""
        return self.amount < 0

    # -- arithmetic ---------------------------------------------------------------------------

    def _same_currency(self, other: object, op: str) -> Money:
        if not isinstance(other, Money):
            raise TypeError(
                f"cannot {op} Money and {type(other).__name__}; "
                f"use Money(amount, {self.currency!r}) or Money.zero({self.currency!r})"
            )
        if other.currency != self.currency:
            raise CurrencyMismatchError(
                f"cannot {op} {self.currency} and {other.currency}: "
                "amounts of different currencies are never combined",
                currency=self.currency,
                other_currency=other.currency,
            )
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._same_currency(other, "add").amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._same_currency(other, "subtract").amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __pos__(self) -> Money:
        return self

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __mul__(self, factor: int) -> Money:
        if type(factor) is not int:
            raise TypeError(
                f"Money can only be multiplied by an int, not {type(factor).__name__}; "
                "use mentorpay.commission for rates and allocate() for splits"
            )
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same_currency(other, "compare").amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same_currency(other, "compare").amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same_currency(other, "compare").amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same_currency(other, "compare").amount


def _decimal_from_str(text: str, code: str) -> Decimal:
    stripped = text.strip()
    if len(stripped) > _MAX_PARSE_LENGTH:
        raise _invalid(
            f"amount string is longer than {_MAX_PARSE_LENGTH} characters",
            stripped[:_MAX_PARSE_LENGTH] + "...",
            code,
        )
    suffix = _CODE_SUFFIX_RE.fullmatch(stripped)
    if suffix is not None and suffix.group(2).upper() in _CURRENCIES:
        stripped, written = suffix.group(1), suffix.group(2).upper()
        if written != code:
            raise CurrencyMismatchError(
                f"amount {text.strip()!r} is written in {written}, expected {code}",
                currency=code,
                other_currency=written,
            )
    if not _DECIMAL_RE.fullmatch(stripped):
        raise _invalid(
            f"{text!r} is not a decimal amount: write digits with an optional sign and "
            "decimal point, such as '50.00' (no exponent, separators or symbols)",
            text,
            code,
        )
    try:
        return Decimal(stripped)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid input
        raise _invalid(f"{text!r} is not a decimal amount", text, code) from exc


def _scale_exactly(number: Decimal, exponent: int, original: object, code: str) -> int:
    """``number * 10**exponent`` as an int, refusing anything that is not exactly integral."""
    if not number.is_finite():
        raise _invalid(f"{original!r} is not a finite amount", original, code)
    sign, digits, exp = number.as_tuple()
    if not isinstance(exp, int):  # pragma: no cover - finite numbers have an int exponent
        raise _invalid(f"{original!r} is not a finite amount", original, code)
    coefficient = int("".join(map(str, digits)))
    if coefficient == 0:
        return 0
    if len(digits) + exp > _MAX_PARSE_DIGITS:
        raise _invalid(f"{original!r} is too large to be an amount", original, code)
    shift = exp + exponent
    minor: int
    if shift >= 0:
        minor = coefficient * 10**shift
    else:
        # A coefficient of n digits cannot be divisible by 10**k for k > n, so refuse those
        # before computing 10**k (an exponent like 1E-999999999 must not cost anything).
        divisor: int = 10 ** min(-shift, len(digits) + 1)
        minor, remainder = divmod(coefficient, divisor)
        if remainder or -shift > len(digits):
            raise _invalid(
                f"{original!r} has more decimal places than {code} allows ({exponent}); "
                "mentorpay never rounds an amount silently",
                original,
                code,
            )
    return -minor if sign else minor


def allocate(total: Money, weights: Sequence[int]) -> list[Money]:
    """Split ``total`` in proportion to ``weights``; the parts always sum exactly to ``total``.

    Largest-remainder method: each part gets the floor of its exact share, then the leftover
    minor units go one each to the parts with the largest remainders, earlier index first on
    ties. ``allocate(Money(100, "USD"), [1, 1, 1])`` gives 34, 33, 33. A negative total is
    allocated by absolute value and negated. Weights must be non-negative ints with a positive
    sum, otherwise :class:`InvalidAmountError`.
    """
    if not isinstance(total, Money):
        raise TypeError(f"allocate() needs a Money total, not {type(total).__name__}")
    if isinstance(weights, str | bytes) or not isinstance(weights, Sequence):
        raise TypeError("allocate() weights must be a sequence of ints")
    for weight in weights:
        if type(weight) is not int:
            raise TypeError(f"allocate() weights must be ints, not {type(weight).__name__}")
        if weight < 0:
            raise _invalid(f"allocate() weight {weight} is negative", total, total.currency)
    weight_sum = sum(weights)
    if weight_sum <= 0:
        raise _invalid(
            "allocate() needs at least one positive weight", total.amount, total.currency
        )
    magnitude = abs(total.amount)
    shares: list[int] = []
    remainders: list[int] = []
    for weight in weights:
        share, remainder = divmod(magnitude * weight, weight_sum)
        shares.append(share)
        remainders.append(remainder)
    leftover = magnitude - sum(shares)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for index in by_remainder[:leftover]:
        shares[index] += 1
    sign = -1 if total.amount < 0 else 1
    return [Money(sign * share, total.currency) for share in shares]


def _check_stripe_amount(money: Money, increment: int, kind: str) -> None:
    if money.amount <= 0:
        raise InvalidAmountError(
            f"a {kind} amount must be positive, got {money}",
            amount=money.amount,
            currency=money.currency,
            rule="positive",
        )
    if money.amount % increment:
        rule = {10: "three_decimal_last_digit_zero", 100: "divisible_by_100"}.get(
            increment, f"multiple_of_{increment}"
        )
        raise InvalidAmountError(
            f"Stripe requires {money.currency} {kind} amounts to be a multiple of {increment} "
            f"minor units (rule {rule}); {money.amount} is not",
            amount=money.amount,
            currency=money.currency,
            rule=rule,
        )


def check_charge_amount(money: Money) -> None:
    """Raise :class:`InvalidAmountError` unless Stripe accepts ``money`` as a charge amount.

    Rules: positive; three-decimal currencies (BHD JOD KWD OMR TND) end in 0; ISK and UGX end in
    00 (whole units in two-decimal form). Minimum charges are not checked here (see
    :func:`minimum_charge_amount`).
    """
    if not isinstance(money, Money):
        raise TypeError(f"expected Money, not {type(money).__name__}")
    _check_stripe_amount(money, _CURRENCIES[money.currency].charge_increment, "charge")


def check_payout_amount(money: Money) -> None:
    """Raise :class:`InvalidAmountError` unless Stripe accepts ``money`` as a payout amount.

    Rules: positive; HUF and TWD (zero-decimal for payouts) and ISK and UGX divisible by 100;
    three-decimal currencies end in 0.
    """
    if not isinstance(money, Money):
        raise TypeError(f"expected Money, not {type(money).__name__}")
    _check_stripe_amount(money, _CURRENCIES[money.currency].payout_increment, "payout")
