"""The ``mentorpay demo`` walk-through on a local SQLite file (no Stripe account needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mentorpay._tables import BALANCE_HEADERS, balance_rows, table
from mentorpay.commission import CommissionPolicy
from mentorpay.db import make_engine
from mentorpay.ledger import LedgerService
from mentorpay.migrations import upgrade
from mentorpay.money import Money

__all__ = ["run_demo"]

Say = Callable[[str], None]


def run_demo(path: Path, say: Say, *, fresh: bool = True) -> int:
    """Bookings -> payments -> commission split -> ledger -> balances; returns an exit code."""
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        ledger = LedgerService(engine)
        policy = CommissionPolicy(rate_bps=1000)
        say(f"mentorpay demo on {path} (commission {policy.rate_bps / 100:g}%)\n")
        bookings = [
            ("42", "alice", "GBP", "50.00"),
            ("43", "alice", "GBP", "100.00"),
            ("44", "bob", "GBP", "150.00"),
            ("45", "bob", "GBP", "200.00"),
            ("46", "chiyo", "JPY", "5000"),
        ]
        rows = []
        for booking_id, mentor, currency, price in bookings:
            gross = Money.parse(price, currency)
            outcome = ledger.record_payment(
                payment_intent_id=f"pi_demo_{booking_id}",
                booking_id=booking_id,
                mentor_id=mentor,
                mentee_id="mentee-7",
                gross=gross,
                policy=policy,
            )
            s = outcome.split
            rows.append(
                [booking_id, mentor, str(s.gross), str(s.platform_fee), str(s.mentor_payout)]
            )
        say("Payments and their exact commission split:")
        say(table(["booking", "mentor", "paid", "platform fee", "mentor payout"], rows))
        say("")
        # A duplicate delivery of the first payment changes nothing.
        again = ledger.record_payment(
            payment_intent_id="pi_demo_42",
            booking_id="42",
            mentor_id="alice",
            mentee_id="mentee-7",
            gross=Money(5000, "GBP"),
            policy=policy,
        )
        say(f"Duplicate of booking 42 recorded again? {again.created}")
        ledger.release("42")
        ledger.release("44")
        say("Sessions 42 and 44 took place: their earnings are released.")
        ledger.apply_refund_total("pi_demo_43", Money.parse("30.00", "GBP"))
        say("Booking 43 partially refunded: 30.00 GBP (fee and payout reversed pro rata).")
        with engine.begin() as conn:
            ledger.reserve_payout(conn, 1, "bob", Money.parse("100.00", "GBP"))
        with engine.begin() as conn:
            ledger.settle_payout(conn, 1, "bob", Money.parse("100.00", "GBP"), outcome="paid")
        say("Bob withdrew 100.00 GBP.\n")
        views = [v for mentor in ("alice", "bob", "chiyo") for v in ledger.balances(mentor)]
        say("Balances:")
        say(table(BALANCE_HEADERS, balance_rows(views)))
        say("")
        for currency in ("GBP", "JPY"):
            say(f"Platform commission {currency}: {ledger.platform_commission(currency)}")
        report = ledger.verify()
        status = "OK" if report.ok else "PROBLEMS: " + "; ".join(report.problems)
        say(f"Ledger verify: {status} ({report.transactions} journal transactions)")
        return 0 if report.ok else 2
    finally:
        engine.dispose()
