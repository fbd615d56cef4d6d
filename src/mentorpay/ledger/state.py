"""A payment's state as the posting rules read it: the payment row's columns, read under the
service's row lock into a frozen value, and the statuses a payment row can carry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

from mentorpay.commission import Rounding, Split
from mentorpay.money import Money

#: Every status the ledger writes on a payment row (:func:`payment_status` and capture).
PaymentStatus = Literal[
    "succeeded", "needs_review", "partially_refunded", "refunded", "disputed", "dispute_lost"
]


@dataclass(frozen=True, slots=True)
class PaymentState:
    """A payment row as the rules read it (under the service's row lock). Field order is the
    order the service selects the columns in."""

    id: int
    payment_intent_id: str
    booking_id: str
    mentor_id: str
    mentee_id: str
    currency: str
    status: PaymentStatus
    amount: int
    platform_fee: int
    mentor_payout: int
    rate_bps: int
    rounding: Rounding
    amount_reversed: int
    fee_reversed: int
    payout_reversed: int
    amount_refunded: int
    refund_failed: int
    refund_applied: int
    payout_held: int
    amount_disputed: int
    review_reason: str | None
    destination: str | None
    released_at: datetime | None
    created_at: datetime | None
    #: Refunds the platform keeps its fee on (a late cancellation): taken from the payout only.
    fee_kept: int = 0
    #: Stripe's fees posted for this payment (``stripe_fees``), net of fees returned.
    stripe_fee: int = 0
    #: Plan periods: the part of the free share already moved to available session by session
    #: while the payment as a whole is unreleased; the rest of the free share is pending.
    payout_released: int = 0

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> PaymentState:
        """From a row mapping or a plain dict; absent columns default to 0 / None."""
        return cls(**{f.name: m.get(f.name, _DEFAULTS.get(f.name)) for f in fields(cls)})

    @property
    def free(self) -> int:
        """The mentor's share of this payment neither reversed nor held by a dispute."""
        return max(0, self.mentor_payout - self.payout_reversed - self.payout_held)

    @property
    def pending_part(self) -> int:
        """The free share still pending: all of it for a booking's unreleased payment, the
        sessions not yet released for a plan period's; 0 once released or transferred."""
        if self.released_at is not None or self.destination is not None:
            return 0
        return max(0, self.free - self.payout_released)

    @property
    def split(self) -> Split:
        """The split frozen at capture, with the payment's own rounding."""
        cur = self.currency
        return Split(
            Money(self.amount, cur),
            Money(self.platform_fee, cur),
            Money(self.mentor_payout, cur),
            self.rate_bps,
            self.rounding,
        )


_DEFAULTS: dict[str, Any] = {f.name: 0 for f in fields(PaymentState) if f.type == "int"} | {
    "rounding": "half_even"
}

STATE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(PaymentState))
