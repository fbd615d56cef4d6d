"""Random sequences of ledger operations keep the journal, balances and an oracle in agreement."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from mentorpay.commission import CommissionPolicy
from mentorpay.errors import InsufficientBalanceError
from mentorpay.ledger import LedgerService
from mentorpay.money import Money
from mentorpay.testing import truncate_all

MENTORS = ("m1", "m2")
POLICY = CommissionPolicy(rate_bps=1250)

operation = st.one_of(
    st.tuples(st.just("pay"), st.sampled_from(MENTORS), st.integers(1, 100_000)),
    st.tuples(st.just("refund"), st.integers(0, 20), st.integers(1, 100_000)),
    st.tuples(st.just("release"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("dispute"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("close"), st.integers(0, 20), st.booleans()),
    st.tuples(st.just("payout"), st.sampled_from(MENTORS), st.integers(1, 50_000)),
    st.tuples(st.just("settle"), st.integers(0, 20), st.booleans()),
)


@dataclass
class Oracle:
    """An independent model: what each mentor has earned and withdrawn, from first principles."""

    payments: list[tuple[str, str, int, int]] = field(default_factory=list)  # pi, mentor, G, P
    reversed_total: dict[str, int] = field(default_factory=dict)
    payouts: list[tuple[int, str, int]] = field(default_factory=list)
    payout_state: dict[int, str] = field(default_factory=dict)

    def earned(self, mentor: str) -> int:
        total = 0
        for pi, owner, gross, payout in self.payments:
            if owner == mentor:
                reversed_amount = self.reversed_total.get(pi, 0)
                # The cumulative payout target, computed independently of the ledger's code.
                total += payout - POLICY_ROUND(payout * reversed_amount, gross)
        return total

    def withdrawn(self, mentor: str) -> int:
        return sum(
            a for pid, m, a in self.payouts if m == mentor and self.payout_state[pid] == "paid"
        )

    def reserved(self, mentor: str) -> int:
        return sum(
            a for pid, m, a in self.payouts if m == mentor and self.payout_state[pid] == "open"
        )


def POLICY_ROUND(numerator: int, denominator: int) -> int:  # noqa: N802 - reads as a formula
    """Round half to even, integers only."""
    q, r = divmod(numerator, denominator)
    if 2 * r > denominator or (2 * r == denominator and q % 2 == 1):
        q += 1
    return q


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, min_size=1, max_size=30))
def test_random_operations_keep_ledger_consistent(engine: Engine, ops: list[tuple]) -> None:
    """After any sequence of operations verify() is clean and balances match an oracle."""
    truncate_all(engine)
    ledger = LedgerService(engine)
    oracle = Oracle()
    disputes: dict[str, str] = {}
    for kind, a, b in ops:
        if kind == "pay":
            pi = f"pi_{len(oracle.payments)}"
            out = ledger.record_payment(
                payment_intent_id=pi,
                booking_id=pi,
                mentor_id=a,
                mentee_id="u",
                gross=Money(b, "EUR"),
                policy=POLICY,
            )
            oracle.payments.append((pi, a, b, out.split.mentor_payout.amount))
        elif kind in ("refund", "release", "dispute", "close") and oracle.payments:
            pi, _, gross, _ = oracle.payments[a % len(oracle.payments)]
            record = ledger.payment(pi)
            if kind == "refund":
                room = gross - record.refunded.amount
                if room > 0:
                    target = ledger_refunded(ledger, pi) + min(b, room)
                    ledger.apply_refund_total(pi, Money(target, "EUR"))
                    oracle.reversed_total[pi] = oracle.reversed_total.get(pi, 0) + min(b, room)
            elif kind == "release":
                ledger.release_payment(pi)
            elif kind == "dispute" and pi not in disputes:
                room = gross - oracle.reversed_total.get(pi, 0)
                if room > 0:
                    disputes[pi] = f"dp_{pi}"
                    ledger.open_dispute(pi, disputes[pi], Money(room, "EUR"))
            elif kind == "close" and pi in disputes:
                dispute_id = disputes.pop(pi)
                before = ledger.payment(pi).refunded.amount
                ledger.close_dispute(pi, dispute_id, won=bool(b))
                after = ledger.payment(pi).refunded.amount
                oracle.reversed_total[pi] = oracle.reversed_total.get(pi, 0) + (after - before)
        elif kind == "payout":
            pid = len(oracle.payouts) + 1
            available = ledger.balance(a, "EUR").available.amount
            try:
                with engine.begin() as conn:
                    ledger.reserve_payout(conn, pid, a, Money(b, "EUR"))
            except InsufficientBalanceError:
                assert b > available
            else:
                assert b <= available
                oracle.payouts.append((pid, a, b))
                oracle.payout_state[pid] = "open"
        elif kind == "settle":
            open_ids = [p for p in oracle.payouts if oracle.payout_state[p[0]] == "open"]
            if open_ids:
                pid, mentor, amount = open_ids[a % len(open_ids)]
                with engine.begin() as conn:
                    ledger.settle_payout(
                        conn, pid, mentor, Money(amount, "EUR"), outcome="paid" if b else "returned"
                    )
                oracle.payout_state[pid] = "paid" if b else "returned"
    report = ledger.verify()
    assert report.ok, report.problems
    for mentor in MENTORS:
        view = ledger.balance(mentor, "EUR")
        assert view.total_earned.amount == oracle.earned(mentor)
        assert view.withdrawn.amount == oracle.withdrawn(mentor)
        assert view.reserved.amount == oracle.reserved(mentor)
        assert view.pending.amount >= 0
        assert view.held.amount >= 0


def ledger_refunded(ledger: LedgerService, pi: str) -> int:
    """Stripe's cumulative amount_refunded as the ledger last applied it."""
    from sqlalchemy import select

    from mentorpay.models import Payment

    with ledger._engine.connect() as conn:  # read-only peek for the test driver
        return int(
            conn.execute(
                select(Payment.amount_refunded).where(Payment.payment_intent_id == pi)
            ).scalar_one()
        )
