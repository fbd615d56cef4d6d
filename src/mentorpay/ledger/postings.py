"""The ledger's postings, one function per effect: lock the payment row, build its state, ask
:mod:`mentorpay.ledger.rules`, write through the :class:`~mentorpay.ledger._journal.Journal`.
Every function runs inside the caller's transaction and never commits; the public docstrings
are on :class:`~mentorpay.ledger.service.LedgerService`."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import and_, select, update
from sqlalchemy.engine import Connection

from mentorpay.commission import CommissionPolicy, Split
from mentorpay.db import driver_execute
from mentorpay.errors import ConflictError, InsufficientBalanceError, InvalidAmountError
from mentorpay.ledger import queries, rules
from mentorpay.ledger._journal import Journal
from mentorpay.ledger._sql import SELECT_BALANCE
from mentorpay.ledger.payout_rules import payout_legs
from mentorpay.ledger.views import PaymentOutcome, PaymentRecord, Posting, balance_view
from mentorpay.ledger.views import payment_record as _record
from mentorpay.models import balances_table as _balances
from mentorpay.models import disputes_table as _disputes
from mentorpay.models import payments_table as _payments
from mentorpay.money import Money

logger = logging.getLogger("mentorpay.ledger")


def record_payment(
    j: Journal,
    c: Connection,
    split: Split,
    *,
    payment_intent_id: str,
    booking_id: str,
    mentor_id: str,
    mentee_id: str,
    checkout_session_id: str | None,
    charge_id: str | None,
    release_due_at: datetime | None,
    destination: str | None,
    review_reason: str | None,
) -> PaymentOutcome:
    """Insert the payment row with ``split`` (see :func:`rules.capture_split`) and post its
    capture, once; an existing payment is returned as it is."""
    now = j._clock()
    pi = payment_intent_id
    sql = j._sql_for(c)
    stamp = sql.bind_time(now)
    gross = split.gross
    cur, fee, payout = gross.currency, split.platform_fee.amount, split.mentor_payout.amount
    status = "succeeded" if review_reason is None else "needs_review"
    due = None if destination or review_reason else release_due_at
    # The row in _PAYMENT_COLUMNS order, built directly (this runs once per webhook).
    row = (
        *(pi, checkout_session_id, charge_id, destination, booking_id, mentor_id, mentee_id),
        *(cur, status, gross.amount, fee, payout, split.rate_bps, split.rounding),
        *(0, 0, 0, 0, 0, 0, review_reason),
        *(None if due is None else sql.bind_time(due), stamp if destination else None),
        *(stamp, stamp),
    )
    key = f"payment:{pi}"
    new_id: int | None
    if sql.record_payment_cte is not None and destination is None and not review_reason:
        found = driver_execute(
            c,
            sql.record_payment_cte,
            [
                *row,
                *(key, cur, mentor_id, pi, stamp),
                *(cur, -gross.amount, cur, fee, mentor_id, cur, payout),
                *(mentor_id, cur, payout, stamp, payout),
            ],
        )
        new_id = found[0][0] if found else None
    else:
        inserted = driver_execute(c, sql.insert_payment, row)
        new_id = int(inserted[0][0]) if inserted else None
        if new_id is not None:
            in_review, to_connect = review_reason is not None, bool(destination)
            j.post(
                c,
                stamp=stamp,
                business_key=key,
                kind="payment",
                currency=cur,
                mentor_id=mentor_id,
                payment_intent_id=pi,
                legs=rules.capture_legs(
                    split, mentor_id, in_review=in_review, destination=to_connect
                ),
            )
    if new_id is None:
        existing = j._lock(c, pi)
        return PaymentOutcome(_record(existing), False, existing.split)
    record = PaymentRecord(
        id=new_id,
        payment_intent_id=pi,
        booking_id=booking_id,
        mentor_id=mentor_id,
        mentee_id=mentee_id,
        status=status,
        gross=gross,
        platform_fee=split.platform_fee,
        mentor_payout=split.mentor_payout,
        refunded=Money.zero(cur),
        rate_bps=split.rate_bps,
        created_at=now,
        released_at=now if destination else None,
        review_reason=review_reason,
        rounding=split.rounding,
    )
    return PaymentOutcome(record, True, split)


def set_release_due(j: Journal, c: Connection, payment_intent_id: str, due_at: datetime) -> None:
    """Schedule the payment's automatic release."""
    c.execute(
        update(_payments)
        .where(_payments.c.payment_intent_id == payment_intent_id)
        .values(release_due_at=due_at)
    )


def keep_fee(j: Journal, c: Connection, payment_intent_id: str, refund: Money) -> None:
    """A cancellation's refund keeps the platform's fee: record it before the refund is sent."""
    s = j._lock(c, payment_intent_id)
    rules.same_currency(s, refund, "cancellation refund")
    j._update_payment(c, s, rules.keep_fee(s, refund.amount))


