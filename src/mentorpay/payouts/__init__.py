"""Payouts: mentors withdraw what they have earned.

State machine: ``TRANSITIONS`` in :mod:`.rules`, drawn in its docstring (anything else raises
:class:`PayoutStateError`).

Money (ledger postings, in the same transaction as the state change):

* ``request``   available -> reserved (a conditional update: never above available, race-free)
* ``paid``      reserved -> withdrawn
* ``cancelled`` / ``failed``   reserved -> available
* ``reversed``  withdrawn -> available (the transfer came back from the mentor's account)

Two payout modes, fixed per request when it is made (``config.payout_mode``):

* ``stripe_transfer``: ``execute`` creates a Stripe transfer to the mentor's connected account
  under the key ``mentorpay:payout:<id>:transfer``. The row goes ``processing`` *before* the
  call, so it can no longer be cancelled while money may be moving. If Stripe refuses for good
  (invalid request, authentication) the payout becomes ``failed`` and the money returns to
  available (a new request gets a new key; Stripe may have stored the refusal under the old
  one). If the outcome is unknown, Stripe asked to slow down, or the key is busy with a
  concurrent execute, it stays ``processing`` and ``execute`` may simply be called again: the
  same key replays the same transfer. Settlement comes from Stripe's transfer webhooks, and
  only from the platform's own event for exactly that transfer (see
  :mod:`.transfer_events`): metadata naming a payout is never enough.
* ``manual``: the platform pays by its own bank transfer, then calls ``mark_paid`` (or
  ``mark_failed`` if the bank returned it).

Stripe's ``payout.paid`` / ``payout.failed`` events are deliberately not handled: they concern
the connected account's own payout from its Stripe balance to its bank, after mentorpay's
obligation (the transfer into that account) is met.

Layout: :mod:`.rules` (the state machine and every check: pure), :mod:`.views`
(:class:`PayoutView`), :mod:`.storage` (every statement on the payouts table),
:mod:`.transfer_events` (the webhook handlers) and :mod:`.service` (:class:`PayoutService`, the
wiring: lock -> rules -> write -> gateway).
"""

from mentorpay.payouts.rules import (
    PAYOUT_STATUSES,
    TRANSITIONS,
    PayoutStatus,
    can_transition,
)
from mentorpay.payouts.service import PayoutService
from mentorpay.payouts.views import PayoutView

__all__ = [
    "PAYOUT_STATUSES",
    "TRANSITIONS",
    "PayoutService",
    "PayoutStatus",
    "PayoutView",
    "can_transition",
]
