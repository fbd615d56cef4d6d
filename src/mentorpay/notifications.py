"""Receipts and notices by email, sent once per business effect, after it committed.

The original application's "email notifications" next step. mentorpay does not send mail
itself: the host passes a :class:`Mailer` (its SMTP client, SES, a task queue) and a way to look
up a user's address. :func:`install_receipts` registers after-commit callbacks, so a message
goes out exactly once per payment, refund, dispute or payout, never for a duplicate delivery or
a rolled-back attempt; a mailer that raises is logged and undoes nothing.

Messages: a receipt to the mentee and an earnings note to the mentor when a payment succeeds; a
refund notice to the mentee; a dispute notice to the mentor when one opens and when it closes;
a payout notice to the mentor when a payout settles.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from mentorpay.events import Effect
from mentorpay.ledger import LedgerService
from mentorpay.money import Money
from mentorpay.webhooks import WebhookProcessor

__all__ = ["ContactLookup", "EmailMessage", "Mailer", "install_receipts", "render"]

logger = logging.getLogger("mentorpay.notifications")

#: A user id -> email address (None: nobody to tell).
ContactLookup = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class EmailMessage:
    """One plain-text message."""

    to: str
    subject: str
    body: str


@runtime_checkable
class Mailer(Protocol):
    """Implemented by the host: deliver one message (raise on failure; it is logged)."""

    def send(self, message: EmailMessage) -> None: ...


def render(effect: Effect, ledger: LedgerService) -> list[tuple[str, str, str]]:
    """The (user id, subject, body) messages an effect calls for."""
    d = effect.data
    if effect.kind == "payment_succeeded":
        cur = d["currency"]
        paid, fee, earned = (Money(d[k], cur) for k in ("amount", "platform_fee", "mentor_payout"))
        booking = d["booking_id"]
        return [
            (
                d["mentee_id"],
                f"Receipt: {paid} for booking {booking}",
                f"Thank you for your payment of {paid} for booking {booking}.\n"
                f"Reference: {d['payment_intent_id']}.",
            ),
            (
                d["mentor_id"],
                f"You earned {earned} from booking {booking}",
                f"Booking {booking} was paid: {paid}, platform commission {fee}, "
                f"your earnings {earned}.\nThey become available once the session took place.",
            ),
        ]
    if effect.kind == "refund_applied":
        payment = ledger.payment(d["payment_intent_id"])
        refunded = Money(d["amount"], d["currency"]) if d.get("amount") is not None else None
        what = f"{refunded}" if refunded is not None else "a refund"
        return [
            (
                payment.mentee_id,
                f"Refund of {what} for booking {payment.booking_id}",
                f"We refunded {what} of your payment of {payment.gross} for booking "
                f"{payment.booking_id}. It reaches your card in 5-10 business days.",
            )
        ]
    if effect.kind in ("dispute_opened", "dispute_closed"):
        payment = ledger.payment(d["payment_intent_id"])
        if effect.kind == "dispute_opened":
            subject = f"Payment for booking {payment.booking_id} is disputed"
            body = (
                f"The payer disputed {Money(d['amount'], d['currency'])} of booking "
                f"{payment.booking_id}. Your share is held until the bank decides."
            )
        else:
            outcome = "won: your earnings are released" if d["won"] else "lost"
            subject = f"Dispute for booking {payment.booking_id} closed"
            body = f"The dispute on booking {payment.booking_id} was {outcome}."
        return [(payment.mentor_id, subject, body)]
    if effect.kind == "payout_settled":
        amount = Money(d["amount"], d["currency"])
        status = d["status"]
        subject = f"Payout of {amount}: {status}"
        body = {
            "paid": f"Your payout of {amount} was sent.",
            "failed": f"Your payout of {amount} failed; the money is back in your balance.",
            "reversed": f"Your payout of {amount} was reversed; it is back in your balance.",
        }.get(status, f"Your payout of {amount} is {status}.")
        return [(d["mentor_id"], subject, body)]
    return []


def install_receipts(
    webhooks: WebhookProcessor, ledger: LedgerService, mailer: Mailer, contacts: ContactLookup
) -> None:
    """Send receipts and notices through ``mailer`` after each committed business effect."""

    def send(effect: Effect) -> None:
        for user_id, subject, body in render(effect, ledger):
            address = contacts(user_id)
            if not address:
                logger.info("no email address for user %s; %r not sent", user_id, subject)
                continue
            mailer.send(EmailMessage(address, subject, body))

    for kind in (
        "payment_succeeded",
        "refund_applied",
        "dispute_opened",
        "dispute_closed",
        "payout_settled",
    ):
        webhooks.on(kind, send)
