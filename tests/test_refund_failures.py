"""A refund that fails or is canceled after it was booked is reversed exactly once, in any order
of events and with duplicates (issue 8, case 7)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update

from mentorpay import BookingInfo, MentorpayConfig, Money
from mentorpay.app import MentorPay
from mentorpay.commission import CommissionPolicy
from mentorpay.db import make_engine
from mentorpay.errors import CurrencyMismatchError
from mentorpay.events import Effect, EventEnvelope
from mentorpay.ledger import LedgerService, refund_change
from mentorpay.migrations import upgrade
from mentorpay.models import payments_table
from mentorpay.testing import (
    FakeGateway,
    InMemoryBookings,
    booking_metadata,
    charge,
    make_event,
    payment_intent,
    postgres_engine,
    refund,
)
from tests.conftest import POSTGRES_URL

GBP = "GBP"


def facade(engine: Engine, payments: int = 1) -> MentorPay:
    """mentorpay over ``engine`` with bookings b0..bN (mentor m<i>, 50.00 GBP each)."""
    bookings = InMemoryBookings(
        BookingInfo(f"b{i}", "7", f"m{i}", Money(5000, GBP), "confirmed") for i in range(payments)
    )
    config = MentorpayConfig(webhook_secrets=["whsec_test"])
    return MentorPay(config, engine, bookings=bookings, gateway=FakeGateway())


def paid(i: int) -> dict[str, Any]:
    """payment_intent.succeeded for booking b<i>: 50.00 GBP, fee 5.00, mentor's share 45.00."""
    obj = payment_intent(
        id=f"pi_{i}",
        amount=5000,
        currency="gbp",
        latest_charge=f"ch_{i}",
        metadata=booking_metadata(f"b{i}", mentor_id=f"m{i}", mentee_id="7"),
    )
    return make_event("payment_intent.succeeded", obj)


def refunded(i: int, total: int) -> dict[str, Any]:
    """charge.refunded for payment i with Stripe's cumulative amount_refunded."""
    obj = charge(id=f"ch_{i}", payment_intent=f"pi_{i}", amount=5000, amount_refunded=total)
    return make_event("charge.refunded", obj)


def failed(
    i: int,
    refund_id: str,
    amount: int,
    *,
    event_type: str = "refund.failed",
    status: str = "failed",
    currency: str = "gbp",
    named: bool = True,
) -> dict[str, Any]:
    """A refund event whose refund failed (or was canceled). ``named=False`` leaves
    payment_intent null, as in Stripe's own fixture, so the payment is found by the charge."""
    obj = refund(
        id=refund_id,
        charge=f"ch_{i}",
        payment_intent=f"pi_{i}" if named else None,
        amount=amount,
        currency=currency,
        status=status,
        failure_reason="expired_or_canceled_card" if status == "failed" else None,
    )
    return make_event(event_type, obj)


def balances(mp: MentorPay, mentor: str) -> tuple[int, int, int, int, int]:
    """pending, available, held, reserved, withdrawn of a mentor in GBP."""
    b = mp.ledger.balance(mentor, GBP)
    return (
        b.pending.amount,
        b.available.amount,
        b.held.amount,
        b.reserved.amount,
        b.withdrawn.amount,
    )


def deliver(mp: MentorPay, event: dict[str, Any]) -> str:
    """Process one event as Stripe would deliver it; its result status."""
    return mp.webhooks.process_trusted(event).status


def test_failed_refund_puts_an_unreleased_share_back_into_pending(engine: Engine) -> None:
    """refund.failed after charge.refunded restores pending and the commission, exactly once."""
    mp = facade(engine)
    effects: list[Effect] = []
    mp.on("refund_failed", effects.append)
    assert deliver(mp, paid(0)) == "success"
    assert deliver(mp, refunded(0, 2000)) == "success"
    assert balances(mp, "m0") == (2700, 0, 0, 0, 0)
    assert mp.ledger.platform_commission(GBP) == Money(300, GBP)
    event = failed(0, "re_a", 2000, named=False)  # found by its charge
    assert deliver(mp, event) == "success"
    assert deliver(mp, event) == "already_processed"
    # Stripe also sends charge.refund.updated and refund.updated about the same failure.
    assert deliver(mp, failed(0, "re_a", 2000, event_type="charge.refund.updated")) == "success"
    assert deliver(mp, failed(0, "re_a", 2000, event_type="refund.updated")) == "success"
    assert balances(mp, "m0") == (4500, 0, 0, 0, 0)
    assert mp.ledger.platform_commission(GBP) == Money(500, GBP)
    record = mp.ledger.payment("pi_0")
    assert (record.refunded, record.status) == (Money(0, GBP), "succeeded")
    assert [e.data["refund_id"] for e in effects] == ["re_a"]
    assert effects[0].data["amount"] == 2000
    assert effects[0].data["reversed"] == 2000
    assert mp.ledger.verify().ok


