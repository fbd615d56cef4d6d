"""mentorpay's public test kit: use it in your own application's tests.

- :class:`InMemoryBookings`: the reference ``BookingSource``.
- :func:`sqlite_engine`, :func:`postgres_engine`, :func:`truncate_all`: databases with
  mentorpay's tables, configured exactly as in production.
"""

from mentorpay.testing._bookings import InMemoryBookings
from mentorpay.testing._db import POSTGRES_URL_ENV, postgres_engine, sqlite_engine, truncate_all

__all__ = [
    "POSTGRES_URL_ENV",
    "InMemoryBookings",
    "postgres_engine",
    "sqlite_engine",
    "truncate_all",
]
