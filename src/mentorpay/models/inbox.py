"""The webhook inbox, the outbox of effects and the record of sent messages (owned by
:mod:`mentorpay.webhooks`, :mod:`mentorpay.outbox` and :mod:`mentorpay.notifications`)."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    Index,
    Integer,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from mentorpay.models._base import Base, Id, UTCDateTime

__all__ = [
    "OutboxEffect",
    "SentMessage",
    "WebhookEvent",
    "outbox_table",
    "sent_messages_table",
    "webhook_events_table",
]


class WebhookEvent(Base):
    """The inbox: every verified Stripe event, claimed by its unique id, replayable."""

    __tablename__ = "mentorpay_webhook_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(Id, unique=True)
    type: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    # The payment intent a deferred event waits for, or that an ignored payment event (not made
    # through mentorpay) was about, so later events about that payment are ignored too.
    waiting_for: Mapped[str | None] = mapped_column(Id, index=True)
    payload: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_mentorpay_webhook_events_status_id", "status", "id"),
        # ``events list --type``: one type among millions of events, newest first.
        Index("ix_mentorpay_webhook_events_type_id", "type", "id"),
    )


class OutboxEffect(Base):
    """A business effect for the host's callbacks, written in the ledger change's transaction.

    ``pending`` until every callback of its kind ran without raising, then ``delivered``.
    ``claimed_until``: a deliverer working on it (the writer right after commit, or
    ``deliver_pending``); others leave it alone until then, and take it over after a crash.
    """

    __tablename__ = "mentorpay_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: Stable across retries: the host deduplicates on it.
    effect_id: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_mentorpay_outbox_status_id", "status", "id"),)


class SentMessage(Base):
    """Messages the ready-made mailer path sent, by Message-ID, so a redelivery skips them."""

    __tablename__ = "mentorpay_sent_messages"

    message_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    effect_id: Mapped[str] = mapped_column(String(255))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())


webhook_events_table = cast(Table, WebhookEvent.__table__)
outbox_table = cast(Table, OutboxEffect.__table__)
sent_messages_table = cast(Table, SentMessage.__table__)
