"""What mentorpay needs to know about a booking, and the protocol the host app implements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from mentorpay.money import Money

__all__ = ["PAYABLE_STATUSES", "BookingInfo", "BookingSource"]

#: Booking statuses for which a mentee may still pay.
PAYABLE_STATUSES = frozenset({"pending", "confirmed"})


@dataclass(frozen=True, slots=True)
class BookingInfo:
    """A booking as the host app describes it. Ids are strings (pass ``str(id)``)."""

    id: str
    mentee_id: str
    mentor_id: str
    price: Money | None
    status: str
    #: The mentor's Stripe connected account (``acct_...``), for Connect destination charges.
    mentor_stripe_account: str | None = None
    #: When the session takes place (aware, UTC); cancellation windows count back from it.
    starts_at: datetime | None = None

    @property
    def payable(self) -> bool:
        """Whether a mentee can pay for this booking now."""
        return self.status in PAYABLE_STATUSES and self.price is not None


@runtime_checkable
class BookingSource(Protocol):
    """Implemented by the host: look a booking up by id, ``None`` when there is none."""

    def get_booking(self, booking_id: str) -> BookingInfo | None: ...
