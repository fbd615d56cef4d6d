"""Stripe's transfer events settle payouts: ``transfer.created`` / ``transfer.updated`` and
``transfer.reversed``, registered on the webhook processor (``WebhookProcessor.register``, through
:meth:`~mentorpay.payouts.PayoutService.webhook_handlers`). They run in the processor's
transaction and never commit.

* ``transfer.created`` / ``transfer.updated``: a transfer of ours exists, so its
  ``processing`` payout is ``paid`` (reserved -> withdrawn). If the transfer shows as fully
  reversed, it is handled like ``transfer.reversed``.
* ``transfer.reversed`` (full reversal): ``paid -> reversed`` (withdrawn -> available), or
  ``processing -> failed`` (reserved -> available) if it never counted as paid.

A transfer event names its payout by the recorded transfer id or by metadata (the webhook may
beat ``execute`` to recording the id), but it settles that payout only when the transfer (in
the configured mode) has the payout's destination, amount, currency and id (once recorded):
:func:`~mentorpay.payouts.rules.transfer_mismatch`. Events from a connected account or the
other mode never get here: the webhook processor refuses them before any handler runs.
Otherwise it is answered ``ignored``, its reason logged at warning, and an ``alert`` effect
(``reason``, ``event_id``, ``payout_request_id``, ...) is emitted; so is a partial reversal,
which is left to a human.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Row
from sqlalchemy.engine import Connection

from mentorpay.events import Effect, EventEnvelope, Handler, HandlerResult
from mentorpay.gateway import GatewayTransfer
from mentorpay.payouts import storage
from mentorpay.payouts.rules import METADATA_PAYOUT_ID, settled_effect, transfer_mismatch
from mentorpay.payouts.views import PayoutView

__all__ = ["TransferEvents", "Transition"]

logger = logging.getLogger("mentorpay.payouts")


class Transition(Protocol):
    """The service's state change: rules, then the conditional write and its posting."""

    def __call__(
        self, conn: Connection, row: Row[Any], target: str, **values: Any
    ) -> PayoutView: ...


class TransferEvents:
    """The transfer-event handlers of one :class:`~mentorpay.payouts.PayoutService`."""

    def __init__(
        self, transition: Transition, *, livemode: bool, clock: Callable[[], datetime]
    ) -> None:
        self._transition = transition
        self._livemode = livemode
        self._clock = clock

    def handlers(self) -> dict[str, Handler]:
        """Event type -> handler, for ``WebhookProcessor.register``."""
        return {
            "transfer.created": self.on_transfer,
            "transfer.updated": self.on_transfer,
            "transfer.reversed": self.on_transfer_reversed,
        }

    def on_transfer(self, conn: Connection, event: EventEnvelope) -> HandlerResult:
        """``transfer.created`` / ``.updated``: processing -> paid."""
        transfer = GatewayTransfer.from_dict(event.data.object)
        if transfer.reversed:
            return self.on_transfer_reversed(conn, event)
        found = self._payout_for(conn, event, transfer)
        if isinstance(found, HandlerResult):
            return found
        row = found
        if row.status in ("paid", "reversed", "failed"):
            return HandlerResult("payment_already_processed")
        if row.status != "processing":
            logger.error(
                "transfer %s arrived for payout %s in status %s; not settling it",
                transfer.id,
                row.id,
                row.status,
            )
            return HandlerResult("ignored")
        view = self._transition(
            conn, row, "paid", transfer_id=transfer.id, settled_at=self._clock()
        )
        return HandlerResult("success", [settled_effect(view)])

    def on_transfer_reversed(self, conn: Connection, event: EventEnvelope) -> HandlerResult:
        """``transfer.reversed``: paid -> reversed, or processing -> failed."""
        transfer = GatewayTransfer.from_dict(event.data.object)
        found = self._payout_for(conn, event, transfer)
        if isinstance(found, HandlerResult):
            return found
        row = found
        if not transfer.reversed and transfer.amount_reversed < transfer.amount:
            # mentorpay only reverses whole transfers; a partial reversal made elsewhere is
            # left to a human (reconciliation reports the difference).
            return _refuse(
                event,
                transfer,
                row.id,
                "partial_reversal",
                f"partial reversal ({transfer.amount_reversed} of {transfer.amount}) not applied",
            )
        if row.status in ("reversed", "failed"):
            return HandlerResult("payment_already_processed")
        now = self._clock()
        if row.status == "paid":
            view = self._transition(conn, row, "reversed", failure_reason="transfer reversed")
        elif row.status == "processing":
            view = self._transition(
                conn,
                row,
                "failed",
                transfer_id=transfer.id,
                failure_reason="transfer reversed before it settled",
                settled_at=now,
            )
        else:
            logger.error(
                "reversal of transfer %s for payout %s in status %s; not applied",
                transfer.id,
                row.id,
                row.status,
            )
            return HandlerResult("ignored")
        return HandlerResult("success", [settled_effect(view)])

    def _payout_for(
        self, conn: Connection, event: EventEnvelope, transfer: GatewayTransfer
    ) -> Row[Any] | HandlerResult:
        """The payout a transfer event settles (locked), or the answer when it settles none.

        A transfer event names its payout by the recorded transfer id or by metadata; both can
        be sent by anyone whose endpoint secret is configured (a Connect endpoint receives
        connected accounts' events). So it settles the payout only when it is the platform's
        own event in the configured mode and the transfer is exactly the one the payout asked
        for: destination, amount, currency and (once recorded) id. Anything else is ignored
        with its reason and an ``alert`` effect.
        """
        raw_id = transfer.metadata.get(METADATA_PAYOUT_ID)
        named = int(raw_id) if raw_id is not None and raw_id.isdigit() else None
        row = storage.find_for_transfer(conn, transfer.id, named)
        if row is None:
            logger.info("transfer %s names no mentorpay payout; ignored", transfer.id)
            return HandlerResult("ignored")
        mismatch = transfer_mismatch(transfer, PayoutView.from_row(row), livemode=self._livemode)
        if mismatch is not None:
            return _refuse(event, transfer, row.id, *mismatch)
        return row


def _refuse(
    event: EventEnvelope,
    transfer: GatewayTransfer,
    payout_id: int,
    reason: str,
    detail: str,
) -> HandlerResult:
    logger.warning(
        "%s event %s (transfer %s) does not settle payout %s: %s (%s)",
        event.type,
        event.id,
        transfer.id,
        payout_id,
        reason,
        detail,
    )
    alert = Effect(
        "alert",
        {
            "reason": reason,
            "detail": detail,
            "event_id": event.id,
            "event_type": event.type,
            "payout_request_id": payout_id,
            "transfer_id": transfer.id,
            "account": event.account,
            "livemode": event.livemode,
            "amount": transfer.amount,
            "currency": transfer.currency,
            "destination": transfer.destination,
        },
    )
    return HandlerResult("ignored", [alert])
