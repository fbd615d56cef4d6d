"""The double-entry ledger: postings, materialized mentor balances, verification and queries.

Layout: :mod:`~mentorpay.ledger.rules` (accounts, statuses and the posting rules, pure functions
of a payment's state), :mod:`~mentorpay.ledger.postings` (lock the row, ask the rules, write
through :mod:`~mentorpay.ledger._journal`; SQL in :mod:`~mentorpay.ledger._sql`),
:mod:`~mentorpay.ledger.queries`, :mod:`~mentorpay.ledger.views`, :mod:`~mentorpay.ledger.verify`,
and :class:`~mentorpay.ledger.service.LedgerService`, the facade. The package owns the ledger-side
writes to the payments, journal, balances and disputes tables.

Accounts (signed legs; the legs of one transaction sum to zero):

=====================  =========================================================
``stripe_clearing``    counter-account for money entering (-) or leaving (+) via Stripe
``platform_commission``  the platform's fees (never materialized: it is hot, so it is summed)
``mentor_pending``     earned, waiting for the session to take place / the hold period
``mentor_available``   withdrawable; may go negative after a refund of released money
``mentor_held``        frozen by an open dispute
``mentor_reserved``    requested for payout, not yet paid
``mentor_withdrawn``   paid out to the mentor
``platform_suspense``  money received that no mentor may be credited with yet: a payment
                       that disagreed with its booking, parked until an operator resolves it
``stripe_fees``        Stripe's fees (processing, disputes; + when a fee comes back), a
                       platform cost taken from clearing; per payment in ``stripe_fee``
=====================  =========================================================

Fund flow: payment -> pending -> (release) available -> (payout request) reserved -> (paid)
withdrawn; a failed or cancelled payout returns reserved -> available. Refunds and lost
disputes take the mentor's share of that payment from where it sits: pending while the payment
is unreleased, available once released; when that free share is not enough because open
disputes hold part of it (a refund during an inquiry), the rest comes out of those holds, so a
hold never outlives the money it froze.

Disputes: each dispute id holds its own share (``mentorpay_disputes``) and settles only that:
won (or an inquiry closed) gives exactly its current hold back, lost reverses exactly its
amount. Per payment the invariant is ``free share + held == payout - payout_reversed``, which is
what makes the final balances independent of the order events arrive in.

Refunds, and refunds that fail. Stripe does not document whether ``charge.amount_refunded``
drops when a refund fails later, so the ledger assumes it does not and counts both facts
separately on the payment: ``amount_refunded`` is the highest cumulative ``amount_refunded`` any
``charge.refunded`` reported (monotone, so late and duplicate events change nothing) and
``refund_failed`` the sum of the refunds reported ``failed`` or ``canceled`` (each refund id once,
under the business key ``refund_failed:{refund_id}``). The refunds the ledger counts are::

    effective = clamp(amount_refunded - refund_failed, 0, amount - lost_dispute_reversals)

stored as ``refund_applied``; ``amount_reversed`` is ``refund_applied`` plus the lost disputes.
Every refund event moves the ledger from the old effective total to the new one with cumulative
targets (the mentor's share reversed after total reversals R is ``P * R / G`` rounded once, see
:func:`~mentorpay.commission.split_refund`), so any order of ``charge.refunded`` and refund
failures, with any duplicates, ends in the same balances. A failure puts the mentor's share back
where a refund takes it from: pending while the payment is unreleased, available after. A
failure that arrives before its ``charge.refunded`` posts nothing and is remembered.

Kept fees (a mentee's late cancellation under a policy that keeps the platform's fee): the
cancellation adds its refund to the payment's ``fee_kept`` (K) before the refund is sent, and
the targets become ``K + (P - K) * (R - K) / (G - K)`` for ``R >= K`` (``R`` below ``K``: all of
it from the payout): the first K of reversals come out of the mentor's share only, the rest
pro rata over what is left. At ``R = G`` that is still exactly P (and the fee exactly F), so a
mentor's full refund afterwards returns both. With a kept fee each step posts the new target
minus what was reversed so far, so the totals land on the target in any order. Should
Stripe ever lower ``amount_refunded`` after a failure, the lower value is ignored (reconciliation
then reports the ledger above Stripe) and a later refund is counted only above the previous
high-water mark: an under-count, never a double reversal.

Every posting has a business key that is unique in the database: posting an effect twice writes
nothing the second time and reports ``created=False``. Every posting also updates the mentor's
materialized balance row in the same transaction, so ``balance()`` is one primary-key read.

Transactions: posting methods take an optional ``conn``. Given one, they run inside the caller's
transaction and never commit (the webhook processor composes several postings into one event).
Without one, they open their own transaction, retried on serialization failures.
"""

from mentorpay.ledger.rules import (
    AVAILABLE,
    BALANCE_ACCOUNTS,
    CLEARING,
    COMMISSION,
    HELD,
    PENDING,
    RESERVED,
    SUSPENSE,
    UNPAID_PAYMENT_STATUSES,
    WITHDRAWN,
    Leg,
    RefundChange,
    payment_status,
    refund_change,
)
from mentorpay.ledger.service import LedgerService
from mentorpay.ledger.state import PaymentState, PaymentStatus
from mentorpay.ledger.views import (
    BalanceView,
    Page,
    PaymentOutcome,
    PaymentRecord,
    Posting,
    VerifyReport,
)

__all__ = [
    "AVAILABLE",
    "BALANCE_ACCOUNTS",
    "CLEARING",
    "COMMISSION",
    "HELD",
    "PENDING",
    "RESERVED",
    "SUSPENSE",
    "UNPAID_PAYMENT_STATUSES",
    "WITHDRAWN",
    "BalanceView",
    "LedgerService",
    "Leg",
    "Page",
    "PaymentOutcome",
    "PaymentRecord",
    "PaymentState",
    "PaymentStatus",
    "Posting",
    "RefundChange",
    "VerifyReport",
    "payment_status",
    "refund_change",
]
