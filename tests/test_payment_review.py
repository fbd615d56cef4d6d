"""Resolving payments parked for review: each test names the fault (mutant) it catches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from mentorpay import BookingInfo, InvalidRequestError, MentorpayConfig, Money
from mentorpay.app import MentorPay
from mentorpay.models import LedgerTransaction
from mentorpay.testing import (
    FakeGateway,
    InMemoryBookings,
    booking_metadata,
    charge,
    encode_event,
    make_event,
    payment_intent,
    refund,
    sign_payload,
)

SECRET = "whsec_review"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BOOKING = BookingInfo("42", "7", "3", Money(5000, "GBP"), "confirmed")


def setup(engine: Engine, **config: Any) -> tuple[MentorPay, FakeGateway]:
    """A MentorPay at a fixed clock, for booking 42 (GBP 50.00, mentor 3)."""
    fake = FakeGateway(clock=lambda: NOW)
    mp = MentorPay(
        MentorpayConfig(webhook_secrets=[SECRET], **config),
        engine,
        bookings=InMemoryBookings([BOOKING]),
        gateway=fake,
        clock=lambda: NOW,
    )
    return mp, fake


def pay(mp: MentorPay, fake: FakeGateway, pi: str, amount: int) -> str:
    """A host-flow payment of booking 42 that Stripe knows about; returns the answer status."""
    meta = booking_metadata("42", mentor_id="3", mentee_id="7")
    intent = fake.add_payment_intent(
        payment_intent(id=pi, amount=amount, currency="gbp", metadata=meta)
    )
    body = encode_event(make_event("payment_intent.succeeded", intent))
    return mp.webhooks.process(body, sign_payload(body, SECRET)).status


def refund_event(mp: MentorPay, pi: str, gross: int, refunded: int) -> None:
    """Stripe's charge.refunded for ``pi`` at a cumulative amount."""
    obj = charge(payment_intent=pi, amount=gross, amount_refunded=refunded, currency="gbp")
    body = encode_event(make_event("charge.refunded", obj))
    mp.webhooks.process(body, sign_payload(body, SECRET))


def test_credited_review_payment_waits_for_the_hold_period(engine: Engine) -> None:
    """Kills `now + hold_period` -> `-` in resolve(credit): it is released only after the hold."""
    mp, fake = setup(engine)
    assert pay(mp, fake, "pi_1", 6000) == "needs_review"
    mp.payments.resolve("pi_1", action="credit")
    assert mp.ledger.release_due(NOW) == []
    assert len(mp.ledger.release_due(NOW + timedelta(days=7))) == 1
    assert mp.ledger.balance("3", "GBP").available == Money(5400, "GBP")


def test_crediting_a_partly_refunded_review_payment_splits_what_remains(engine: Engine) -> None:
    """Kills `fee - reversed fee` -> `+` in credit_review: only the unrefunded share is split."""
    mp, fake = setup(engine)
    pay(mp, fake, "pi_1", 6000)
    refund_event(mp, "pi_1", 6000, 1000)  # 10.00 back to the payer from suspense
    assert mp.ledger.suspense("GBP") == Money(5000, "GBP")
    mp.payments.resolve("pi_1", action="credit")
    assert mp.ledger.platform_commission("GBP") == Money(500, "GBP")
    assert mp.ledger.balance("3", "GBP").pending == Money(4500, "GBP")
    assert mp.ledger.suspense("GBP") == Money(0, "GBP")
    assert mp.ledger.verify().ok


def test_refunded_review_payment_is_labelled_refunded(engine: Engine) -> None:
    """Kills `reversed_total >= amount` -> `>`: a review payment refunded in full is refunded."""
    mp, fake = setup(engine)
    pay(mp, fake, "pi_1", 100)
    record = mp.payments.resolve("pi_1", action="refund")
    assert record.status == "refunded"
    assert mp.payments.review_queue() == []


def test_refund_review_twice_posts_once(engine: Engine) -> None:
    """Kills refund_review's `created=False` -> `True`: the second call reports nothing new."""
    mp, fake = setup(engine)
    pay(mp, fake, "pi_1", 100)
    assert mp.ledger.refund_review("pi_1").created
    assert not mp.ledger.refund_review("pi_1").created


