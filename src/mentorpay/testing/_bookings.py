"""InMemoryBookings: the reference BookingSource, for tests and the demo."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace

from mentorpay.bookings import BookingInfo

__all__ = ["InMemoryBookings"]


class InMemoryBookings:
    """A thread-safe dict of bookings implementing ``BookingSource``."""

    def __init__(self, bookings: Iterable[BookingInfo] = ()) -> None:
        self._lock = threading.Lock()
        self._bookings: dict[str, BookingInfo] = {b.id: b for b in bookings}

    def get_booking(self, booking_id: str) -> BookingInfo | None:
        """The booking with that id, or None."""
        with self._lock:
            return self._bookings.get(booking_id)

    def add(self, booking: BookingInfo) -> None:
        """Add or replace a booking."""
        with self._lock:
            self._bookings[booking.id] = booking

    def set_status(self, booking_id: str, status: str) -> BookingInfo:
        """Change a booking's status (completed, cancelled, ...) and return the new value."""
        with self._lock:
            updated = replace(self._bookings[booking_id], status=status)
            self._bookings[booking_id] = updated
            return updated
