"""Stripe webhooks: verify, parse and apply each event exactly once (:class:`WebhookProcessor`).

The package, by the path of an event:

- :mod:`.processor`: the facade and the pipeline (size, verify, parse, peek, claim, dispatch,
  commit, callbacks), replay and listing.
- :mod:`._signature`: the Stripe-Signature check and its diagnosis.
- :mod:`._inbox`: every statement on the inbox table (``mentorpay_webhook_events``).
- :mod:`._registry`: the one way to register a handler (``WebhookProcessor.register``).
- :mod:`._deferral`: events that arrive before their payment wait, then drain.
- :mod:`._ingest` and :mod:`._worker`: the fast-acknowledge mode (``ingest`` stores with
  shared commits, ``work`` / ``mentorpay worker`` applies in batches).
- :mod:`.handlers`: one module per family of events (payments, refunds, disputes).
- :mod:`mentorpay.stripe_objects` (outside the package): the Stripe objects handlers read.

Effects go to the effect bus (:mod:`mentorpay.effects`), stored in the outbox with the change.
"""

from __future__ import annotations

from mentorpay.webhooks._inbox import INBOX_STATUSES, InboxEvent, InboxStatus
from mentorpay.webhooks._worker import WorkSummary
from mentorpay.webhooks.handlers import HANDLED_EVENT_TYPES
from mentorpay.webhooks.processor import WebhookProcessor, WebhookResult, WebhookStatus

__all__ = [
    "HANDLED_EVENT_TYPES",
    "INBOX_STATUSES",
    "InboxEvent",
    "InboxStatus",
    "WebhookProcessor",
    "WebhookResult",
    "WebhookStatus",
    "WorkSummary",
]