def record_stripe_fee(
    j: Journal, c: Connection, payment_intent_id: str, balance_transaction_id: str, fee: Money
) -> Posting:
    """Post Stripe's fee of one balance transaction of a payment, once per transaction."""
    key = f"stripe_fee:{balance_transaction_id}"
    if fee.amount == 0:
        return Posting(key, created=False, amount=fee)
    s = j._lock(c, payment_intent_id)
    rules.same_currency(s, fee, "Stripe fee")
    plan = rules.stripe_fee(s, fee.amount)
    # The key is claimed first: a fee already posted changes nothing, not even the row.
    posting = j.post(
        c,
        business_key=key,
        kind="stripe_fee",
        currency=s.currency,
        payment_intent_id=payment_intent_id,
        legs=plan.legs or [],
    )
    if posting.created:
        j._update_payment(c, s, plan.updates)
    return Posting(key, posting.created, posting.transaction_id, fee)


def release_payment(j: Journal, c: Connection, payment_intent_id: str) -> Posting:
    """Pending -> available for one payment's free share, once."""
    s = j._lock(c, payment_intent_id)
    key = f"release:{payment_intent_id}"
    now = j._clock()
    plan = rules.release(s, now)
    if plan is None:
        return Posting(key, created=False)
    return j._write_plan(c, s, plan, key=key, kind="release", mentor_id=s.mentor_id, now=now)


def release_share(
    j: Journal, c: Connection, payment_intent_id: str, share: Money, key: str
) -> Posting:
    """One delivered session of a plan period: its share pending -> available, once per
    ``key`` (the caller's credit names it); nothing when the period was released whole."""
    s = j._lock(c, payment_intent_id)
    rules.same_currency(s, share, "session share")
    plan = rules.release_share(s, share.amount)
    if plan is None:
        return Posting(key, created=False, amount=Money.zero(s.currency))
    if plan.legs is None:
        j._update_payment(c, s, plan.updates)
        return Posting(key, created=False, amount=Money.zero(s.currency))
    posting = j.post(
        c,
        business_key=key,
        kind="release",
        currency=s.currency,
        mentor_id=s.mentor_id,
        payment_intent_id=payment_intent_id,
        legs=plan.legs,
    )
    if posting.created:
        j._update_payment(c, s, plan.updates)
    return Posting(key, posting.created, posting.transaction_id, Money(plan.amount, s.currency))


def release_due_batch(
    j: Journal, c: Connection, cutoff: datetime, after_id: int, limit: int
) -> tuple[int, int, list[Posting]]:
    """Release the next ``limit`` payments due at ``cutoff`` after ``after_id`` in this one
    transaction: (the last payment id seen, how many were seen, the postings created)."""
    states = queries.lock_due(c, cutoff, after_id, limit)
    created: list[Posting] = []
    for s in states:
        key = f"release:{s.payment_intent_id}"
        now = j._clock()
        plan = rules.release(s, now)
        if plan is None:
            continue
        posting = j._write_plan(c, s, plan, key=key, kind="release", mentor_id=s.mentor_id, now=now)
        if posting.created:
            created.append(posting)
    return (states[-1].id if states else after_id), len(states), created


def release_booking(j: Journal, c: Connection, booking_id: str) -> list[Posting]:
    """Release every payment of the booking."""
    intents = queries.booking_payment_intents(c, booking_id)
    return [release_payment(j, c, pi) for pi in intents]


def credit_review(
    j: Journal,
    c: Connection,
    payment_intent_id: str,
    *,
    booking_id: str,
    mentor_id: str,
    mentee_id: str,
    policy: CommissionPolicy,
    release_due_at: datetime | None,
) -> Posting:
    """Suspense -> fee + mentor share, for a payment under review."""
    s = j._lock(c, payment_intent_id)
    key = f"review:{payment_intent_id}:credit"
    plan = rules.review_credit(
        s,
        booking_id=booking_id,
        mentor_id=mentor_id,
        mentee_id=mentee_id,
        policy=policy,
        release_due_at=release_due_at,
    )
    if plan is None:
        return Posting(key, created=False)
    return j._write_plan(c, s, plan, key=key, kind="review_credit", mentor_id=mentor_id)


def refund_review(j: Journal, c: Connection, payment_intent_id: str) -> Posting:
    """A whole reviewed payment went back: Stripe's cumulative refund reaches its amount."""
    s = j._lock(c, payment_intent_id)
    if s.review_reason is None:
        raise ConflictError(
            f"payment {payment_intent_id} is not under review",
            payment_intent_id=payment_intent_id,
        )
    if s.amount_refunded >= s.amount:
        return Posting(f"refund:{payment_intent_id}:{s.amount}", created=False)
    return apply_refund_total(j, c, payment_intent_id, Money(s.amount, s.currency))


def apply_refund_total(
    j: Journal, c: Connection, payment_intent_id: str, amount_refunded: Money
) -> Posting:
    """Move the ledger to Stripe's new cumulative ``amount_refunded`` (a new high only)."""
    s = j._lock(c, payment_intent_id)
    rules.same_currency(s, amount_refunded, "refund")
    key = f"refund:{payment_intent_id}:{amount_refunded.amount}"
    found = rules.refund_total(s, amount_refunded.amount)
    if found is None:
        return Posting(key, created=False)
    change, plan = found
    if change.values["refund_applied"] < amount_refunded.amount - s.refund_failed:
        # Stripe never refunds more than was charged net of a lost dispute; if it says so
        # anyway, reverse what is left rather than fail the event forever.
        logger.warning(
            "refunds of %s exceed what remains on %s; counting %s",
            amount_refunded,
            payment_intent_id,
            change.values["refund_applied"],
        )
    return j._write_plan(c, s, plan, key=key, kind="refund", mentor_id=s.mentor_id or None)


