"""Cancellation policies: how much of a booking's payment a cancellation refunds. Pure.

A :class:`CancellationPolicy` maps who cancelled and how long before the session to a refund:

* the mentee: the first :class:`RefundWindow` whose ``notice`` the cancellation meets gives the
  refund percentage (in basis points); less notice than every window gives ``late_refund_bps``.
  A cancellation refunding less than everything is *late*; with ``keep_fee_on_late`` the
  platform keeps its commission on it: the refund comes out of the mentor's share only, so it
  never exceeds what is left of that share.
* the mentor or the platform (a mentor no-show is cancelled by the platform): a full refund of
  what remains, the platform's fee included.

Money is exact: the refund is ``remaining * bps / 10000`` rounded once (half-even) to the
currency's charge step, then capped by what remains refundable (and, fee kept, by the mentor's
share left), so it never exceeds either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final, Literal, get_args

from mentorpay.commission import _div_round
from mentorpay.errors import InvalidRequestError
from mentorpay.money import Money, charge_increment

__all__ = [
    "CancellationDecision",
    "CancellationPolicy",
    "CancelledBy",
    "RefundWindow",
    "describe_notice",
]

#: Who cancels a booking. A mentor no-show is reported by the platform.
CancelledBy = Literal["mentee", "mentor", "platform"]
CANCELLED_BY: Final[frozenset[str]] = frozenset(get_args(CancelledBy))
_FULL: Final = 10_000


def _bps(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= _FULL:
        raise InvalidRequestError(f"{what} must be an int between 0 and 10000 basis points")
    return value


@dataclass(frozen=True, slots=True)
class RefundWindow:
    """A mentee cancelling at least ``notice`` before the session gets ``refund_bps`` back."""

    notice: timedelta
    refund_bps: int

    def __post_init__(self) -> None:
        if not isinstance(self.notice, timedelta) or self.notice < timedelta(0):
            raise InvalidRequestError("a refund window's notice must be a timedelta >= 0")
        _bps(self.refund_bps, "refund_bps")


@dataclass(frozen=True, slots=True)
class CancellationDecision:
    """What a cancellation refunds and why. ``fee_kept``: the refund comes out of the mentor's
    share only (the platform keeps its commission)."""

    refund: Money
    refund_bps: int
    fee_kept: bool
    rule: str


@dataclass(frozen=True, slots=True)
class CancellationPolicy:
    """Refund percentages by notice (see the module docstring). Default: a full refund 48 hours
    or more ahead, half 24 hours or more ahead, nothing later; the fee is kept when late."""

    windows: tuple[RefundWindow, ...] = field(
        default=(
            RefundWindow(timedelta(hours=48), _FULL),
            RefundWindow(timedelta(hours=24), 5_000),
        )
    )
    late_refund_bps: int = 0
    keep_fee_on_late: bool = True

    def __post_init__(self) -> None:
        if not all(isinstance(w, RefundWindow) for w in self.windows):
            raise InvalidRequestError("windows must be RefundWindow values")
        _bps(self.late_refund_bps, "late_refund_bps")
        # Longest notice first, so the first window met is the most generous one that applies.
        ordered = tuple(sorted(self.windows, key=lambda w: w.notice, reverse=True))
        object.__setattr__(self, "windows", ordered)

    def refund_bps(self, by: CancelledBy, notice: timedelta | None) -> tuple[int, str]:
        """The refund percentage for a cancellation by ``by`` with ``notice`` before the
        session (negative: after it started), and the rule that gave it."""
        if by not in CANCELLED_BY:
            raise InvalidRequestError(
                f"by must be one of {sorted(CANCELLED_BY)}, got {by!r}", cancelled_by=by
            )
        if by != "mentee":
            return _FULL, f"cancelled by the {by}: full refund"
        if notice is None:
            raise InvalidRequestError(
                "the booking has no session time (BookingInfo.starts_at), so the cancellation "
                "windows cannot apply"
            )
        for window in self.windows:
            if notice >= window.notice:
                ahead = describe_notice(window.notice)
                return window.refund_bps, f"cancelled by the mentee at least {ahead} ahead"
        return self.late_refund_bps, f"cancelled by the mentee with {_notice(notice)} notice"

    def decide(
        self,
        by: CancelledBy,
        notice: timedelta | None,
        *,
        remaining: Money,
        payout_left: Money,
    ) -> CancellationDecision:
        """The refund of a cancellation: ``remaining`` is what the payment has left to refund,
        ``payout_left`` the mentor's share not yet reversed (the cap when the fee is kept)."""
        if remaining.currency != payout_left.currency:
            raise InvalidRequestError("remaining and payout_left must be in one currency")
        bps, rule = self.refund_bps(by, notice)
        cur = remaining.currency
        step = charge_increment(cur)
        whole = max(remaining.amount, 0)
        amount = _div_round(whole * bps, _FULL * step, "half_even") * step
        fee_kept = by == "mentee" and bps < _FULL and self.keep_fee_on_late
        cap = whole
        if fee_kept:
            cap = min(cap, max(payout_left.amount, 0) // step * step)
            rule += "; the platform keeps its fee"
        return CancellationDecision(Money(min(amount, cap), cur), bps, fee_kept, rule)


def _notice(notice: timedelta) -> str:
    if notice < timedelta(0):
        return "no"
    return describe_notice(notice)


def describe_notice(notice: timedelta) -> str:
    """A notice for people: whole hours as "24 hours", anything else to the minute."""
    minutes = int(notice.total_seconds()) // 60
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour" if hours == 1 else f"{hours} hours"
    return f"{minutes // 60}h{minutes % 60:02d}m"
