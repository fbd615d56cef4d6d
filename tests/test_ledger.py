"""Ledger postings, balances, idempotency, queries and verification on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text

from mentorpay.commission import CommissionPolicy
from mentorpay.errors import (
    CurrencyMismatchError,
    InsufficientBalanceError,
    InvalidAmountError,
    InvalidRequestError,
    PaymentNotFoundError,
    UnknownCurrencyError,
)
from mentorpay.ledger import LedgerService
from mentorpay.models import LedgerEntry, LedgerTransaction, MentorBalance, Payment
from mentorpay.money import Money

POLICY = CommissionPolicy(rate_bps=1000)


def pay(ledger: LedgerService, pi: str, amount: int, currency: str = "GBP", mentor: str = "m1"):
    """Record a payment with the default 10% policy."""
    return ledger.record_payment(
        payment_intent_id=pi,
        booking_id=f"b-{pi}",
        mentor_id=mentor,
        mentee_id="u1",
        gross=Money(amount, currency),
        policy=POLICY,
    )


def snapshot(engine: Engine) -> tuple[int, ...]:
    """Row counts of every mutable table plus a checksum of balances."""
    with engine.connect() as conn:
        counts = tuple(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (
                Payment.__table__,
                LedgerTransaction.__table__,
                LedgerEntry.__table__,
                MentorBalance.__table__,
            )
        )
        checksum = conn.execute(
            text(
                "SELECT COALESCE(SUM(pending + 3*available + 5*held + 7*reserved + 11*withdrawn),"
                " 0) FROM mentorpay_mentor_balances"
            )
        ).scalar_one()
    return (*counts, int(checksum))


def reserve(ledger: LedgerService, engine: Engine, payout_id: int, amount: Money) -> None:
    """Reserve a payout inside its own transaction."""
    with engine.begin() as conn:
        ledger.reserve_payout(conn, payout_id, "m1", amount)


def test_payment_credits_pending_with_exact_split(engine: Engine) -> None:
    """A £50 payment credits £45 pending and £5 commission, and the journal balances."""
    ledger = LedgerService(engine)
    outcome = pay(ledger, "pi_1", 5000)
    assert outcome.created
    assert outcome.split.platform_fee == Money(500, "GBP")
    view = ledger.balance("m1", "gbp")
    assert view.pending == Money(4500, "GBP")
    assert view.available == Money(0, "GBP")
    assert view.total_earned == Money(4500, "GBP")
    assert ledger.platform_commission("GBP") == Money(500, "GBP")
    assert ledger.verify().ok


def test_recording_same_payment_twice_writes_nothing(engine: Engine) -> None:
    """A second record of the same payment intent returns created=False and posts nothing."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 5000)
    before = snapshot(engine)
    again = pay(ledger, "pi_1", 5000)
    assert not again.created
    assert again.payment.mentor_payout == Money(4500, "GBP")
    assert snapshot(engine) == before


def test_release_moves_pending_to_available_once(engine: Engine) -> None:
    """Releasing a booking moves its share to available; releasing again changes nothing."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 5000)
    [posting] = ledger.release("b-pi_1")
    assert posting.created and posting.amount == Money(4500, "GBP")
    assert ledger.release("b-pi_1")[0].created is False
    view = ledger.balance("m1", "GBP")
    assert (view.pending.amount, view.available.amount) == (0, 4500)
    assert ledger.verify().ok


def test_release_due_only_releases_payments_past_their_hold(engine: Engine) -> None:
    """release_due(now) releases exactly the payments whose hold period has elapsed."""
    ledger = LedgerService(engine)
    now = datetime(2026, 1, 10, tzinfo=UTC)
    pay(ledger, "pi_old", 1000)
    pay(ledger, "pi_new", 2000)
    ledger.set_release_due("pi_old", now - timedelta(days=1))
    ledger.set_release_due("pi_new", now + timedelta(days=1))
    released = ledger.release_due(now)
    assert [p.business_key for p in released] == ["release:pi_old"]
    assert ledger.balance("m1", "GBP").available == Money(900, "GBP")
    assert ledger.release_due(now) == []
    with pytest.raises(InvalidRequestError):
        ledger.release_due(datetime(2026, 1, 10))


def test_partial_refunds_add_up_to_exact_split(engine: Engine) -> None:
    """Cumulative partial refunds of 33%, then 100% reverse exactly the fee and payout."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 1001)  # fee 100, payout 901
    first = ledger.apply_refund_total("pi_1", Money(333, "GBP"))
    assert first.created
    ledger.apply_refund_total("pi_1", Money(1001, "GBP"))
    view = ledger.balance("m1", "GBP")
    assert view.total_earned == Money(0, "GBP")
    assert ledger.platform_commission("GBP") == Money(0, "GBP")
    record = ledger.payment("pi_1")
    assert record.status == "refunded" and record.refunded == Money(1001, "GBP")
    assert ledger.verify().ok