def apply_refund_failure(
    j: Journal, c: Connection, payment_intent_id: str, refund_id: str, amount: Money
) -> Posting:
    """Undo a failed refund's effect, once per ``refund_id`` (remembered even if nothing moves)."""
    s = j._lock(c, payment_intent_id)
    rules.same_currency(s, amount, "failed refund")
    key = f"refund_failed:{refund_id}"
    plan = rules.refund_failure(s, amount.amount)
    # A failure only gives money back (payout <= 0): no dispute hold is touched.
    posting = j.post(
        c,
        business_key=key,
        kind="refund_failed",
        currency=s.currency,
        mentor_id=s.mentor_id or None,
        payment_intent_id=payment_intent_id,
        legs=plan.legs or [],
    )
    if not posting.created:
        return Posting(key, created=False)
    j._update_payment(c, s, plan.updates)
    return Posting(key, True, posting.transaction_id, Money(plan.amount, s.currency))


def open_dispute(
    j: Journal, c: Connection, payment_intent_id: str, dispute_id: str, amount: Money
) -> Posting:
    """Track the dispute and freeze its share of the mentor's money, once."""
    s = j._lock(c, payment_intent_id)
    key = f"dispute:{dispute_id}:opened"
    opening = rules.dispute_opened(s, amount)
    if c.execute(select(_disputes.c.id).where(_disputes.c.id == dispute_id)).first():
        return Posting(key, created=False)
    now = j._clock()
    c.execute(
        _disputes.insert().values(
            id=dispute_id,
            payment_intent_id=payment_intent_id,
            currency=s.currency,
            amount=opening.disputed,
            held=opening.hold,
            status="open",
            created_at=now,
            updated_at=now,
        )
    )
    if opening.plan is None:
        return Posting(key, created=False)
    mentor = s.mentor_id or None
    return j._write_plan(
        c, s, opening.plan, key=key, kind="dispute_opened", mentor_id=mentor, now=now
    )


def close_dispute(
    j: Journal, c: Connection, payment_intent_id: str, dispute_id: str, *, won: bool
) -> Posting:
    """Settle one dispute: only its own hold and amount move."""
    s = j._lock(c, payment_intent_id)
    outcome = "won" if won else "lost"
    key = f"dispute:{dispute_id}:{outcome}"
    dispute = c.execute(
        select(_disputes).where(_disputes.c.id == dispute_id).with_for_update()
    ).first()
    if dispute is None or dispute.status != "open":
        return Posting(key, created=False)
    # Closed first, so taking back a shortfall never shrinks its own hold.
    now = j._clock()
    c.execute(
        update(_disputes).where(_disputes.c.id == dispute_id).values(status=outcome, updated_at=now)
    )
    plan = rules.dispute_closed(s, held=dispute.held, disputed=dispute.amount, won=won)
    kind = f"dispute_{outcome}"
    return j._write_plan(c, s, plan, key=key, kind=kind, mentor_id=s.mentor_id or None, now=now)


def reserve_payout(
    j: Journal, conn: Connection, payout_request_id: int, mentor_id: str, amount: Money
) -> Posting:
    """available -> reserved, refused unless available covers it (atomic, race-free)."""
    if not amount.is_positive():
        raise InvalidAmountError(
            "a payout must be positive", amount=amount.amount, currency=amount.currency
        )
    # The WHERE clause is the check: concurrent requests cannot both pass it, because
    # PostgreSQL re-evaluates it on the locked row and SQLite serializes writers.
    result = conn.execute(
        update(_balances)
        .where(
            and_(
                _balances.c.mentor_id == mentor_id,
                _balances.c.currency == amount.currency,
                _balances.c.available >= amount.amount,
            )
        )
        .values(
            available=_balances.c.available - amount.amount,
            reserved=_balances.c.reserved + amount.amount,
            updated_at=j._clock(),
        )
    )
    if result.rowcount != 1:
        row = conn.execute(
            SELECT_BALANCE, {"mentor_id": mentor_id, "currency": amount.currency}
        ).first()
        available = balance_view(row).available if row else Money.zero(amount.currency)
        raise InsufficientBalanceError(
            f"requested {amount} but only {available} is available",
            mentor_id=mentor_id,
            requested=amount.amount,
            available=available.amount,
            currency=amount.currency,
        )
    return j.post(
        conn,
        business_key=f"payout:{payout_request_id}:reserve",
        kind="payout_reserve",
        currency=amount.currency,
        mentor_id=mentor_id,
        payout_request_id=payout_request_id,
        legs=payout_legs(mentor_id, amount.amount, "reserve"),
        apply_balances=False,
    )
