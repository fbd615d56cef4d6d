"""Holds per dispute under refunds: each test names the fault (mutant) it catches."""

from __future__ import annotations

from sqlalchemy import Engine

from mentorpay import CommissionPolicy, Money
from mentorpay.ledger import AVAILABLE, LedgerService, PaymentState, rules

GBP = "GBP"


def gbp(amount: int) -> Money:
    """Shorthand for an amount in pence."""
    return Money(amount, GBP)


def pay(ledger: LedgerService, pi: str, amount: int) -> None:
    """A payment of ``amount`` pence to mentor m1 at 10%."""
    ledger.record_payment(
        payment_intent_id=pi,
        booking_id=f"b-{pi}",
        mentor_id="m1",
        mentee_id="u1",
        gross=gbp(amount),
        policy=CommissionPolicy(rate_bps=1000),
    )


def amounts(ledger: LedgerService) -> tuple[int, int, int]:
    """m1's (pending, available, held) in pence."""
    b = ledger.balance("m1", GBP)
    return b.pending.amount, b.available.amount, b.held.amount


def test_a_refund_shrinks_only_as_many_holds_as_it_needs(engine: Engine) -> None:
    """Kills `amount -= take` -> `+=`: a refund covered by the first hold leaves the second."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 1000)  # payout 900
    ledger.open_dispute("pi_1", "dp_a", gbp(500))  # holds 450
    ledger.open_dispute("pi_1", "dp_b", gbp(400))  # holds 360; 90 free
    ledger.apply_refund_total("pi_1", gbp(500))  # payout 450: 90 free + 360 from dp_a
    assert amounts(ledger) == (0, 0, 450)
    ledger.close_dispute("pi_1", "dp_a", won=True)
    ledger.close_dispute("pi_1", "dp_b", won=True)
    assert amounts(ledger) == (450, 0, 0)
    assert ledger.verify().ok


def test_a_one_unit_hold_is_consumed_by_a_refund(engine: Engine) -> None:
    """Kills `held > 0` -> `held > 1`: a hold of exactly one unit shrinks, never returns twice."""
    ledger = LedgerService(engine)
    pay(ledger, "pi_1", 1000)  # payout 900
    ledger.open_dispute("pi_1", "dp_1", gbp(1))  # holds 1
    ledger.apply_refund_total("pi_1", gbp(1000))  # all 900 back: 899 free + the held 1
    ledger.close_dispute("pi_1", "dp_1", won=True)
    assert amounts(ledger) == (0, 0, 0)
    assert ledger.verify().ok


def test_taking_more_than_the_share_overdraws_available() -> None:
    """Kills the overflow leg (`if overflow` -> `not`, its sign): reached by bad data only."""
    state = {
        "mentor_id": "m1",
        "payment_intent_id": "pi_1",
        "mentor_payout": 900,
        "payout_reversed": 850,
        "payout_held": 0,
        "destination": None,
        "released_at": None,
    }
    legs, from_held, _released = rules.take_back(PaymentState.from_mapping(state), 80)
    assert from_held == 0
    assert legs == [("mentor_pending", "m1", -50), (AVAILABLE, "m1", -30)]
