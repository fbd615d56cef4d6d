"""Whether a payment Stripe reports agrees with what mentorpay asked Stripe for.

A signed event is Stripe's word about *a* payment, not about *our* booking: its metadata travels
with objects anyone holding the platform's keys can create, so it may only locate the booking.
The facts that decide who is credited and how much come from mentorpay's own checkout-session row
(what checkout asked Stripe to charge) or, without one (a host's own PaymentIntent flow), from
the host's :class:`~mentorpay.bookings.BookingSource`. These rules are pure: they compare those
facts with the event and name every disagreement; the webhook handler parks a disagreeing
payment on the platform's suspense account for an operator.
"""

from __future__ import annotations

from dataclasses import dataclass

from mentorpay.bookings import PAYABLE_STATUSES, BookingInfo
from mentorpay.money import Money

__all__ = ["Claim", "Expected", "disagreements"]


@dataclass(frozen=True, slots=True)
class Expected:
    """What mentorpay asked Stripe to charge: from its checkout row, else from the booking."""

    booking_id: str
    mentor_id: str
    mentee_id: str
    price: Money | None
    #: "checkout": mentorpay created the session; "booking": the host's own payment flow.
    source: str


@dataclass(frozen=True, slots=True)
class Claim:
    """What the event says: the money Stripe took and the ids its metadata names."""

    gross: Money
    booking_id: str | None
    mentor_id: str | None
    mentee_id: str | None


def disagreements(
    expected: Expected,
    claim: Claim,
    booking: BookingInfo | None,
    *,
    paid_by: str | None,
) -> list[str]:
    """Every reason this payment may not credit ``expected``'s mentor; empty when it agrees.

    ``booking`` is the host's booking as it is now (None: unknown to the host); ``paid_by`` is
    another payment intent that already paid the booking, if any.
    """
    reasons: list[str] = []
    if booking is None:
        reasons.append(f"unknown_booking: the host does not know booking {expected.booking_id}")
    price = expected.price
    if price is None and booking is not None:
        reasons.append(f"no_price: booking {expected.booking_id} has no price")
    elif price is None:
        pass
    elif claim.gross.currency != price.currency:
        reasons.append(f"currency_mismatch: paid {claim.gross}, the booking costs {price}")
    elif claim.gross != price:
        reasons.append(f"amount_mismatch: paid {claim.gross}, the booking costs {price}")
    for role, named, truth in (
        ("booking", claim.booking_id, expected.booking_id),
        ("mentor", claim.mentor_id, expected.mentor_id),
        ("mentee", claim.mentee_id, expected.mentee_id),
    ):
        if named is not None and named != truth:
            reasons.append(
                f"{role}_mismatch: the event names {role} {named}, mentorpay's is {truth}"
            )
    if booking is not None:
        if expected.source == "checkout" and (
            booking.mentor_id != expected.mentor_id
            or booking.mentee_id != expected.mentee_id
            or booking.price != price
        ):
            reasons.append(
                f"booking_changed: booking {expected.booking_id} was reassigned or repriced "
                "after its checkout session was created"
            )
        if expected.source == "booking" and booking.status not in PAYABLE_STATUSES:
            reasons.append(
                f"not_payable: booking {expected.booking_id} is {booking.status}, not payable"
            )
    if paid_by is not None:
        reasons.append(f"already_paid: booking {expected.booking_id} was already paid by {paid_by}")
    return reasons
