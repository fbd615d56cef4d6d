"""Tests that kill surviving mutants of mentorpay.ledger, written against LedgerService's public
methods so they survive refactors of its internals.

Each test names, in its docstring, the injected fault it catches; see scripts/mutation.sh.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from mentorpay.commission import CommissionPolicy
from mentorpay.errors import ConfigurationError, InvalidRequestError
from mentorpay.ledger import LedgerService
from mentorpay.models import LedgerTransaction, Payment
from mentorpay.money import Money
from mentorpay.testing import sqlite_engine

POLICY = CommissionPolicy(rate_bps=1000)
GBP = "GBP"


def gbp(amount: int) -> Money:
    """Shorthand for an amount in pence."""
    return Money(amount, GBP)


def pay(
    ledger: LedgerService,
    pi: str,
    amount: int,
    policy: CommissionPolicy = POLICY,
    **kw: object,
) -> None:
    """Record a payment for mentor m1."""
    ledger.record_payment(
        payment_intent_id=pi,
        booking_id=f"b-{pi}",
        mentor_id="m1",
        mentee_id="u1",
        gross=gbp(amount),
        policy=policy,
        **kw,  # type: ignore[arg-type]
    )


def amounts(ledger: LedgerService) -> tuple[int, int, int]:
    """m1's (pending, available, held) in pence."""
    b = ledger.balance("m1", GBP)
    return b.pending.amount, b.available.amount, b.held.amount


# -- release (issue 14, survivors 1 and 10) -----------------------------------------------------


def test_release_after_partial_refund_moves_only_what_is_left(engine: Engine) -> None:
    """Kills `payout - payout_reversed` -> `+` in release: only the unrefunded share moves."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 10_000)  # payout 9000
    ledger.apply_refund_total("pi_1", gbp(5000))  # reverses 4500 of payout
    posting = ledger.release_payment("pi_1")
    assert posting.amount == gbp(4500)
    assert amounts(ledger) == (0, 4500, 0)
    assert ledger.verify().ok


def test_release_of_fully_refunded_payment_moves_nothing(engine: Engine) -> None:
    """Kills `max(0, ...)` -> `max(1, ...)` in release: nothing is left to make available."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 10_000)
    ledger.apply_refund_total("pi_1", gbp(10_000))
    posting = ledger.release_payment("pi_1")
    assert posting.amount == gbp(0)
    assert amounts(ledger) == (0, 0, 0)
    assert ledger.verify().ok


def test_release_while_disputed_leaves_the_held_share_held(engine: Engine) -> None:
    """Kills `- payout_held` -> `+ payout_held` in release: the frozen share is not released."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 10_000)
    ledger.open_dispute("pi_1", "dp_1", gbp(2000))  # holds 1800
    assert ledger.release_payment("pi_1").amount == gbp(7200)
    assert amounts(ledger) == (0, 7200, 1800)
    assert ledger.verify().ok


def test_release_due_includes_a_payment_due_exactly_now(engine: Engine) -> None:
    """Kills `release_due_at <= cutoff` -> `<` (PostgreSQL leg): due at this instant, released."""
    ledger = LedgerService(engine)
    due = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    pay(ledger, "pi_due", 1000, release_due_at=due)
    pay(ledger, "pi_later", 1000, release_due_at=due + timedelta(seconds=1))
    released = ledger.release_due(now=due)
    assert [p.business_key for p in released] == ["release:pi_due"]
    assert amounts(ledger) == (900, 900, 0)


def test_release_due_walks_every_batch(engine: Engine) -> None:
    """Kills the keyset step (`id > last_id` -> `>=`, or the batch loop ending early)."""
    ledger = LedgerService(engine)
    due = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    for i in range(5):
        pay(ledger, f"pi_{i}", 1000, release_due_at=due)
    released = ledger.release_due(now=due, batch=2)
    assert sorted(p.business_key for p in released) == [f"release:pi_{i}" for i in range(5)]
    assert amounts(ledger) == (0, 4500, 0)


# -- refunds (survivor 5) -----------------------------------------------------------------------


def test_refund_of_payment_with_no_mentor_share(engine: Engine) -> None:
    """Kills `_free_legs` returning None for a zero share: a refund at rate_bps=10000 works."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 5000, policy=CommissionPolicy(rate_bps=10_000))
    posting = ledger.apply_refund_total("pi_1", gbp(2000))
    assert posting.created
    assert ledger.platform_commission(GBP) == gbp(3000)
    assert amounts(ledger) == (0, 0, 0)
    assert ledger.payment("pi_1").status == "partially_refunded"
    assert ledger.verify().ok


