"""What a checkout asks of Stripe, and the checks made before anything is written: the
booking, its owner, its status and price, the redirect URLs and the commission split."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from sqlalchemy import Row

from mentorpay.bookings import PAYABLE_STATUSES, BookingInfo
from mentorpay.config import MentorpayConfig
from mentorpay.db import check_id
from mentorpay.errors import (
    BookingNotFoundError,
    BookingNotPayableError,
    InvalidAmountError,
    InvalidRequestError,
    NotBookingOwnerError,
    PaymentPendingError,
)
from mentorpay.money import Money, check_charge_amount, minimum_charge_amount

__all__ = [
    "ABANDONED",
    "AWAITING_PAYMENT",
    "COMPLETE",
    "CREATING",
    "EXPIRED",
    "OPEN",
    "CheckoutRequest",
    "CheckoutSessionInfo",
    "SessionStatus",
    "build_request",
    "default_line_item_name",
    "payment_pending",
]

#: The statuses of a checkout session row (``payment_failed`` is written by the webhook handlers).
SessionStatus = Literal[
    "creating", "open", "expired", "abandoned", "complete", "awaiting_payment", "payment_failed"
]
CREATING: Final[SessionStatus] = "creating"
OPEN: Final[SessionStatus] = "open"
EXPIRED: Final[SessionStatus] = "expired"
ABANDONED: Final[SessionStatus] = "abandoned"
COMPLETE: Final[SessionStatus] = "complete"
# Set by the webhook handlers while a delayed payment (bank debit) is pending.
AWAITING_PAYMENT: Final[SessionStatus] = "awaiting_payment"


def payment_pending(row: Row[Any]) -> PaymentPendingError:
    """The refusal while the delayed payment of checkout session ``row`` is pending."""
    return PaymentPendingError(
        f"booking {row.booking_id} has a delayed payment pending (a bank debit through checkout "
        f"session {row.id}), which Stripe confirms within a few business days. The booking "
        "cannot be paid again meanwhile: if the debit succeeds it is paid; if it fails, a new "
        "checkout can be started.",
        booking_id=row.booking_id,
        session_id=row.id,
    )


def default_line_item_name(booking: BookingInfo) -> str:
    """``Booking <id>``: the product name the mentee sees by default."""
    return f"Booking {booking.id}"


@dataclass(frozen=True, slots=True)
class CheckoutSessionInfo:
    """The Checkout Session a mentee is sent to. ``reused``: an existing open session."""

    session_id: str
    url: str
    booking_id: str
    amount: Money
    platform_fee: Money
    expires_at: datetime
    status: str
    reused: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for adapters."""
        return {
            "session_id": self.session_id,
            "url": self.url,
            "booking_id": self.booking_id,
            "amount": self.amount.amount,
            "currency": self.amount.currency,
            "amount_display": str(self.amount),
            "expires_at": self.expires_at.isoformat(),
            "status": self.status,
            "reused": self.reused,
        }


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    """Everything that decides the Stripe request, computed once per call."""

    booking: BookingInfo
    price: Money
    platform_fee: Money
    application_fee: Money | None
    destination: str | None
    line_item_name: str
    success_url: str
    cancel_url: str

    @property
    def fingerprint(self) -> str:
        """Digest of the terms besides amount that change the Stripe request."""
        terms = "|".join(
            (
                self.booking.mentee_id,
                self.booking.mentor_id,
                str(self.application_fee.amount if self.application_fee else ""),
                self.destination or "",
                self.line_item_name,
            )
        )
        return hashlib.sha256(terms.encode()).hexdigest()[:12]


def build_request(
    config: MentorpayConfig,
    booking: BookingInfo | None,
    booking_id: str,
    *,
    user_id: str,
    success_url: str,
    cancel_url: str,
    line_item_name: Callable[[BookingInfo], str],
    destination_for: Callable[[BookingInfo], str | None] | None = None,
) -> CheckoutRequest:
    """The terms of the Stripe request for ``user_id`` paying ``booking`` (as the host's
    BookingSource returned it for ``booking_id``), after the checks in the package docstring
    that need no database. ``destination_for``: the mentor's connected account as mentorpay
    keeps it (``AccountService.destination``, which refuses one not ready for charges)."""
    if booking is not None:
        for name in ("id", "mentee_id", "mentor_id"):
            check_id(getattr(booking, name), field=name, label=f"booking {name}")
    if booking is None:
        raise BookingNotFoundError(f"there is no booking {booking_id}", booking_id=booking_id)
    if user_id != booking.mentee_id:
        raise NotBookingOwnerError(
            "only the mentee who made the booking can pay for it", booking_id=booking_id
        )
    if booking.status not in PAYABLE_STATUSES:
        raise BookingNotPayableError(
            f"booking {booking_id} is {booking.status}; only "
            f"{' or '.join(sorted(PAYABLE_STATUSES))} bookings can be paid",
            booking_id=booking_id,
            status=booking.status,
        )
    price = booking.price
    if price is None:
        raise BookingNotPayableError(
            f"booking {booking_id} has no price", booking_id=booking_id, reason="no_price"
        )
    check_charge_amount(price)
    minimum = minimum_charge_amount(price.currency)
    if minimum is not None and price.amount < minimum:
        raise InvalidAmountError(
            f"Stripe's minimum charge in {price.currency} is {Money(minimum, price.currency)}"
            f"; booking {booking_id} costs {price}",
            amount=price.amount,
            currency=price.currency,
            minimum=minimum,
            rule="minimum_charge",
        )
    for name, url in (("success_url", success_url), ("cancel_url", cancel_url)):
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidRequestError(f"{name} must be an absolute http(s) URL", field=name)
    split = config.policy_for(booking.mentor_id).split(price)
    application_fee: Money | None = None
    destination: str | None = None
    if config.connect_destination_charges:
        destination = booking.mentor_stripe_account
        if destination_for is not None:
            destination = destination_for(booking)
        if not destination:
            raise BookingNotPayableError(
                f"the mentor of booking {booking_id} has no connected Stripe account to "
                "receive the payment",
                booking_id=booking_id,
                reason="mentor_not_connected",
            )
        application_fee = split.platform_fee
    return CheckoutRequest(
        booking=booking,
        price=price,
        platform_fee=split.platform_fee,
        application_fee=application_fee,
        destination=destination,
        line_item_name=line_item_name(booking),
        success_url=success_url,
        cancel_url=cancel_url,
    )
