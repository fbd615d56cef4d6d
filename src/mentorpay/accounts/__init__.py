"""Mentors' Stripe connected accounts (``mp.accounts``): one Express account per mentor.

- :mod:`.rules`: pure rules: the ``account.updated`` object, when an update applies, when an
  account can receive money (:class:`AccountStatus`), which account a booking pays.
- :mod:`.storage`: every statement on ``mentorpay_mentor_accounts`` (its one owner).
- :mod:`.service`: :class:`AccountService`: ``onboard``, ``dashboard_link``, ``status``,
  ``list``, ``refresh`` and ``destination`` (what checkout and payouts ask).
- The ``account.updated`` handler is :mod:`mentorpay.webhooks.handlers.accounts`.

mentorpay keeps the mentor -> account mapping, so a host need not put ``acct_...`` in its
bookings. Destination-charge checkout needs ``charges_enabled``; a transfer payout executes
only when ``payouts_enabled`` (the request itself is accepted meanwhile and waits, approved,
until the account can receive it). A booking naming another account than mentorpay's is
refused (:class:`~mentorpay.errors.AccountMismatchError`).
"""

from mentorpay.accounts.rules import AccountState, AccountStatus, Purpose
from mentorpay.accounts.service import AccountLink, AccountService

__all__ = ["AccountLink", "AccountService", "AccountState", "AccountStatus", "Purpose"]