def test_refund_of_released_payment_comes_from_available(engine: Engine) -> None:
    """Kills `released_at is not None` -> `is None` in refund legs: taken back from available."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 10_000)
    ledger.release_payment("pi_1")
    ledger.apply_refund_total("pi_1", gbp(1000))
    assert amounts(ledger) == (0, 8100, 0)
    assert ledger.verify().ok


def test_refund_beyond_pending_share_overflows_into_available(engine: Engine) -> None:
    """Kills `min(free, amount)` -> `max` and the sign: the excess comes out of the hold."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 10_000)  # payout 9000 pending
    ledger.open_dispute("pi_1", "dp_1", gbp(6000))  # holds 5400: 3600 free
    ledger.apply_refund_total("pi_1", gbp(5000))  # reverses 4500 of payout: 3600 + 900 held
    assert amounts(ledger) == (0, 0, 4500)
    assert ledger.verify().ok


# -- disputes (survivors 4 and 9) ---------------------------------------------------------------


def test_dispute_on_fully_refunded_payment_changes_nothing(engine: Engine) -> None:
    """Kills `disputed <= 0` -> `< 0` in open_dispute: status stays refunded, not disputed."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 5000)
    ledger.apply_refund_total("pi_1", gbp(5000))
    posting = ledger.open_dispute("pi_1", "dp_1", gbp(5000))
    assert not posting.created
    assert ledger.payment("pi_1").status == "refunded"
    assert amounts(ledger) == (0, 0, 0)


def test_lost_dispute_settles_a_held_unit_too_many(engine: Engine) -> None:
    """Kills the lost-dispute settlement sign `1 if diff > 0` -> `2` (an unbalanced posting)."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 1000)  # payout 900
    ledger.open_dispute("pi_1", "dp_1", gbp(1))  # holds 1
    ledger.apply_refund_total("pi_1", gbp(144))  # reverses 130 of payout
    ledger.close_dispute("pi_1", "dp_1", won=False)  # its share of 1 is now 0: 1 goes back
    assert amounts(ledger) == (770, 0, 0)
    record = ledger.payment("pi_1")
    assert record.refunded == gbp(145)
    assert record.status == "dispute_lost"
    assert ledger.platform_commission(GBP) == gbp(100 - 14 - 1)
    assert ledger.verify().ok


def test_lost_dispute_settles_a_held_unit_too_few(engine: Engine) -> None:
    """Kills the lost-dispute settlement sign `else -1` -> `1` (or 0): one unit short is taken."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 1000)  # payout 900
    ledger.open_dispute("pi_1", "dp_1", gbp(5))  # holds round_half_even(4.5) = 4
    ledger.release_payment("pi_1")  # released: the unit must come from available (sign matters)
    ledger.apply_refund_total("pi_1", gbp(5))  # reverses 4
    ledger.close_dispute("pi_1", "dp_1", won=False)  # share of 5 more is 5: one unit short
    assert amounts(ledger) == (0, 891, 0)
    assert ledger.verify().ok


def test_won_dispute_returns_the_hold_and_keeps_refund_status(engine: Engine) -> None:
    """Kills a won dispute leaving status "disputed" (`disputed=0` -> 1): back to partial refund."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 10_000)
    ledger.apply_refund_total("pi_1", gbp(1000))
    ledger.open_dispute("pi_1", "dp_1", gbp(2000))
    assert ledger.payment("pi_1").status == "disputed"
    ledger.close_dispute("pi_1", "dp_1", won=True)
    assert ledger.payment("pi_1").status == "partially_refunded"
    assert amounts(ledger) == (8100, 0, 0)
    assert ledger.verify().ok