def test_failed_refund_of_a_released_payment_goes_back_to_available(engine: Engine) -> None:
    """Once released, a failed refund's share returns to available; stats stop counting it."""
    mp = facade(engine)
    deliver(mp, paid(0))
    mp.ledger.release("b0")
    deliver(mp, refunded(0, 5000))
    assert balances(mp, "m0") == (0, 0, 0, 0, 0)
    assert mp.ledger.payment("pi_0").status == "refunded"
    assert deliver(mp, failed(0, "re_a", 5000, event_type="charge.refund.updated")) == "success"
    assert balances(mp, "m0") == (0, 4500, 0, 0, 0)
    assert mp.ledger.platform_commission(GBP) == Money(500, GBP)
    assert mp.ledger.payment("pi_0").status == "succeeded"
    (stats,) = mp.stats(datetime(2000, 1, 1, tzinfo=UTC)).currencies
    assert (stats.payments_refunded, stats.refunded.amount, stats.disputes_lost) == (0, 0, 0)
    assert mp.ledger.verify().ok


def test_canceled_refund_is_reversed_like_a_failed_one(engine: Engine) -> None:
    """status canceled on refund.updated reverses the refund's ledger effect."""
    mp = facade(engine)
    deliver(mp, paid(0))
    deliver(mp, refunded(0, 1000))
    deliver(mp, refunded(0, 3000))
    canceled = failed(0, "re_b", 2000, event_type="refund.updated", status="canceled")
    assert deliver(mp, canceled) == "success"
    assert balances(mp, "m0") == (4500 - 900, 0, 0, 0, 0)
    assert mp.ledger.payment("pi_0").refunded == Money(1000, GBP)
    assert mp.ledger.payment("pi_0").status == "partially_refunded"
    assert mp.ledger.verify().ok


def test_failure_before_any_refund_is_remembered_and_posts_nothing(engine: Engine) -> None:
    """A failure that overtakes its charge.refunded posts nothing; the late refund nets to 0."""
    mp = facade(engine)
    deliver(mp, paid(0))
    before = mp.ledger.verify().transactions
    assert deliver(mp, failed(0, "re_a", 2000)) == "success"
    assert balances(mp, "m0") == (4500, 0, 0, 0, 0)
    assert deliver(mp, refunded(0, 2000)) == "success"
    assert balances(mp, "m0") == (4500, 0, 0, 0, 0)
    assert mp.ledger.platform_commission(GBP) == Money(500, GBP)
    assert mp.ledger.payment("pi_0").status == "succeeded"
    report = mp.ledger.verify()
    assert report.ok
    # Only the failure's marker transaction (no legs) was written.
    assert report.transactions == before + 1


def test_succeeded_and_pending_refund_updates_move_no_money(engine: Engine) -> None:
    """refund.updated with a non-final or succeeded status changes no balance."""
    mp = facade(engine)
    deliver(mp, paid(0))
    deliver(mp, refunded(0, 1000))
    for status in ("pending", "requires_action", "succeeded"):
        obj = refund(id="re_a", charge="ch_0", amount=1000, status=status)
        deliver(mp, make_event("refund.updated", obj))
    assert balances(mp, "m0") == (3600, 0, 0, 0, 0)
    assert mp.ledger.verify().ok


def test_failure_marks_the_refund_request(engine: Engine) -> None:
    """A refund mentorpay requested is marked failed, with Stripe's reason, by refund.failed."""
    from mentorpay.models import refund_requests_table as requests
    from tests.test_refunds import _paid_at_fake

    bookings = InMemoryBookings([BookingInfo("42", "7", "3", Money(5000, GBP), "confirmed")])
    fake = FakeGateway()
    mp = MentorPay(
        MentorpayConfig(webhook_secrets=["whsec_test"]), engine, bookings=bookings, gateway=fake
    )
    pi = _paid_at_fake(fake)
    assert deliver(mp, make_event("payment_intent.succeeded", pi)) == "success"
    result = mp.refunds.refund(pi["id"], Money(2000, GBP))
    deliver(mp, make_event("charge.refunded", fake.charge(pi["latest_charge"])))
    obj = fake.refund_object(result.refund_id)
    obj.update(status="failed", failure_reason="lost_or_stolen_card")
    assert deliver(mp, make_event("refund.failed", obj)) == "success"
    with engine.connect() as conn:
        row = conn.execute(select(requests)).one()._mapping
    assert (row["status"], row["failure_reason"]) == ("failed", "lost_or_stolen_card")
    assert balances(mp, "3") == (4500, 0, 0, 0, 0)
    assert mp.ledger.verify().ok


