"""Receipts and notices by email, sent once per business effect, after it committed.

The original application's "email notifications" next step. mentorpay does not send mail
itself: the host passes a :class:`Mailer` (its SMTP client, SES, a task queue) and a way to look
up a user's address. :func:`install_receipts` registers after-commit callbacks, so a message
goes out once per payment, refund, dispute or payout, never for a duplicate delivery or a
rolled-back attempt; a mailer that raises is logged, undoes nothing, and the effect stays in the
outbox for ``deliver_pending`` to try again.

Effects are delivered at least once (:mod:`mentorpay.outbox`), so each message carries a
Message-ID derived from the effect's stable id, and with a database (``engine=``, which
``mp.send_receipts`` passes) the ids of messages sent are recorded: a redelivered effect sends
only the messages that did not go out. A crash between the mailer's ``send`` and that record
can still repeat one message, with the same Message-ID, which mail systems deduplicate.

Messages: a receipt to the mentee and an earnings note to the mentor when a payment succeeds; a
refund notice to the mentee; a dispute notice to the mentor when one opens and when it closes;
a payout notice to the mentor when a payout settles. Plans: a receipt and an earnings note per
paid period or package, and notices to the mentee when a renewal fails, is coming, or the plan
is cancelled.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.db import insert_for, read_connection, run_in_transaction
from mentorpay.effects import Effect, EffectKind
from mentorpay.ledger import LedgerService
from mentorpay.models import sent_messages_table as _sent
from mentorpay.money import Money

__all__ = [
    "ContactLookup",
    "EmailMessage",
    "Mailer",
    "install_receipts",
    "message_id_for",
    "render",
    "sent_before",
]

logger = logging.getLogger("mentorpay.notifications")


class EffectSource(Protocol):
    """Where after-commit callbacks are registered: the effect bus (``mp.effects``), or a
    :class:`~mentorpay.webhooks.WebhookProcessor`, whose ``on`` delegates to it."""

    def on(self, effect_kind: EffectKind, callback: Callable[[Effect], None]) -> None: ...


#: A user id -> email address (None: nobody to tell).
ContactLookup = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class EmailMessage:
    """One plain-text message."""

    to: str
    subject: str
    body: str
    #: RFC 5322 Message-ID, stable across redeliveries of one effect (None: effect had no id).
    message_id: str | None = None


def message_id_for(effect: Effect, index: int) -> str | None:
    """The Message-ID of the ``index``-th message an effect calls for (None without an id)."""
    if not effect.id:
        return None
    digest = hashlib.sha256(f"{effect.id}#{index}".encode()).hexdigest()[:40]
    return f"<{digest}@mentorpay>"


@runtime_checkable
class Mailer(Protocol):
    """Implemented by the host: deliver one message (raise on failure; it is logged)."""

    def send(self, message: EmailMessage) -> None: ...


def _what(booking_id: str) -> str:
    """How a message names what was paid: a booking, or a plan (its payments carry the
    ``plan:...`` booking id of :mod:`mentorpay.webhooks.handlers.plans`)."""
    return "your plan" if booking_id.startswith("plan:") else f"booking {booking_id}"


def _plan_messages(effect: Effect) -> list[tuple[str, str, str]]:
    d = effect.data
    mentee, mentor = d["mentee_id"], d["mentor_id"]
    if effect.kind == "plan_period_paid":
        cur = d["currency"]
        paid, earned = Money(d["amount"], cur), Money(d["mentor_payout"], cur)
        sessions = d["credits"]
        return [
            (
                mentee,
                f"Receipt: {paid} for {sessions} mentoring sessions",
                f"Thank you for your payment of {paid}: {sessions} session credits, usable until "
                f"{d['expires_at'][:10]}.\nReference: {d['payment_intent_id']}.",
            ),
            (
                mentor,
                f"You earned {earned} from a plan",
                f"A plan was paid: {paid}, your earnings {earned}. Each session's share becomes "
                "available once it took place; unused sessions' shares when they lapse.",
            ),
        ]
    if effect.kind == "plan_payment_failed":
        return [
            (
                mentee,
                "Your plan's payment failed",
                "We could not take your plan's renewal payment. Please update your payment "
                "method; we will try again.",
            )
        ]
    if effect.kind == "plan_renewal_upcoming":
        when = (d.get("renews_at") or "soon")[:10]
        return [(mentee, "Your plan renews soon", f"Your mentoring plan renews on {when}.")]
    if effect.kind == "plan_canceled":
        return [
            (
                mentee,
                "Your plan was cancelled",
                "Your mentoring plan was cancelled; sessions already paid for stay usable "
                "until they lapse.",
            )
        ]
    return []


def render(effect: Effect, ledger: LedgerService) -> list[tuple[str, str, str]]:
    """The (user id, subject, body) messages an effect calls for."""
    d = effect.data
    if effect.kind.startswith("plan_"):
        return _plan_messages(effect)
    if effect.kind == "payment_succeeded" and str(d["booking_id"]).startswith("plan:"):
        return []  # a plan period: its plan_period_paid effect sends the receipt
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
                f"Refund of {what} for {_what(payment.booking_id)}",
                f"We refunded {what} of your payment of {payment.gross} for "
                f"{_what(payment.booking_id)}. It reaches your card in 5-10 business days.",
            )
        ]
    if effect.kind in ("dispute_opened", "dispute_closed"):
        payment = ledger.payment(d["payment_intent_id"])
        if effect.kind == "dispute_opened":
            subject = f"Payment for {_what(payment.booking_id)} is disputed"
            body = (
                f"The payer disputed {Money(d['amount'], d['currency'])} of "
                f"{_what(payment.booking_id)}. Your share is held until the bank decides."
            )
        else:
            outcome = "won: your earnings are released" if d["won"] else "lost"
            subject = f"Dispute for {_what(payment.booking_id)} closed"
            body = f"The dispute on {_what(payment.booking_id)} was {outcome}."
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


class _SentLog:
    """Message-IDs already handed to the mailer: in the database when there is one."""

    def __init__(self, engine: Engine | None) -> None:
        self._engine = engine
        self._seen: set[str] = set()

    def seen(self, message_id: str) -> bool:
        if message_id in self._seen:
            return True
        if self._engine is None:
            return False
        with read_connection(self._engine) as conn:
            found = conn.execute(
                select(_sent.c.message_id).where(_sent.c.message_id == message_id)
            ).first()
        return found is not None

    def add(self, message_id: str, effect_id: str) -> None:
        self._seen.add(message_id)
        if self._engine is None:
            return

        def do(conn: Connection) -> None:
            stmt = insert_for(conn, _sent).on_conflict_do_nothing(index_elements=["message_id"])
            conn.execute(
                stmt, {"message_id": message_id, "effect_id": effect_id, "sent_at": utcnow()}
            )

        try:
            run_in_transaction(self._engine, do)
        except Exception:
            # Sent but not recorded: a redelivery may repeat it, with the same Message-ID.
            logger.exception("could not record sent message %s", message_id)


def install_receipts(
    webhooks: EffectSource,
    ledger: LedgerService,
    mailer: Mailer,
    contacts: ContactLookup,
    *,
    engine: Engine | None = None,
) -> None:
    """Send receipts and notices through ``mailer`` after each committed business effect.

    With ``engine``, messages already sent for an effect are skipped when it is redelivered.
    """
    sent = _SentLog(engine)

    def send(effect: Effect) -> None:
        for index, (user_id, subject, body) in enumerate(render(effect, ledger)):
            address = contacts(user_id)
            if not address:
                logger.info("no email address for user %s; %r not sent", user_id, subject)
                continue
            message_id = message_id_for(effect, index)
            if message_id is not None and sent.seen(message_id):
                logger.info("message %s for effect %s already sent", message_id, effect.id)
                continue
            mailer.send(EmailMessage(address, subject, body, message_id))
            if message_id is not None:
                sent.add(message_id, effect.id)

    for kind in (
        "payment_succeeded",
        "refund_applied",
        "dispute_opened",
        "dispute_closed",
        "payout_settled",
        "plan_period_paid",
        "plan_payment_failed",
        "plan_renewal_upcoming",
        "plan_canceled",
    ):
        webhooks.on(kind, send)


def sent_before(conn: Connection, before: datetime, *, delete: bool = False) -> int:
    """Sent-message records older than ``before`` in ``conn``: counted, or deleted."""
    old = _sent.c.sent_at < before
    if delete:
        return int(conn.execute(_sent.delete().where(old)).rowcount)
    return int(conn.execute(select(func.count()).where(old)).scalar_one())
