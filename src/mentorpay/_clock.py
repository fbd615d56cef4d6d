"""The default clock: every service takes ``clock=`` so tests and replays can pin time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "utcnow"]

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (mentorpay never stores naive datetimes)."""
    return datetime.now(UTC)