def test_stale_and_duplicate_refund_totals_are_harmless(engine: Engine) -> None:
    """An older cumulative refund total arriving late, or a duplicate, posts nothing."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 5000)
    ledger.apply_refund_total("pi_1", Money(3000, "GBP"))
    before = snapshot(engine)
    assert not ledger.apply_refund_total("pi_1", Money(1000, "GBP")).created
    assert not ledger.apply_refund_total("pi_1", Money(3000, "GBP")).created
    assert snapshot(engine) == before


def test_refund_after_release_can_drive_available_negative(engine: Engine) -> None:
    """A refund of released money that was already paid out leaves available negative."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 5000)
    ledger.release("b-pi_1")
    reserve(ledger, engine, 1, Money(4500, "GBP"))
    ledger.apply_refund_total("pi_1", Money(5000, "GBP"))
    view = ledger.balance("m1", "GBP")
    assert view.available == Money(-4500, "GBP")
    assert view.reserved == Money(4500, "GBP")
    with pytest.raises(InsufficientBalanceError):
        reserve(ledger, engine, 2, Money(1, "GBP"))
    assert ledger.verify().ok


def test_refund_takes_pending_first_for_unreleased_payment(engine: Engine) -> None:
    """Refunding an unreleased payment reduces pending, leaving other available money alone."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_a", 1000)
    ledger.release("b-pi_a")
    pay(ledger, "pi_b", 2000)
    ledger.apply_refund_total("pi_b", Money(1000, "GBP"))
    view = ledger.balance("m1", "GBP")
    assert (view.pending.amount, view.available.amount) == (900, 900)


def test_dispute_won_restores_and_lost_reverses(engine: Engine) -> None:
    """A dispute holds the mentor's share; winning restores it, losing reverses the payment."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_w", 5000)
    pay(ledger, "pi_l", 5000)
    ledger.open_dispute("pi_w", "dp_w", Money(5000, "GBP"))
    ledger.open_dispute("pi_l", "dp_l", Money(5000, "GBP"))
    held = ledger.balance("m1", "GBP")
    assert (held.pending.amount, held.held.amount) == (0, 9000)
    assert not ledger.open_dispute("pi_w", "dp_w", Money(5000, "GBP")).created
    ledger.close_dispute("pi_w", "dp_w", won=True)
    ledger.close_dispute("pi_l", "dp_l", won=False)
    assert not ledger.close_dispute("pi_l", "dp_l", won=False).created
    view = ledger.balance("m1", "GBP")
    assert (view.pending.amount, view.held.amount, view.total_earned.amount) == (4500, 0, 4500)
    assert ledger.payment("pi_l").status == "dispute_lost"
    assert ledger.payment("pi_w").status == "succeeded"
    assert ledger.platform_commission("GBP") == Money(500, "GBP")
    assert ledger.verify().ok


def test_lost_dispute_after_partial_refund_sums_exactly(engine: Engine) -> None:
    """A refund during an open dispute then a lost dispute still reverses exactly fee + payout."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 1003)
    ledger.open_dispute("pi_1", "dp_1", Money(1003, "GBP"))
    ledger.apply_refund_total("pi_1", Money(1, "GBP"))
    ledger.close_dispute("pi_1", "dp_1", won=False)
    assert ledger.balance("m1", "GBP").total_earned == Money(0, "GBP")
    assert ledger.platform_commission("GBP") == Money(0, "GBP")
    assert ledger.verify().ok


def test_payout_flow_reserve_paid_and_returned(engine: Engine) -> None:
    """Reserve then pay moves available -> reserved -> withdrawn; a failed one comes back."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 10000)
    ledger.release("b-pi_1")
    with engine.begin() as conn:
        ledger.reserve_payout(conn, 1, "m1", Money(5000, "GBP"))
        ledger.reserve_payout(conn, 2, "m1", Money(4000, "GBP"))
    with engine.begin() as conn:
        ledger.settle_payout(conn, 1, "m1", Money(5000, "GBP"), outcome="paid")
        ledger.settle_payout(conn, 2, "m1", Money(4000, "GBP"), outcome="returned")
        assert not ledger.settle_payout(
            conn, 2, "m1", Money(4000, "GBP"), outcome="returned"
        ).created
    view = ledger.balance("m1", "GBP")
    assert (view.available.amount, view.reserved.amount, view.withdrawn.amount) == (4000, 0, 5000)
    assert ledger.verify().ok