def test_refund_failure_in_another_currency_raises_currency_mismatch(engine: Engine) -> None:
    """A refund or its failure in another currency than the payment is CurrencyMismatchError."""
    mp = facade(engine)
    deliver(mp, paid(0))
    deliver(mp, refunded(0, 2000))
    handler = mp.refund_events.webhook_handlers()["refund.failed"]
    envelope = EventEnvelope.model_validate(failed(0, "re_x", 2000, currency="eur"))
    with engine.begin() as conn, pytest.raises(CurrencyMismatchError):
        handler(conn, envelope)
    with pytest.raises(CurrencyMismatchError):
        mp.ledger.apply_refund_failure("pi_0", "re_x", Money(2000, "EUR"))
    with pytest.raises(CurrencyMismatchError):
        mp.ledger.apply_refund_total("pi_0", Money(3000, "EUR"))
    assert balances(mp, "m0") == (2700, 0, 0, 0, 0)
    assert mp.ledger.verify().ok


def test_unknown_payment_is_ignored_and_an_unrecorded_one_deferred(engine: Engine) -> None:
    """A refund of a charge mentorpay never saw waits for its payment, then applies."""
    mp = facade(engine)
    assert deliver(mp, failed(0, "re_a", 2000, named=False)) == "ignored"
    assert deliver(mp, failed(0, "re_b", 2000)) == "deferred"
    deliver(mp, refunded(0, 2000))
    assert deliver(mp, paid(0)) == "success"
    assert balances(mp, "m0") == (4500, 0, 0, 0, 0)
    assert mp.ledger.verify().ok


# Payment i: charge.refunded to 20.00, then to 30.00 (a second refund of 10.00), and the first
# refund (20.00) fails. Whatever the order, Stripe's facts are: 30.00 refunded, 20.00 of it
# failed, so 10.00 counts: the mentor keeps 45.00 - 9.00 and the platform 5.00 - 1.00.
ORDER_EVENTS = ("pay", "A1", "A2", "F")


@pytest.mark.parametrize("released", [False, True], ids=["unreleased", "released"])
def test_every_order_and_duplicates_give_the_same_balances(engine: Engine, released: bool) -> None:
    """Every order of pay, two charge.refunded, a refund.failed (all redelivered) agrees."""
    orders = list(itertools.permutations(ORDER_EVENTS))
    mp = facade(engine, payments=len(orders))
    for i, order in enumerate(orders):
        events = {
            "pay": paid(i),
            "A1": refunded(i, 2000),
            "A2": refunded(i, 3000),
            "F": failed(i, f"re_{i}_1", 2000),
        }
        for name in order:
            deliver(mp, events[name])
            if released and name == "pay":
                mp.ledger.release(f"b{i}")
        expected = (0, 3600, 0, 0, 0) if released else (3600, 0, 0, 0, 0)
        assert balances(mp, f"m{i}") == expected, order
        for name in reversed(order):  # duplicates, with new event ids: business keys decide
            deliver(mp, events[name] | {"id": f"{events[name]['id']}_again"})
        assert balances(mp, f"m{i}") == expected, order
        record = mp.ledger.payment(f"pi_{i}")
        assert (record.refunded, record.status) == (Money(1000, GBP), "partially_refunded")
        assert mp.ledger.verify().ok, order
    assert mp.ledger.platform_commission(GBP) == Money(400 * len(orders), GBP)


# -- the posting rule alone (no database) ---------------------------------------------------------