# -- verify against the payments table (survivor 2) ---------------------------------------------


def _tamper(engine: Engine, **values: int) -> None:
    """Change the payments row behind the ledger's back."""
    with engine.begin() as conn:
        conn.execute(update(Payment.__table__).values(**values))


def test_verify_checks_commission_against_payments(engine: Engine) -> None:
    """Kills deleting verify()'s commission check against the payments table: drift is reported."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 5000)
    ledger.apply_refund_total("pi_1", gbp(1000))
    assert ledger.verify().ok
    _tamper(engine, fee_reversed=0)
    report = ledger.verify()
    assert not report.ok
    assert report.problems == ["platform_commission GBP: journal 400, payments table 500"]


def test_verify_checks_clearing_against_payments(engine: Engine) -> None:
    """Kills deleting verify()'s clearing check against the payments table: drift is reported."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 5000)
    ledger.apply_refund_total("pi_1", gbp(1000))
    _tamper(engine, amount_reversed=0)
    report = ledger.verify()
    assert report.problems == ["stripe_clearing GBP: journal -4000, payments table -5000"]


# -- small API facts (survivor 10) --------------------------------------------------------------


def test_payment_record_split_keeps_the_stored_rounding(engine: Engine) -> None:
    """Catches PaymentRecord.split dropping the payment's rounding (it fell back to half_even)."""
    ledger = LedgerService(engine)
    policy = CommissionPolicy(rate_bps=1050, rounding="up")
    pay(ledger, "pi_1", 1001, policy=policy)
    split = ledger.payment("pi_1").split
    assert split.rounding == "up"
    assert split == policy.split(gbp(1001))


def test_history_limit_bounds_are_inclusive(engine: Engine) -> None:
    """Kills `1 <= limit <= 500` -> `<`: limits 1 and 500 are accepted, 0 and 501 refused."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 1000)
    pay(ledger, "pi_2", 1000)
    first = ledger.history("m1", limit=1)
    assert [p.payment_intent_id for p in first.items] == ["pi_2"]
    assert first.next_cursor is not None
    rest = ledger.history("m1", limit=500, cursor=first.next_cursor)
    assert [p.payment_intent_id for p in rest.items] == ["pi_1"]
    assert rest.next_cursor is None
    for bad in (0, 501):
        with pytest.raises(InvalidRequestError):
            ledger.history("m1", limit=bad)


# -- the values the ledger hands out (found by scripts/mutation.sh) -----------------------------


def test_balance_view_as_dict_and_immutability(engine: Engine) -> None:
    """Kills BalanceView.as_dict returning None and `frozen=True -> False` on BalanceView."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 5000)
    ledger.release_payment("pi_1")
    pay(ledger, "pi_2", 1000)
    view = ledger.balance("m1", "gbp")
    assert view.as_dict() == {
        "mentor_id": "m1",
        "currency": "GBP",
        "total_earned": 5400,
        "total_earned_display": "54.00 GBP",
        "pending": 900,
        "pending_display": "9.00 GBP",
        "available": 4500,
        "available_display": "45.00 GBP",
        "held": 0,
        "held_display": "0.00 GBP",
        "reserved": 0,
        "reserved_display": "0.00 GBP",
        "withdrawn": 0,
        "withdrawn_display": "0.00 GBP",
    }
    with pytest.raises(AttributeError):
        view.pending = gbp(0)  # type: ignore[misc]
    assert len({view, ledger.balance("m1", GBP)}) == 1


def test_payment_outcome_and_record_are_immutable(engine: Engine) -> None:
    """Kills `frozen=True -> False` on PaymentOutcome and PaymentRecord: results are values."""
    ledger = LedgerService(engine)
    outcome = ledger.record_payment(
        payment_intent_id="pi_1",
        booking_id="b1",
        mentor_id="m1",
        mentee_id="u1",
        gross=gbp(5000),
        policy=POLICY,
    )
    with pytest.raises(AttributeError):
        outcome.created = False  # type: ignore[misc]
    with pytest.raises(AttributeError):
        outcome.payment.status = "refunded"  # type: ignore[misc]


# -- more of the ledger's rules (found by scripts/mutation.sh) ----------------------------------


