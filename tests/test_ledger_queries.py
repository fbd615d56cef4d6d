"""The ledger's query functions other modules call instead of reading ledger tables themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from mentorpay.commission import CommissionPolicy
from mentorpay.ledger import LedgerService
from mentorpay.ledger.queries import intent_for_charge, locked_payment, paid_by
from mentorpay.ledger.reports import disputes_opened_between, posted_dispute_phases
from mentorpay.money import Money

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _ledger_with_disputes(engine: Engine) -> LedgerService:
    """pi_1 with dp_1 opened and won, pi_2 with dp_2 opened an hour later."""
    now = [T0]
    ledger = LedgerService(engine, clock=lambda: now[0])
    for pi in ("pi_1", "pi_2"):
        ledger.record_payment(
            payment_intent_id=pi,
            booking_id=f"b-{pi}",
            mentor_id="m1",
            mentee_id="u1",
            gross=Money(10_000, "GBP"),
            policy=CommissionPolicy(rate_bps=1000),
        )
    ledger.open_dispute("pi_1", "dp_1", Money(5_000, "GBP"))
    ledger.close_dispute("pi_1", "dp_1", won=True)
    now[0] = T0 + timedelta(hours=1)
    ledger.open_dispute("pi_2", "dp_2", Money(5_000, "GBP"))
    return ledger


def test_posted_dispute_phases_names_each_posted_phase(engine: Engine) -> None:
    """Opened and won for a closed dispute, opened for an open one, nothing for an unknown id."""
    _ledger_with_disputes(engine)
    with engine.connect() as conn:
        phases = posted_dispute_phases(conn, ["dp_1", "dp_2", "dp_unknown"])
        assert posted_dispute_phases(conn, []) == {}
    assert phases == {"dp_1": {"opened", "won"}, "dp_2": {"opened"}}


def test_disputes_opened_between_reads_the_window(engine: Engine) -> None:
    """Disputes whose opening was posted in [since, until), with their payment intents."""
    _ledger_with_disputes(engine)
    with engine.connect() as conn:
        everything = disputes_opened_between(conn, T0, T0 + timedelta(days=1))
        first_hour = disputes_opened_between(conn, T0, T0 + timedelta(hours=1))
        later = disputes_opened_between(conn, T0 + timedelta(hours=2), T0 + timedelta(days=1))
    assert sorted(everything) == [("dp_1", "pi_1"), ("dp_2", "pi_2")]
    assert first_hour == [("dp_1", "pi_1")]
    assert later == []


def test_locked_payment_reads_the_state_or_none(engine: Engine) -> None:
    """A recorded payment's state under lock; None for an unknown payment intent."""
    ledger = _ledger_with_disputes(engine)
    ledger.apply_refund_total("pi_2", Money(1_000, "GBP"))
    with engine.begin() as conn:
        state = locked_payment(conn, "pi_2")
        assert locked_payment(conn, "pi_missing") is None
    assert state is not None
    assert (state.amount, state.amount_refunded, state.amount_disputed) == (10_000, 1_000, 5_000)
    assert (state.platform_fee, state.mentor_payout, state.status) == (1_000, 9_000, "disputed")


def test_intent_for_charge_and_paid_by(engine: Engine) -> None:
    """A charge finds its payment intent; a booking is paid until its payment is refunded."""
    ledger = LedgerService(engine)
    ledger.record_payment(
        payment_intent_id="pi_c",
        booking_id="b_c",
        mentor_id="m1",
        mentee_id="u1",
        gross=Money(1_000, "GBP"),
        policy=CommissionPolicy(rate_bps=1000),
        charge_id="ch_c",
    )
    with engine.connect() as conn:
        assert intent_for_charge(conn, "ch_c") == "pi_c"
        assert intent_for_charge(conn, "ch_unknown") is None
        assert paid_by(conn, "b_c") == ("pi_c", "succeeded")
        assert paid_by(conn, "b_unknown") is None
    ledger.apply_refund_total("pi_c", Money(1_000, "GBP"))
    with engine.connect() as conn:
        assert paid_by(conn, "b_c") is None
