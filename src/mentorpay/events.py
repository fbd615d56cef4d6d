"""Types shared by the webhook processor and the services that handle events.

A handler receives the open connection (it runs inside the event's transaction and never
commits) and the parsed envelope, and returns a :class:`HandlerResult`. Business effects it
reports are stored in the outbox in the same transaction and delivered to the host's callbacks
after commit, at least once, each with a stable ``Effect.id``. The effect bus that does so is
:mod:`mentorpay.effects`, which re-exports ``Effect``, ``EffectKind`` and ``EFFECT_KINDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Connection

__all__ = [
    "EFFECT_KINDS",
    "Effect",
    "EffectKind",
    "EventData",
    "EventEnvelope",
    "Handler",
    "HandlerResult",
    "HandlerStatus",
]

EffectKind = Literal[
    "payment_succeeded",
    "payment_failed",
    "refund_applied",
    "refund_failed",
    "dispute_opened",
    "dispute_closed",
    "payout_settled",
    "checkout_expired",
    "payment_needs_review",
    "event_rejected",
    "alert",
    "plan_period_paid",
    "plan_payment_failed",
    "plan_renewal_upcoming",
    "plan_canceled",
]
#: Every kind, in the order above (one list: the Literal is the source).
EFFECT_KINDS: tuple[EffectKind, ...] = get_args(EffectKind)

HandlerStatus = Literal[
    "success", "payment_already_processed", "ignored", "deferred", "needs_review"
]


class EventData(BaseModel):
    """``event.data``: the object the event is about (parsed further by its handler)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    object: dict[str, Any]


class EventEnvelope(BaseModel):
    """The fields of a Stripe event mentorpay reads; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    type: str
    created: int
    livemode: bool = False
    api_version: str | None = None
    #: Set on events from connected accounts (Connect webhooks).
    account: str | None = None
    data: EventData


@dataclass(frozen=True, slots=True)
class Effect:
    """A business effect committed by an event, for the host's after-commit callbacks.

    ``id`` is stable across redeliveries (the outbox delivers at least once): the event id, the
    kind and its index within the event's effects, or the ledger business key (payouts). Hosts
    deduplicate on it. Handlers leave it empty; the processor fills it in before storing.
    """

    kind: EffectKind
    data: dict[str, Any]
    # Not part of equality: two records of one effect compare by what happened.
    id: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class HandlerResult:
    """What a handler did. ``waiting_for`` names the payment intent a deferred event awaits."""

    status: HandlerStatus
    effects: list[Effect] = field(default_factory=list)
    waiting_for: str | None = None
    #: Why an event was ignored or a payment parked for review; stored on the inbox row.
    reason: str | None = None


Handler = Callable[[Connection, EventEnvelope], HandlerResult]
