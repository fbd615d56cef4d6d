"""Commission: how a payment splits into the platform's fee and the mentor's payout.

Everything here is pure integer arithmetic on :class:`~mentorpay.money.Money`:

* The rate is in integer basis points (1000 bps = 10%). The fee is ``gross * rate_bps / 10000``
  rounded exactly once with an explicit :data:`Rounding` mode, then clamped to the optional
  minimum and maximum fee and to ``[0, gross]``. The payout is ``gross - fee``, so
  ``fee + payout == gross`` for every amount and currency.
* Refunds use cumulative targets (DESIGN section 4): after refunds totalling ``R`` of a payment
  with gross ``G`` and payout ``P``, the payout reversed is ``round(P * R / G)`` with the
  payment's own rounding mode, and the fee reversed is ``R`` minus that. Each refund takes the
  difference between the targets after and before it, so any sequence of partial refunds adds up
  to exactly the original fee and payout at ``R == G``, and no part is ever negative.
* A :class:`Split` records the rate and rounding it was made with, so refunds of an old payment
  follow that payment's terms, not today's policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, get_args

from mentorpay.errors import CurrencyMismatchError, InvalidAmountError
from mentorpay.money import Money, charge_increment

__all__ = [
    "CommissionPolicy",
    "CommissionResolver",
    "Rounding",
    "Split",
    "resolve_policy",
    "split_refund",
]

#: How a fractional minor unit is resolved: ``half_even`` (banker's), ``half_up`` / ``half_down``
#: (ties away from / toward zero), ``down`` (toward zero) and ``up`` (away from zero).
Rounding = Literal["half_even", "half_up", "half_down", "down", "up"]

_ROUNDING_MODES: Final[frozenset[str]] = frozenset(get_args(Rounding))
_BPS_DENOMINATOR: Final = 10_000


def _div_round(numerator: int, denominator: int, rounding: Rounding) -> int:
    """``numerator / denominator`` rounded to an int with ``rounding``, in exact integer math."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")  # internal misuse, never user input
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder:
        twice = 2 * remainder
        if rounding == "up":
            quotient += 1
        elif rounding == "half_up":
            quotient += twice >= denominator
        elif rounding == "half_down":
            quotient += twice > denominator
        elif rounding == "half_even":
            quotient += twice > denominator or (twice == denominator and quotient % 2 == 1)
        # "down": truncate toward zero, nothing to add.
    return -quotient if numerator < 0 else quotient


def _check_rate_bps(rate_bps: object) -> int:
    if type(rate_bps) is not int:
        raise TypeError(
            f"rate_bps must be an int number of basis points, not {type(rate_bps).__name__} "
            "(10% is rate_bps=1000)"
        )
    if not 0 <= rate_bps <= _BPS_DENOMINATOR:
        raise InvalidAmountError(
            f"rate_bps must be between 0 and {_BPS_DENOMINATOR} basis points, got {rate_bps}",
            rate_bps=rate_bps,
        )
    return rate_bps


def _check_rounding(rounding: object) -> None:
    if rounding not in _ROUNDING_MODES:
        raise InvalidAmountError(
            f"rounding must be one of {sorted(_ROUNDING_MODES)}, got {rounding!r}",
            rounding=repr(rounding),
        )


