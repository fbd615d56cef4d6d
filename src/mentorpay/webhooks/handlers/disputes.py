"""Dispute events: hold the mentor's share at ``created``, settle it at ``closed``.

Following Stripe's statuses, each dispute id with its own hold: ``won`` releases that hold;
``lost`` reverses the disputed amount like a refund; ``warning_closed`` (an inquiry that never
became a chargeback) and ``prevented`` (no funds were withdrawn) release the hold like a win. A
``closed`` event arriving before its ``created`` event first opens the dispute, so the late
``created`` finds it open and changes nothing. ``charge.dispute.funds_withdrawn`` /
``funds_reinstated`` have no handler (recorded and ignored): the hold at ``created`` and the
outcome at ``closed`` already account for the money they describe. A dispute of a payment not
recorded yet is deferred until it is.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Connection

from mentorpay.events import Effect, EventEnvelope, Handler, HandlerResult
from mentorpay.money import Money
from mentorpay.stripe_objects import DisputeObject, event_money, parse_object
from mentorpay.webhooks.handlers._common import DeferringHandlers, intent_for

__all__ = ["DisputeHandlers"]

logger = logging.getLogger("mentorpay.webhooks")


class DisputeHandlers(DeferringHandlers):
    """``charge.dispute.created`` and ``charge.dispute.closed``."""

    def webhook_handlers(self) -> dict[str, Handler]:
        """The handlers to register (see the module docstring)."""
        return {
            "charge.dispute.created": self._on_dispute_created,
            "charge.dispute.closed": self._on_dispute_closed,
        }

    def _on_dispute_created(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """Hold the mentor's share of the disputed amount."""
        dispute = parse_object(DisputeObject, env)
        located = _locate(conn, env, dispute)
        if located is None:
            return HandlerResult("ignored")
        pi, amount = located

        def apply() -> HandlerResult:
            return HandlerResult("success", self._open(conn, env, pi, dispute, amount))

        return self._defer(conn, pi, apply)

    def _on_dispute_closed(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """Won (or an inquiry closed, or prevented): release the hold. Lost: reverse it."""
        dispute = parse_object(DisputeObject, env)
        if dispute.status in ("won", "warning_closed", "prevented"):
            won = True
        elif dispute.status == "lost":
            won = False
        else:
            logger.warning(
                "dispute %s closed with unexpected status %r; ignored", dispute.id, dispute.status
            )
            return HandlerResult("ignored")
        located = _locate(conn, env, dispute)
        if located is None:
            return HandlerResult("ignored")
        pi, amount = located

        def apply() -> HandlerResult:
            # Opening first makes a "closed" that overtook its "created" net out correctly.
            effects = self._open(conn, env, pi, dispute, amount)
            posting = self._ledger.close_dispute(pi, dispute.id, won=won, conn=conn)
            if posting.created:
                effects.append(
                    Effect(
                        "dispute_closed",
                        {
                            "event_id": env.id,
                            "payment_intent_id": pi,
                            "dispute_id": dispute.id,
                            "status": dispute.status,
                            "won": won,
                            "currency": amount.currency,
                            "amount": amount.amount,
                            "held": posting.amount.amount if posting.amount else None,
                        },
                    )
                )
            return HandlerResult("success", effects)

        return self._defer(conn, pi, apply)

    def _open(
        self,
        conn: Connection,
        env: EventEnvelope,
        pi: str,
        dispute: DisputeObject,
        amount: Money,
    ) -> list[Effect]:
        posting = self._ledger.open_dispute(pi, dispute.id, amount, conn=conn)
        if not posting.created:
            return []
        return [
            Effect(
                "dispute_opened",
                {
                    "event_id": env.id,
                    "payment_intent_id": pi,
                    "dispute_id": dispute.id,
                    "currency": amount.currency,
                    "amount": amount.amount,
                    "held": posting.amount.amount if posting.amount else None,
                },
            )
        ]


def _locate(
    conn: Connection, env: EventEnvelope, dispute: DisputeObject
) -> tuple[str, Money] | None:
    """The disputed payment intent and amount, or None (logged) if it names no payment."""
    pi = intent_for(conn, dispute.payment_intent, dispute.charge)
    if pi is None:
        logger.info("dispute %s has no payment intent; ignored", dispute.id)
        return None
    return pi, event_money(dispute.amount, dispute.currency, env)