def test_payout_above_available_is_refused_and_changes_nothing(engine: Engine) -> None:
    """A payout above available raises InsufficientBalanceError and writes nothing."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 5000)
    ledger.release("b-pi_1")
    before = snapshot(engine)
    with pytest.raises(InsufficientBalanceError) as info:
        reserve(ledger, engine, 1, Money(4501, "GBP"))
    assert info.value.details["available"] == 4500
    assert info.value.http_status == 409
    assert snapshot(engine) == before


def test_payout_for_unknown_mentor_is_refused(engine: Engine) -> None:
    """A payout for a mentor with no balance is refused as insufficient, writing nothing."""
    ledger = LedgerService(engine)
    before = snapshot(engine)
    with pytest.raises(InsufficientBalanceError), engine.begin() as conn:
        ledger.reserve_payout(conn, 1, "ghost", Money(100, "GBP"))
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: Money(-5, "GBP"), InvalidAmountError),
        (lambda: Money(0, "GBP"), InvalidAmountError),
        (lambda: Money(5.0, "GBP"), TypeError),  # type: ignore[arg-type]
        (lambda: Money(5, "XYZ"), UnknownCurrencyError),
        (lambda: Money.parse("50.001", "GBP"), InvalidAmountError),
    ],
)
def test_bad_payment_input_raises_typed_error_and_writes_nothing(
    engine: Engine, make: object, error: type[Exception]
) -> None:
    """Negative, zero, float, unknown-currency and over-precise amounts never reach the DB."""
    ledger = LedgerService(engine)
    before = snapshot(engine)
    with pytest.raises(error):
        pay_money = make()  # type: ignore[operator]
        ledger.record_payment(
            payment_intent_id="pi_bad",
            booking_id="b",
            mentor_id="m1",
            mentee_id="u1",
            gross=pay_money,
            policy=POLICY,
        )
    assert snapshot(engine) == before


def test_refund_in_other_currency_is_refused(engine: Engine) -> None:
    """A refund total in a different currency than the payment raises and posts nothing."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 5000)
    before = snapshot(engine)
    with pytest.raises(CurrencyMismatchError):
        ledger.apply_refund_total("pi_1", Money(100, "USD"))
    assert snapshot(engine) == before


def test_refund_for_unknown_payment_raises_not_found(engine: Engine) -> None:
    """Refunding a payment that was never recorded raises PaymentNotFoundError (404)."""
    ledger = LedgerService(engine)
    with pytest.raises(PaymentNotFoundError) as info:
        ledger.apply_refund_total("pi_nope", Money(100, "GBP"))
    assert info.value.http_status == 404


def test_balances_are_kept_per_currency(engine: Engine) -> None:
    """Payments in GBP and JPY land in separate balances and are never added together."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_gbp", 5000, "GBP")
    pay(ledger, "pi_jpy", 1000, "JPY")
    views = {v.currency: v for v in ledger.balances("m1")}
    assert views["GBP"].pending == Money(4500, "GBP")
    assert views["JPY"].pending == Money(900, "JPY")
    assert ledger.balance("m1", "USD").total_earned == Money(0, "USD")


def test_history_pages_by_keyset_and_respects_role(engine: Engine) -> None:
    """History pages newest-first with a cursor; mentors and mentees see their own rows."""
    ledger = LedgerService(engine)
    for i in range(5):
        pay(ledger, f"pi_{i}", 1000 + i)
    pay(ledger, "pi_other", 999, mentor="m2")
    first = ledger.history("m1", role="mentor", limit=2)
    assert [p.payment_intent_id for p in first.items] == ["pi_4", "pi_3"]
    second = ledger.history("m1", role="mentor", limit=2, cursor=first.next_cursor)
    third = ledger.history("m1", role="mentor", limit=2, cursor=second.next_cursor)
    assert [p.payment_intent_id for p in second.items + third.items] == ["pi_2", "pi_1", "pi_0"]
    assert third.next_cursor is None
    assert len(ledger.history("u1", role="mentee", limit=50).items) == 6
    assert ledger.history("m2", role="mentor").items[0].as_dict()["platform_fee"] == 100
    assert "platform_fee" not in ledger.history("u1", role="mentee").items[0].as_dict("mentee")
    with pytest.raises(InvalidRequestError):
        ledger.history("m1", cursor="not-a-cursor")


def test_verify_reports_a_tampered_balance(engine: Engine) -> None:
    """verify() notices a materialized balance that no longer matches its entries."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 5000)
    with engine.begin() as conn:
        conn.execute(text("UPDATE mentorpay_mentor_balances SET pending = pending + 1"))
    report = ledger.verify()
    assert not report.ok
    assert any("pending" in p for p in report.problems)


