"""``LedgerService``, the ledger's public facade: each method runs one posting of
:mod:`mentorpay.ledger.postings` (in the caller's transaction, or its own retried one) or one
read of :mod:`mentorpay.ledger.queries` (releases: :mod:`mentorpay.ledger.releases`)."""

from __future__ import annotations

from datetime import datetime
from typing import ParamSpec, TypeVar

from sqlalchemy.engine import Connection

from mentorpay.commission import CommissionPolicy
from mentorpay.errors import InvalidAmountError
from mentorpay.ledger import postings, rules
from mentorpay.ledger.payout_rules import PayoutOutcome, payout_legs
from mentorpay.ledger.queries import LedgerQueries
from mentorpay.ledger.releases import Releases
from mentorpay.ledger.views import PaymentOutcome, Posting
from mentorpay.money import Money

P = ParamSpec("P")
T = TypeVar("T")


class LedgerService(LedgerQueries, Releases):
    """Postings and queries over mentorpay's journal. See the package docstring for the rules.

    Posting methods take an optional ``conn``: given one, they run inside the caller's
    transaction and never commit; without one, in their own, retried on serialization failures.
    """

    # -- payments -----------------------------------------------------------------------------

    def record_payment(
        self,
        *,
        payment_intent_id: str,
        booking_id: str,
        mentor_id: str,
        mentee_id: str,
        gross: Money,
        policy: CommissionPolicy,
        checkout_session_id: str | None = None,
        charge_id: str | None = None,
        release_due_at: datetime | None = None,
        destination: str | None = None,
        platform_fee: Money | None = None,
        review_reason: str | None = None,
        conn: Connection | None = None,
    ) -> PaymentOutcome:
        """Record a succeeded payment and credit the mentor's pending balance, exactly once.

        ``review_reason``: the payment disagreed with its booking. Its money goes to the
        platform's suspense account and no mentor is credited (stored as a split with the whole
        gross on the platform's side, so refunds and disputes of it reverse suspense) until
        :meth:`credit_review` or a refund settles it.

        A second call for the same payment intent writes nothing and returns ``created=False``.
        ``release_due_at`` schedules the automatic release (``release_due``) after a hold.

        ``destination``: a Connect destination charge, whose mentor share Stripe transferred to
        that connected account at capture. The share is posted straight to withdrawn (there is
        nothing to release or pay out again) and refunds take it back from there, as Stripe's
        ``reverse_transfer`` does. ``platform_fee``: the fee Stripe actually kept (a destination
        charge's application fee), recorded instead of recomputing it from ``policy``.
        """
        if not gross.is_positive():
            raise InvalidAmountError(
                "a payment must be positive", amount=gross.amount, currency=gross.currency
            )
        in_review = review_reason is not None
        split = rules.capture_split(gross, policy, platform_fee=platform_fee, in_review=in_review)
        return self._run_posting(
            conn,
            postings.record_payment,
            split,
            payment_intent_id=payment_intent_id,
            booking_id=booking_id,
            mentor_id=mentor_id,
            mentee_id=mentee_id,
            checkout_session_id=checkout_session_id,
            charge_id=charge_id,
            release_due_at=release_due_at,
            destination=None if in_review else destination,
            review_reason=review_reason,
        )

    # -- payments parked for review ------------------------------------------------------------

    def credit_review(
        self,
        payment_intent_id: str,
        *,
        booking_id: str,
        mentor_id: str,
        mentee_id: str,
        policy: CommissionPolicy,
        release_due_at: datetime | None = None,
        conn: Connection | None = None,
    ) -> Posting:
        """An operator accepts a reviewed payment for a booking: suspense -> fee + mentor share.

        What was actually paid is split under ``policy`` (minus anything already refunded, by
        the same cumulative targets a refund uses). Refused while a dispute is open.
        """
        return self._run_posting(
            conn,
            postings.credit_review,
            payment_intent_id,
            booking_id=booking_id,
            mentor_id=mentor_id,
            mentee_id=mentee_id,
            policy=policy,
            release_due_at=release_due_at,
        )

    def refund_review(self, payment_intent_id: str, *, conn: Connection | None = None) -> Posting:
        """Stripe accepted the refund of a whole reviewed payment: suspense -> back to the payer.

        Recorded as Stripe's cumulative ``amount_refunded`` reaching the amount, so the
        ``charge.refunded`` webhook that follows changes nothing more.
        """
        return self._run_posting(conn, postings.refund_review, payment_intent_id)

    # -- refunds and disputes ---------------------------------------------------------------

    def apply_refund_total(
        self,
        payment_intent_id: str,
        amount_refunded: Money,
        *,
        conn: Connection | None = None,
    ) -> Posting:
        """Bring the ledger up to Stripe's cumulative ``amount_refunded`` for the charge.

        Only a new high of ``amount_refunded`` changes anything; the ledger then moves to the new
        effective refund total (see the package docstring), under a key naming the cumulative
        state, so duplicates and older events arriving late change nothing. Raises
        :class:`CurrencyMismatchError` (permanent) for another currency than the payment's.
        """
        return self._run_posting(
            conn, postings.apply_refund_total, payment_intent_id, amount_refunded
        )

    def apply_refund_failure(
        self,
        payment_intent_id: str,
        refund_id: str,
        amount: Money,
        *,
        conn: Connection | None = None,
    ) -> Posting:
        """A refund failed or was canceled at Stripe: undo its ledger effect, exactly once.

        The failure is counted once per ``refund_id`` (business key ``refund_failed:{id}``,
        written even when nothing moves, so it is remembered). It takes the effective refund
        total down (see the package docstring): the payer's money comes back to clearing, the
        commission back to the platform, the mentor's share back to pending (unreleased) or
        available (released). The returned posting's ``amount`` is what was un-refunded; 0 when
        the failure overtook its ``charge.refunded``. Raises :class:`CurrencyMismatchError`
        (permanent) for another currency than the payment's.
        """
        if not amount.is_positive():
            raise InvalidAmountError(
                "a failed refund must be positive", amount=amount.amount, currency=amount.currency
            )
        return self._run_posting(
            conn, postings.apply_refund_failure, payment_intent_id, refund_id, amount
        )

    def keep_fee(
        self, payment_intent_id: str, refund: Money, *, conn: Connection | None = None
    ) -> None:
        """A coming refund keeps the platform's fee (a mentee's late cancellation): it will come
        from the mentor's share only (:func:`~mentorpay.ledger.rules.payout_target`)."""
        self._run_posting(conn, postings.keep_fee, payment_intent_id, refund)

    def record_stripe_fee(
        self,
        payment_intent_id: str,
        balance_transaction_id: str,
        fee: Money,
        *,
        conn: Connection | None = None,
    ) -> Posting:
        """Stripe kept ``fee`` of a payment (a balance transaction's fee; negative: returned):
        ``stripe_clearing`` -> ``stripe_fees``, once per balance transaction; 0 writes nothing."""
        return self._run_posting(
            conn, postings.record_stripe_fee, payment_intent_id, balance_transaction_id, fee
        )

    def open_dispute(
        self,
        payment_intent_id: str,
        dispute_id: str,
        amount: Money,
        *,
        conn: Connection | None = None,
    ) -> Posting:
        """Freeze this dispute's share of the mentor's money (free share -> held), once.

        Each dispute id holds its own share: the payout target of the disputed amount on top of
        what is already reversed or held by other disputes, never more than is still free.
        """
        return self._run_posting(conn, postings.open_dispute, payment_intent_id, dispute_id, amount)

    def close_dispute(
        self,
        payment_intent_id: str,
        dispute_id: str,
        *,
        won: bool,
        conn: Connection | None = None,
    ) -> Posting:
        """Settle one dispute: won gives its hold back; lost reverses its amount like a refund.

        Only this dispute's own hold and amount move; other open disputes keep theirs.
        """
        return self._run_posting(
            conn, postings.close_dispute, payment_intent_id, dispute_id, won=won
        )

    # -- payouts ------------------------------------------------------------------------------

    def reserve_payout(
        self, conn: Connection, payout_request_id: int, mentor_id: str, amount: Money
    ) -> Posting:
        """available -> reserved, refused unless available covers it (atomic, race-free)."""
        return postings.reserve_payout(self, conn, payout_request_id, mentor_id, amount)

    def settle_payout(
        self,
        conn: Connection,
        payout_request_id: int,
        mentor_id: str,
        amount: Money,
        *,
        outcome: PayoutOutcome,
    ) -> Posting:
        """paid: reserved -> withdrawn; returned (failed/cancelled): reserved -> available;
        reversed (a paid transfer came back): withdrawn -> available."""
        return self.post(
            conn,
            business_key=f"payout:{payout_request_id}:{outcome}",
            kind=f"payout_{outcome}",
            currency=amount.currency,
            mentor_id=mentor_id,
            payout_request_id=payout_request_id,
            legs=payout_legs(mentor_id, amount.amount, outcome),
        )