def test_duplicate_is_refunded_with_reason_duplicate(engine: Engine) -> None:
    """Kills `'already_paid' in reason` -> `not in` (and `or ''` -> `and ''`): Stripe's reason."""
    mp, fake = setup(engine)
    assert pay(mp, fake, "pi_0", 100) == "needs_review"  # underpaid, booking not yet paid
    mp.payments.resolve("pi_0", action="refund")
    assert pay(mp, fake, "pi_1", 5000) == "success"
    assert pay(mp, fake, "pi_2", 5000) == "needs_review"  # a second payment of a paid booking
    mp.payments.resolve("pi_2", action="refund")
    calls = fake.calls_to("create_refund")
    reasons = {c.args["payment_intent_id"]: c.args["reason"] for c in calls}
    assert reasons == {"pi_0": None, "pi_2": "duplicate"}


def test_only_a_clean_duplicate_is_refunded_automatically(engine: Engine) -> None:
    """Kills `... or ';' in reason` -> `and`: a duplicate that also disagrees waits for a human."""
    mp, fake = setup(engine, refund_duplicate_payments=True)
    assert pay(mp, fake, "pi_0", 100) == "needs_review"  # underpaid only: not a duplicate
    pay(mp, fake, "pi_1", 5000)
    assert pay(mp, fake, "pi_2", 4000) == "needs_review"  # already paid AND underpaid
    assert fake.calls_to("create_refund") == []
    assert [p.payment_intent_id for p in mp.payments.review_queue()] == ["pi_0", "pi_2"]


def test_review_queue_default_limit_is_one_hundred(engine: Engine) -> None:
    """Kills the default `limit=100` -> `101`: the queue lists at most 100 unless asked."""
    mp, fake = setup(engine)
    for n in range(101):
        pay(mp, fake, f"pi_{n:03d}", 100)
    assert len(mp.payments.review_queue()) == 100
    assert len(mp.payments.review_queue(limit=101)) == 101


def test_refund_transactions_name_the_mentor(engine: Engine) -> None:
    """Kills `mentor_id or None` -> `and None` on refunds and failures: whose money moved."""
    mp, fake = setup(engine)
    pay(mp, fake, "pi_1", 5000)
    refund_event(mp, "pi_1", 5000, 1000)
    failed = refund(id="re_1", payment_intent="pi_1", amount=1000, status="failed")
    body = encode_event(make_event("refund.failed", failed))
    assert mp.webhooks.process(body, sign_payload(body, SECRET)).status == "success"
    with engine.connect() as conn:
        rows = conn.execute(
            select(LedgerTransaction.kind, LedgerTransaction.mentor_id)
            .where(LedgerTransaction.kind.in_(("refund", "refund_failed")))
            .order_by(LedgerTransaction.id)
        ).all()
    assert [tuple(r) for r in rows] == [("refund", "3"), ("refund_failed", "3")]


def test_credit_review_reports_what_it_did(engine: Engine) -> None:
    """Kills credit_review's returns -> None: the posting names the mentor's credited share."""
    mp, fake = setup(engine)
    pay(mp, fake, "pi_1", 6000)
    posting = mp.ledger.credit_review(
        "pi_1", booking_id="42", mentor_id="3", mentee_id="7", policy=mp.config.commission
    )
    assert (posting.created, posting.amount) == (True, Money(5400, "GBP"))
    again = mp.ledger.credit_review(
        "pi_1", booking_id="42", mentor_id="3", mentee_id="7", policy=mp.config.commission
    )
    assert again is not None and not again.created


def test_review_queue_limit_bounds(engine: Engine) -> None:
    """Kills `limit <= 10000` -> `<`: 10000 is allowed, 10001 and 0 are refused."""
    mp, _ = setup(engine)
    assert mp.payments.review_queue(limit=10_000) == []
    for bad in (0, 10_001):
        with pytest.raises(InvalidRequestError):
            mp.payments.review_queue(limit=bad)