def test_verify_reports_an_unbalanced_transaction(engine: Engine) -> None:
    """verify() notices a journal transaction whose legs do not sum to zero."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 5000)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE mentorpay_ledger_entries SET amount = amount + 1 WHERE account = :a"),
            {"a": "platform_commission"},
        )
    report = ledger.verify()
    assert not report.ok
    assert any("does not balance" in p for p in report.problems)


def test_unbalanced_posting_is_refused(engine: Engine) -> None:
    """A posting whose legs do not sum to zero raises before anything is written."""
    ledger = LedgerService(engine)
    before = snapshot(engine)
    with pytest.raises(InvalidAmountError), engine.begin() as conn:
        ledger.post(
            conn,
            business_key="bad",
            kind="test",
            currency="GBP",
            legs=[("mentor_pending", "m1", 5), ("stripe_clearing", None, -4)],
        )
    assert snapshot(engine) == before


def test_ledger_rolls_back_with_the_callers_transaction(engine: Engine) -> None:
    """Postings made with conn= vanish when the caller's transaction rolls back."""
    ledger = LedgerService(engine)
    before = snapshot(engine)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), engine.begin() as conn:
        ledger.record_payment(
            payment_intent_id="pi_1",
            booking_id="b",
            mentor_id="m1",
            mentee_id="u1",
            gross=Money(5000, "GBP"),
            policy=POLICY,
            conn=conn,
        )
        raise Boom
    assert snapshot(engine) == before


def test_stored_policy_survives_policy_change(engine: Engine) -> None:
    """Refunds use the rate and rounding stored on the payment, not today's policy."""
    ledger = LedgerService(engine)
    ledger.record_payment(
        payment_intent_id="pi_1",
        booking_id="b",
        mentor_id="m1",
        mentee_id="u1",
        gross=Money(1000, "GBP"),
        policy=CommissionPolicy(rate_bps=2500, rounding="up"),
    )
    ledger.apply_refund_total("pi_1", Money(1000, "GBP"))
    assert ledger.payment("pi_1").rate_bps == 2500
    assert ledger.balance("m1", "GBP").total_earned == Money(0, "GBP")
    assert ledger.verify().ok


def test_status_label_does_not_depend_on_event_order(engine: Engine) -> None:
    """A refund before or after a lost dispute leaves the same amounts and the same label."""
    ledger = LedgerService(engine)
    for pi, refund_first in (("pi_a", True), ("pi_b", False)):
        pay(ledger, pi, 10_000)
        ledger.open_dispute(pi, f"dp_{pi}", Money(6_000, "GBP"))
        if refund_first:
            ledger.apply_refund_total(pi, Money(4_000, "GBP"))
        ledger.close_dispute(pi, f"dp_{pi}", won=False)
        if not refund_first:
            ledger.apply_refund_total(pi, Money(4_000, "GBP"))
    a, b = ledger.payment("pi_a"), ledger.payment("pi_b")
    assert a.status == b.status == "dispute_lost"
    assert a.refunded == b.refunded == Money(10_000, "GBP")
    assert ledger.verify().ok


@pytest.mark.parametrize(("rate_bps", "pending"), [(0, 5000), (10_000, 0)])
def test_zero_fee_and_zero_payout_payments_post_only_nonzero_legs(
    engine: Engine, rate_bps: int, pending: int
) -> None:
    """A 0% or 100% commission posts only the legs that move money; verify() stays clean."""
    ledger = LedgerService(engine)
    ledger.record_payment(
        payment_intent_id="pi_1",
        booking_id="b",
        mentor_id="m1",
        mentee_id="u1",
        gross=Money(5000, "GBP"),
        policy=CommissionPolicy(rate_bps=rate_bps),
    )
    with engine.connect() as conn:
        legs = conn.execute(text("SELECT count(*) FROM mentorpay_ledger_entries")).scalar_one()
    assert legs == 2
    assert ledger.balance("m1", "GBP").pending == Money(pending, "GBP")
    assert ledger.platform_commission("GBP") == Money(5000 - pending, "GBP")
    assert ledger.verify().ok
