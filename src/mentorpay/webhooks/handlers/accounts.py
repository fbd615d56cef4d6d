"""``account.updated``: what Stripe says about a mentor's connected account (no money moves).

The one event type accepted from a connected account (see the processor's origin rule). It is
applied only when it comes from the very account it describes, an account mentorpay created,
in that account's mode, and is not older than the last one applied; otherwise it is recorded
``ignored`` with the reason and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.accounts import storage
from mentorpay.accounts.rules import AccountObject, update_refusal
from mentorpay.events import EventEnvelope, Handler, HandlerResult
from mentorpay.stripe_objects import parse_object

__all__ = ["ACCOUNT_EVENT_TYPES", "AccountEventHandlers"]

ACCOUNT_EVENT_TYPES = ("account.updated",)

logger = logging.getLogger("mentorpay.accounts")


class AccountEventHandlers:
    """The ``account.updated`` handler; it runs in the event's transaction."""

    def __init__(self, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock

    def webhook_handlers(self) -> dict[str, Handler]:
        """``{event_type: handler}`` for the registry."""
        return {"account.updated": self.account_updated}

    def account_updated(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """Store the account's flags and requirements, or change nothing (see the module)."""
        obj = parse_object(AccountObject, env)
        stored = storage.by_account(conn, obj.id, lock=True)
        refusal = update_refusal(
            stored,
            obj,
            event_account=env.account,
            event_livemode=env.livemode,
            event_created=env.created,
        )
        if refusal is None and not storage.apply_event(
            conn, obj.id, obj, env.created, self._clock()
        ):
            refusal = "stale account.updated (a newer one was applied meanwhile)"
        if refusal is not None:
            logger.info("account.updated %s ignored: %s", env.id, refusal)
            return HandlerResult("ignored", reason=refusal)
        return HandlerResult("success")