def test_verify_reports_a_currency_only_the_payments_table_has(engine: Engine) -> None:
    """Kills `set(journal) | set(expected)` -> `&`: a fee with no journal entries is reported."""
    ledger = LedgerService(engine)
    ledger.record_payment(
        payment_intent_id="pi_1",
        booking_id="b1",
        mentor_id="m1",
        mentee_id="u1",
        gross=Money(5000, "USD"),
        policy=CommissionPolicy(rate_bps=0),  # no commission leg at all
    )
    assert ledger.verify().ok
    _tamper(engine, platform_fee=5)
    assert ledger.verify().problems == ["platform_commission USD: journal 0, payments table 5"]


def test_set_release_due_schedules_the_release(engine: Engine) -> None:
    """Kills deleting set_release_due's update: a payment scheduled later is released then."""
    ledger = LedgerService(engine)
    due = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    pay(ledger, "pi_1", 1000)
    assert ledger.release_due(now=due) == []
    ledger.set_release_due("pi_1", due)
    assert [p.business_key for p in ledger.release_due(now=due + timedelta(hours=1))] == [
        "release:pi_1"
    ]


def test_release_by_booking_reports_each_posting(engine: Engine) -> None:
    """Kills release() returning None: it lists one posting per payment of the booking."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 1000)
    (posting,) = ledger.release("b-pi_1")
    assert (posting.business_key, posting.created, posting.amount) == (
        "release:pi_1",
        True,
        gbp(900),
    )
    assert [p.created for p in ledger.release("b-pi_1")] == [False]


def test_refund_of_a_single_minor_unit_is_applied(engine: Engine) -> None:
    """Kills `delta <= 0` -> `<= 1` / `< 0` in apply_refund_total: 0p posts nothing, 1p posts."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 1000)
    assert not ledger.apply_refund_total("pi_1", gbp(0)).created  # `<= 0` -> `< 0`: no posting
    assert ledger.apply_refund_total("pi_1", gbp(1)).created
    assert ledger.payment("pi_1").refunded == gbp(1)
    assert ledger.verify().ok


def test_closing_a_dispute_that_was_never_opened_posts_nothing(engine: Engine) -> None:
    """Kills close_dispute's early `created=False` -> `True` when nothing is disputed."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 1000)
    for won in (True, False):
        assert not ledger.close_dispute("pi_1", "dp_x", won=won).created
    assert amounts(ledger) == (900, 0, 0)


def test_a_new_dispute_after_a_won_one_holds_again(engine: Engine) -> None:
    """Kills close_dispute resetting amount_disputed to 1 instead of 0: the next dispute holds."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 1000)
    ledger.open_dispute("pi_1", "dp_1", gbp(1000))
    ledger.close_dispute("pi_1", "dp_1", won=True)
    assert ledger.open_dispute("pi_1", "dp_2", gbp(500)).amount == gbp(450)
    assert amounts(ledger) == (450, 0, 450)
    assert ledger.payment("pi_1").status == "disputed"


def test_ledger_refuses_an_unsupported_database(tmp_path: Path) -> None:
    """Kills deleting the dialect check in the posting SQL: only SQLite and PostgreSQL are used."""
    engine = sqlite_engine(tmp_path)
    engine.dialect.name = "mysql"  # pretend: the check must refuse before any SQL is built
    with pytest.raises(ConfigurationError):
        pay(LedgerService(engine), "pi_1", 1000)


