"""Compatibility: the refund event handlers moved to :mod:`mentorpay.webhooks.handlers.refunds`."""

from __future__ import annotations

from mentorpay.webhooks.handlers.refunds import REFUND_EVENT_TYPES, RefundEventHandlers

__all__ = ["REFUND_EVENT_TYPES", "RefundEventHandlers"]
