"""Checkout: who may pay for a booking, and one Stripe Checkout Session per booking.

``create_session`` checks, in this order (so a stranger learns nothing about someone else's
booking): the booking exists (:class:`BookingNotFoundError`), the caller is its mentee
(:class:`NotBookingOwnerError`), it is payable (:class:`BookingNotPayableError`), it is not
already paid (:class:`AlreadyPaidError`), its price obeys Stripe's currency rules
(:class:`InvalidAmountError`), and no delayed payment of it is pending
(:class:`PaymentPendingError`). Only then is Stripe called.

One booking, one payment, also with delayed payment methods (SEPA, Bacs, ACH debits): their
session completes with ``payment_status: "unpaid"`` and the money arrives days later. The
webhook handlers keep the session row's status: ``awaiting_payment`` while such a debit is
pending, ``complete`` once paid, ``payment_failed`` when the debit failed. A booking with an
``awaiting_payment`` row cannot get a new session (whatever the row's ``expires_at``: Stripe's
expiry only applies to open sessions); ``payment_failed`` frees it like an expired session.

At most one open session per booking, even under concurrency. The local row of a session is
claimed *before* Stripe is called, under a unique idempotency key derived from the booking, the
attempt number and the request's amount/fee/destination (:func:`checkout_idempotency_key`):

1. An open session for the same booking, amount and terms that stays valid long enough is
   returned as is (``reused=True``).
2. Otherwise the caller inserts a ``creating`` claim row holding the key and ``expires_at``.
   A concurrent caller loses on the unique key and *adopts* the winner's row: it sends the
   byte-identical request (same key, same expiry), so Stripe's idempotency returns the one
   session both asked for. The row becomes ``open`` with Stripe's id and URL.
3. Any other open session of the booking (older price, about to expire) is expired at Stripe
   first, so a mentee can never pay twice through two tabs.

When Stripe refuses (a 4xx, a rate limit) the claim is deleted: nothing stays written. When the
outcome is unknown (connection lost, Stripe 5xx) the claim stays ``creating``, with no URL, so
the next call replays the identical request and Stripe returns the session if it was created;
deleting it would make the retry send a new expiry under the same key, which Stripe refuses.
When Stripe reports an idempotency conflict (the key's first request had other redirect URLs),
the key is spent: the claim is kept as ``abandoned`` so the next call uses a fresh key.

Layout: :mod:`.request` (the checks above and the terms of the Stripe request), :mod:`.sessions`
(every statement on the checkout sessions table) and :mod:`.service` (:class:`CheckoutService`).
"""

from mentorpay.checkout.request import CheckoutSessionInfo
from mentorpay.checkout.service import CheckoutService

__all__ = ["CheckoutService", "CheckoutSessionInfo"]
