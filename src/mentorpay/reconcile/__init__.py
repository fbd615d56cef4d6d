"""Reconciliation: compare Stripe's record of a period with mentorpay's ledger.

:meth:`Reconciler.run` pages through what Stripe created in ``[since, until)`` and reports, per
kind, what Stripe has that the ledger lacks (a webhook that never arrived), what the ledger has
that Stripe lacks, and amounts that differ:

============  ==============================================  =================================
kind          Stripe side                                     ledger side
============  ==============================================  =================================
payments      succeeded PaymentIntents with mentorpay's       ``mentorpay_payments`` rows
              metadata (booking_id, mentor_id, mentee_id)
refunds       the charges of refunds created in the period:   ``amount_refunded`` of the payment
              their cumulative ``amount_refunded``
disputes      disputes created in the period                  ``dispute:<id>:opened|won|lost``
                                                              ledger transactions
transfers     transfers whose metadata names a payout         payout requests and their status
============  ==============================================  =================================

Objects of the period recorded only locally are looked up one by one at Stripe before being
reported missing there (the local record may simply be later than Stripe's ``created``).

``apply=True`` records the facts the ledger lacks by replaying Stripe's own objects as events
(``payment_intent.succeeded``, ``charge.refunded``, ``charge.dispute.created`` / ``.closed``,
``transfer.created`` / ``transfer.reversed``) through ``apply_event``, which is the webhook
processor's ``process_trusted``: the same handlers as real webhooks, so the ledger's business
keys make a fact found here and its late webhook post once between them. Event ids are
deterministic (``evt_reconcile_<object id>[_<state>]``), so running twice replays nothing new.
Mismatches and facts missing at Stripe are only reported: they need a human.

Layout: :mod:`.report` (what a run reports), one module per comparison (:mod:`.payments`,
:mod:`.refunds`, :mod:`.disputes`, :mod:`.transfers`) and :mod:`.service` (:class:`Reconciler`).
It reads no table itself: the ledger's through :mod:`mentorpay.ledger.queries`, payout requests
through :mod:`mentorpay.payouts.storage`.
"""

from mentorpay.reconcile.report import (
    RECONCILE_KINDS,
    AppliedEvent,
    Discrepancy,
    KindReport,
    ProblemKind,
    ReconcileKind,
    ReconcileReport,
)
from mentorpay.reconcile.runs import ReconcileRun
from mentorpay.reconcile.service import Reconciler

__all__ = [
    "RECONCILE_KINDS",
    "AppliedEvent",
    "Discrepancy",
    "KindReport",
    "ProblemKind",
    "ReconcileKind",
    "ReconcileReport",
    "ReconcileRun",
    "Reconciler",
]