def test_release_after_a_won_dispute_moves_the_whole_share(engine: Engine) -> None:
    """Kills close_dispute resetting payout_held to 1 instead of 0: nothing stays frozen."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 1000)
    ledger.open_dispute("pi_1", "dp_1", gbp(1000))
    ledger.close_dispute("pi_1", "dp_1", won=True)
    assert ledger.release_payment("pi_1").amount == gbp(900)
    assert amounts(ledger) == (0, 900, 0)


def test_release_due_at_exactly_now_with_microseconds_on_sqlite(tmp_path: Path) -> None:
    """A payment due at exactly the cutoff, microseconds included, is released (SQLite)."""
    ledger = LedgerService(sqlite_engine(tmp_path))
    due = datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)
    pay(ledger, "pi_1", 1000, release_due_at=due)
    assert [p.business_key for p in ledger.release_due(now=due)] == ["release:pi_1"]


def test_recorded_fee_is_what_stripe_kept_not_the_policy(engine: Engine) -> None:
    """Kills `platform_fee != split.platform_fee` -> `==` in record_payment: Stripe's fee wins."""
    ledger = LedgerService(engine)
    outcome = ledger.record_payment(
        payment_intent_id="pi_1",
        booking_id="b1",
        mentor_id="m1",
        mentee_id="u1",
        gross=gbp(5000),
        policy=POLICY,  # would say 500
        platform_fee=gbp(700),
    )
    assert (outcome.split.platform_fee, outcome.split.mentor_payout) == (gbp(700), gbp(4300))
    record = ledger.payment("pi_1")
    assert (record.platform_fee, record.mentor_payout) == (gbp(700), gbp(4300))
    assert ledger.platform_commission(GBP) == gbp(700)
    assert ledger.verify().ok


def test_release_after_a_lost_dispute_moves_only_what_is_left(engine: Engine) -> None:
    """Kills `payout_reversed + payout` -> `-` on a lost dispute: the lost share is gone."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 10_000)
    ledger.open_dispute("pi_1", "dp_1", gbp(2000))
    ledger.close_dispute("pi_1", "dp_1", won=False)  # 1800 of payout reversed
    assert ledger.release_payment("pi_1").amount == gbp(7200)
    assert amounts(ledger) == (0, 7200, 0)
    assert ledger.verify().ok


# -- capture (issue 10: survivors of ledger.postings) -------------------------------------------


def test_only_a_plain_payment_gets_a_release_date(engine: Engine) -> None:
    """Kills `destination or review_reason` -> `and`: neither kind of payment waits for release."""
    due = datetime(2026, 1, 8, tzinfo=UTC)
    pay(LedgerService(engine), "pi_plain", 1000, release_due_at=due)
    pay(LedgerService(engine), "pi_review", 1000, release_due_at=due, review_reason="amount")
    pay(LedgerService(engine), "pi_connect", 1000, release_due_at=due, destination="acct_1")
    with engine.connect() as conn:
        rows = dict(conn.execute(select(Payment.payment_intent_id, Payment.release_due_at)).all())
    assert rows["pi_plain"] is not None
    assert rows["pi_review"] is None
    assert rows["pi_connect"] is None


def test_dispute_postings_name_the_mentor(engine: Engine) -> None:
    """Kills `s.mentor_id or None` -> `and None`: a dispute's journal rows name the mentor."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 1000)
    ledger.open_dispute("pi_1", "dp_1", gbp(1000))
    ledger.close_dispute("pi_1", "dp_1", won=False)
    with engine.connect() as conn:
        rows = conn.execute(
            select(LedgerTransaction.kind, LedgerTransaction.mentor_id).where(
                LedgerTransaction.kind.in_(("dispute_opened", "dispute_lost"))
            )
        ).all()
    assert sorted(rows) == [("dispute_lost", "m1"), ("dispute_opened", "m1")]


def test_a_destination_charge_is_paid_out_at_capture(engine: Engine) -> None:
    """Kills `destination is None` -> `is not None` (the CTE): Connect goes to withdrawn."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 1000, destination="acct_1")
    balance = ledger.balance("m1", GBP)
    assert (balance.pending.amount, balance.withdrawn.amount) == (0, 900)
    assert ledger.verify().ok


def test_a_new_payment_reports_its_own_row_id(engine: Engine) -> None:
    """Kills `found[0][0]` -> `found[0][1]` (PostgreSQL's CTE): the record has its own row id."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 1000)
    ledger.apply_refund_total("pi_1", gbp(100))  # one more journal transaction than payments
    outcome = ledger.record_payment(
        payment_intent_id="pi_2",
        booking_id="b-pi_2",
        mentor_id="m1",
        mentee_id="u1",
        gross=gbp(1000),
        policy=POLICY,
    )
    assert outcome.created
    assert outcome.payment.id == ledger.payment("pi_2").id