def _apply_events(events: list[tuple[str, str, int]], gross: int, fee: int) -> tuple[Any, ...]:
    """Run refund events through refund_change as the ledger does; the final state and sums."""
    m: dict[str, Any] = {
        "payment_intent_id": "pi_r",
        "currency": GBP,
        "amount": gross,
        "platform_fee": fee,
        "mentor_payout": gross - fee,
        "rate_bps": 1000,
        "rounding": "half_even",
        "amount_reversed": 0,
        "fee_reversed": 0,
        "payout_reversed": 0,
        "amount_refunded": 0,
        "refund_failed": 0,
        "refund_applied": 0,
        "amount_disputed": 0,
        "review_reason": None,
    }
    seen: set[str] = set()
    clearing = fees = payouts = 0
    for kind, refund_id, value in events:
        if kind == "refunded":
            if value <= m["amount_refunded"]:
                continue
            change = refund_change(m, amount_refunded=value, refund_failed=m["refund_failed"])
        else:
            if refund_id in seen:
                continue
            seen.add(refund_id)
            change = refund_change(
                m, amount_refunded=m["amount_refunded"], refund_failed=m["refund_failed"] + value
            )
        clearing, fees, payouts = (
            clearing + change.delta,
            fees + change.fee,
            payouts + change.payout,
        )
        m.update(change.values)
    return m["refund_applied"], m["fee_reversed"], m["payout_reversed"], clearing, fees, payouts


@settings(max_examples=150, deadline=None)
@given(
    gross=st.integers(min_value=1, max_value=10**7),
    parts=st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=4),
    failing=st.lists(st.booleans(), min_size=4, max_size=4),
    data=st.data(),
)
def test_refund_rule_is_order_independent(
    gross: int, parts: list[int], failing: list[bool], data: st.DataObject
) -> None:
    """Refunds and failures in any order, duplicated, post what the in-order sequence posts."""
    fee = gross // 10
    refunds = [(f"re_{n}", p) for n, p in enumerate(parts)]
    events: list[tuple[str, str, int]] = []
    total = 0
    for _, amount in refunds:
        total += amount
        events.append(("refunded", "", total))
    events += [("failed", r, a) for (r, a), f in zip(refunds, failing, strict=False) if f]
    in_order = _apply_events(events, gross, fee)
    shuffled = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events)))))
    assert _apply_events(list(shuffled), gross, fee) == in_order
    applied, fee_reversed, payout_reversed, clearing, fees, payouts = in_order
    counted = total - sum(a for (_, a), f in zip(refunds, failing, strict=False) if f)
    assert applied == min(max(counted, 0), gross)
    assert (clearing, fees, payouts) == (applied, fee_reversed, payout_reversed)
    assert 0 <= payout_reversed <= gross - fee and 0 <= fee_reversed <= fee


# -- migration of existing payments -------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database with no tables."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'migrate.db'}")
        yield eng
        eng.dispose()
        return
    if not POSTGRES_URL:
        pytest.skip("MENTORPAY_TEST_POSTGRES_URL is not set")
    with postgres_engine(POSTGRES_URL, create_tables=False) as eng:
        yield eng


def test_migration_counts_earlier_refunds_apart_from_lost_disputes(empty_engine: Engine) -> None:
    """0004 sets refund_applied from the refund postings, so a later failure undoes only those."""
    upgrade(empty_engine, "0003")
    ledger = LedgerService(empty_engine)
    ledger.record_payment(
        payment_intent_id="pi_old",
        booking_id="42",
        mentor_id="3",
        mentee_id="7",
        gross=Money(5000, GBP),
        policy=CommissionPolicy(rate_bps=1000),
    )
    # What the previous release posted: a 20.00 refund, then a 10.00 lost dispute.
    with empty_engine.begin() as conn:
        for key, kind, amount, fee, share in (
            ("refund:pi_old:2000", "refund", 2000, 200, 1800),
            ("dispute:dp_1:lost", "dispute_lost", 1000, 100, 900),
        ):
            ledger.post(
                conn,
                business_key=key,
                kind=kind,
                currency=GBP,
                mentor_id="3",
                payment_intent_id="pi_old",
                legs=[
                    ("stripe_clearing", None, amount),
                    ("platform_commission", None, -fee),
                    ("mentor_pending", "3", -share),
                ],
            )
        conn.execute(
            update(payments_table)
            .where(payments_table.c.payment_intent_id == "pi_old")
            .values(
                amount_refunded=2000, amount_reversed=3000, fee_reversed=300, payout_reversed=2700
            )
        )
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        row = conn.execute(select(payments_table)).one()._mapping
    assert (row["refund_applied"], row["refund_failed"]) == (2000, 0)
    assert ledger.apply_refund_failure("pi_old", "re_old", Money(2000, GBP)).created
    assert ledger.balance("3", GBP).pending == Money(4500 - 900, GBP)
    assert ledger.payment("pi_old").status == "dispute_lost"
    assert ledger.verify().ok