def _check_money(value: object, name: str) -> Money:
    if not isinstance(value, Money):
        raise TypeError(f"{name} must be Money, not {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Split:
    """How one amount divides between the platform's fee and the mentor's payout.

    Invariant, checked on construction: all three amounts are in one currency, none is
    negative, and ``platform_fee + mentor_payout == gross``. ``rate_bps`` and ``rounding`` are
    the terms the split was made with (stored with the payment; refunds reuse them).
    """

    gross: Money
    platform_fee: Money
    mentor_payout: Money
    rate_bps: int
    rounding: Rounding = "half_even"

    def __post_init__(self) -> None:
        gross = _check_money(self.gross, "Split.gross")
        fee = _check_money(self.platform_fee, "Split.platform_fee")
        payout = _check_money(self.mentor_payout, "Split.mentor_payout")
        _check_rate_bps(self.rate_bps)
        _check_rounding(self.rounding)
        if not gross.currency == fee.currency == payout.currency:
            raise CurrencyMismatchError(
                "a split's gross, fee and payout must share one currency, got "
                f"{gross.currency}, {fee.currency} and {payout.currency}",
                currency=gross.currency,
            )
        if gross.is_negative() or fee.is_negative() or payout.is_negative():
            raise InvalidAmountError(
                f"a split's amounts cannot be negative: gross {gross}, fee {fee}, payout {payout}",
                amount=gross.amount,
                currency=gross.currency,
            )
        if fee.amount + payout.amount != gross.amount:
            raise InvalidAmountError(
                f"fee {fee} + payout {payout} must equal gross {gross}",
                amount=gross.amount,
                currency=gross.currency,
            )


@dataclass(frozen=True, slots=True)
class CommissionPolicy:
    """The platform's commission terms.

    ``rate_bps``: integer basis points, 0..10000 (1000 = 10%). ``rounding``: how the fee's
    fractional minor unit is resolved, once. ``min_fee`` / ``max_fee``: optional bounds in minor
    units of the payment's currency (a fee never exceeds the gross, whatever ``min_fee`` says).
    Invalid values raise :class:`InvalidAmountError`; non-int numbers raise ``TypeError``.
    """

    rate_bps: int
    rounding: Rounding = "half_even"
    min_fee: int | None = None
    max_fee: int | None = None

    def __post_init__(self) -> None:
        _check_rate_bps(self.rate_bps)
        _check_rounding(self.rounding)
        for name in ("min_fee", "max_fee"):
            bound = getattr(self, name)
            if bound is None:
                continue
            if type(bound) is not int:
                raise TypeError(
                    f"{name} must be an int number of minor units or None, "
                    f"not {type(bound).__name__}"
                )
            if bound < 0:
                raise InvalidAmountError(f"{name} cannot be negative, got {bound}", **{name: bound})
        if self.min_fee is not None and self.max_fee is not None and self.min_fee > self.max_fee:
            raise InvalidAmountError(
                f"min_fee ({self.min_fee}) cannot exceed max_fee ({self.max_fee})",
                min_fee=self.min_fee,
                max_fee=self.max_fee,
            )

    def split(self, gross: Money) -> Split:
        """Split a payment of ``gross`` (>= 0) into platform fee and mentor payout.

        ``CommissionPolicy(rate_bps=1000).split(Money(5000, "GBP"))`` gives fee 500 and payout
        4500. The fee is rounded once (to the currency's charge step when ``gross`` is a
        multiple of it: KWD fees end in 0, ISK/UGX fees in 00), then clamped to
        ``[min_fee, max_fee]`` and to ``[0, gross]``; the payout is the rest.
        """
        _check_money(gross, "gross")
        if gross.is_negative():
            raise InvalidAmountError(
                f"cannot split a negative amount ({gross})",
                amount=gross.amount,
                currency=gross.currency,
            )
        # Round to the currency's charge step (10 for three-decimal, 100 for ISK/UGX) so that
        # the fee, sent as application_fee_amount, and the payout both stay chargeable amounts.
        step = charge_increment(gross.currency)
        if gross.amount % step:
            step = 1
        fee = step * _div_round(
            gross.amount * self.rate_bps, _BPS_DENOMINATOR * step, self.rounding
        )
        if self.min_fee is not None:
            fee = max(fee, self.min_fee)
        if self.max_fee is not None:
            fee = min(fee, self.max_fee)
        fee = min(max(fee, 0), gross.amount)
        return Split(
            gross=gross,
            platform_fee=Money(fee, gross.currency),
            mentor_payout=Money(gross.amount - fee, gross.currency),
            rate_bps=self.rate_bps,
            rounding=self.rounding,
        )

    def split_refund(self, original: Split, already_refunded: Money, refund: Money) -> Split:
        """Split a refund of ``original``; see the module-level :func:`split_refund`.

        Uses ``original.rounding`` (the payment's stored terms), not this policy's.
        """
        return split_refund(original, already_refunded, refund)


#: Given a mentor id, returns that mentor's policy override, or ``None`` for the default.
CommissionResolver = Callable[[str], CommissionPolicy | None]


def split_refund(original: Split, already_refunded: Money, refund: Money) -> Split:
    """Split ``refund`` into the fee and payout it reverses, given what was refunded before.

    With ``G``, ``P`` the original gross and payout, the payout reversed after refunds
    totalling ``R`` is ``round(P * R / G)`` in ``original.rounding``; this refund reverses
    ``target(already + refund) - target(already)`` of payout and the rest of ``refund`` of fee.
    Over any sequence of partial refunds the parts are non-negative, never exceed the original
    fee and payout, and add up to exactly those at full refund.

    Raises :class:`InvalidAmountError` for negative amounts or a refund above the remaining
    refundable amount, and :class:`CurrencyMismatchError` for another currency.
    """
    if not isinstance(original, Split):
        raise TypeError(f"original must be a Split, not {type(original).__name__}")
    _check_money(already_refunded, "already_refunded")
    _check_money(refund, "refund")
    gross = original.gross
    for name, value in (("already_refunded", already_refunded), ("refund", refund)):
        if value.currency != gross.currency:
            raise CurrencyMismatchError(
                f"{name} is in {value.currency} but the payment is in {gross.currency}",
                currency=gross.currency,
                other_currency=value.currency,
            )
        if value.is_negative():
            raise InvalidAmountError(
                f"{name} cannot be negative, got {value}",
                amount=value.amount,
                currency=value.currency,
            )
    before = already_refunded.amount
    after = before + refund.amount
    if after > gross.amount:
        remaining = gross.amount - before
        raise InvalidAmountError(
            f"refund of {refund} exceeds the {Money(max(remaining, 0), gross.currency)} "
            f"still refundable on a payment of {gross} (already refunded {already_refunded})",
            amount=refund.amount,
            currency=gross.currency,
            refundable=max(remaining, 0),
        )
    if gross.is_zero():
        payout_part = 0
    else:
        payout = original.mentor_payout.amount

        def target(refunded: int) -> int:
            return _div_round(payout * refunded, gross.amount, original.rounding)

        payout_part = target(after) - target(before)
    return Split(
        gross=refund,
        platform_fee=Money(refund.amount - payout_part, gross.currency),
        mentor_payout=Money(payout_part, gross.currency),
        rate_bps=original.rate_bps,
        rounding=original.rounding,
    )


def resolve_policy(
    default: CommissionPolicy, resolver: CommissionResolver | None, mentor_id: str
) -> CommissionPolicy:
    """The policy for ``mentor_id``: the resolver's override if it returns one, else ``default``."""
    if resolver is None:
        return default
    override = resolver(mentor_id)
    if override is None:
        return default
    if not isinstance(override, CommissionPolicy):
        raise TypeError(
            f"a CommissionResolver must return CommissionPolicy or None, "
            f"not {type(override).__name__}"
        )
    return override
