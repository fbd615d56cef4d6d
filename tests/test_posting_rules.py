"""The ledger's posting rules (``mentorpay.ledger.rules``) without a database.

A small simulator plays each rule's plan the way the service writes it (legs onto account
totals, holds shrunk in dispute-id order, row updates onto the state); the oracles are DESIGN.md
sections 4 and 5 written out independently: legs balance, the mentor's accounts add up to the
unreversed share, refunds follow ``round(P * R / G)``, holds never go negative.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from fractions import Fraction
from random import Random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mentorpay.commission import CommissionPolicy
from mentorpay.errors import ConflictError, CurrencyMismatchError
from mentorpay.ledger import payout_rules, rules
from mentorpay.ledger.rules import (
    AVAILABLE,
    CLEARING,
    COMMISSION,
    HELD,
    PENDING,
    RESERVED,
    SUSPENSE,
    WITHDRAWN,
    Leg,
    Plan,
)
from mentorpay.ledger.state import PaymentState
from mentorpay.money import Money, allocate

CUR = "GBP"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
MENTOR_ACCOUNTS = (PENDING, AVAILABLE, HELD, RESERVED, WITHDRAWN)
STATE_FIELDS = {f.name for f in fields(PaymentState)}


def state(
    gross: int, rate_bps: int, *, review: bool = False, destination: bool = False
) -> PaymentState:
    """A freshly captured payment, split as DESIGN.md section 4 says: fee rounded half-even."""
    fee = gross if review else round(Fraction(gross * rate_bps, 10_000))
    return PaymentState(
        id=1,
        payment_intent_id="pi_1",
        booking_id="b1",
        mentor_id="m1",
        mentee_id="e1",
        currency=CUR,
        status="needs_review" if review else "succeeded",
        amount=gross,
        platform_fee=fee,
        mentor_payout=gross - fee,
        rate_bps=10_000 if review else rate_bps,
        rounding="half_even",
        amount_reversed=0,
        fee_reversed=0,
        payout_reversed=0,
        amount_refunded=0,
        refund_failed=0,
        refund_applied=0,
        payout_held=0,
        amount_disputed=0,
        review_reason="mismatch" if review else None,
        destination="acct_1" if destination else None,
        released_at=NOW if destination else None,
        created_at=NOW,
    )


def target(s: PaymentState, reversed_total: int) -> int:
    """DESIGN.md section 4: the payout reversed after reversals R is P * R / G, rounded once."""
    return round(Fraction(s.mentor_payout * min(reversed_total, s.amount), s.amount))


@dataclass
class Dispute:
    """A dispute row: its disputed gross, its current hold, whether it is still open."""

    amount: int
    held: int
    open: bool = True


@dataclass
class Sim:
    """One payment's journal and dispute rows, written as the service writes a plan."""

    s: PaymentState
    accounts: Counter[str] = field(default_factory=Counter)
    disputes: dict[str, Dispute] = field(default_factory=dict)
    refunded_high: int = 0
    failed: int = 0
    seen_failures: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        split = self.s.split
        in_review = self.s.review_reason is not None
        legs = rules.capture_legs(
            split, "m1", in_review=in_review, destination=bool(self.s.destination)
        )
        self.book(legs)

    def book(self, legs: list[Leg]) -> None:
        assert sum(amount for _, _, amount in legs) == 0, legs
        for account, owner, amount in legs:
            assert (owner is not None) == (account in MENTOR_ACCOUNTS), (account, owner)
            self.accounts[account] += amount

    def write(self, plan: Plan) -> None:
        if plan.legs is not None:
            self.book(plan.legs)
        need = plan.from_held
        for _, dispute in sorted(self.disputes.items()):
            if dispute.open and need > 0:
                take = min(dispute.held, need)
                dispute.held -= take
                need -= take
        assert need == 0, "a plan took more from holds than the open disputes hold"
        self.s = replace(self.s, **{k: v for k, v in plan.updates.items() if k in STATE_FIELDS})

    # -- events ---------------------------------------------------------------------------------

    def refund(self, total: int) -> None:
        self.refunded_high = max(self.refunded_high, total)
        found = rules.refund_total(self.s, total)
        if found is not None:
            self.write(found[1])

    def fail(self, refund_id: str, amount: int) -> None:
        if refund_id in self.seen_failures:
            return  # the business key refund_failed:{id} posts once
        self.seen_failures.add(refund_id)
        self.failed += amount
        self.write(rules.refund_failure(self.s, amount))

    def open(self, dispute_id: str, amount: int) -> None:
        if dispute_id in self.disputes:
            return
        opening = rules.dispute_opened(self.s, Money(amount, CUR))
        self.disputes[dispute_id] = Dispute(opening.disputed, opening.hold)
        if opening.plan is not None:
            self.write(opening.plan)

    def close(self, dispute_id: str, *, won: bool) -> None:
        dispute = self.disputes.get(dispute_id)
        if dispute is None or not dispute.open:
            return
        dispute.open = False  # closed before its plan is written, as the service does
        self.write(
            rules.dispute_closed(self.s, held=dispute.held, disputed=dispute.amount, won=won)
        )

    def release(self) -> None:
        plan = rules.release(self.s, NOW)
        if plan is not None:
            self.write(plan)

    def share(self, seq: int, credits: int) -> int:
        """One plan session's share (allocate's ``seq``-th of ``credits``) released."""
        share = allocate(Money(self.s.mentor_payout, CUR), [1] * credits)[seq % credits]
        plan = rules.release_share(self.s, share.amount)
        if plan is None:
            return 0
        self.write(plan)
        return plan.amount

    # -- the invariants -------------------------------------------------------------------------

    def check(self) -> None:
        s, a = self.s, self.accounts
        mentor_total = sum(a[x] for x in MENTOR_ACCOUNTS)
        assert mentor_total == s.mentor_payout - s.payout_reversed
        assert a[CLEARING] == -(s.amount - s.amount_reversed)
        platform = SUSPENSE if s.review_reason is not None else COMMISSION
        assert a[platform] == s.platform_fee - s.fee_reversed
        assert s.fee_reversed + s.payout_reversed == s.amount_reversed
        holds = [d.held for d in self.disputes.values() if d.open]
        assert all(h >= 0 for h in holds)
        assert s.payout_held == sum(holds) == a[HELD] >= 0
        assert 0 <= s.amount_reversed <= s.amount
        assert 0 <= s.payout_reversed <= s.mentor_payout
        # A plan period's free share is split between pending and what its sessions released.
        free = s.mentor_payout - s.payout_reversed - s.payout_held
        assert s.payout_released >= 0
        if s.released_at is None and s.destination is None:
            assert 0 <= s.payout_released <= free
            assert a[PENDING] == free - s.payout_released
        else:
            assert a[PENDING] == 0


gross_st = st.integers(1, 200_000)
rate_st = st.integers(0, 10_000)
refund_event = st.one_of(
    st.tuples(st.just("refund"), st.integers(0, 250_000)),
    st.tuples(st.just("fail"), st.integers(1, 50_000), st.sampled_from(["re_1", "re_2", "re_3"])),
)
event = st.one_of(
    refund_event,
    st.tuples(st.just("open"), st.sampled_from(["dp_1", "dp_2", "dp_3"]), st.integers(1, 250_000)),
    st.tuples(st.just("close"), st.sampled_from(["dp_1", "dp_2", "dp_3"]), st.booleans()),
    st.tuples(st.just("release")),
    st.tuples(st.just("share"), st.integers(0, 7), st.integers(1, 8)),
)


def play(sim: Sim, events: list[tuple[Any, ...]]) -> None:
    """Apply events in order, checking the invariants after each."""
    for ev in events:
        kind = ev[0]
        if kind == "refund":
            sim.refund(min(ev[1], sim.s.amount))  # Stripe never refunds more than was charged
        elif kind == "fail":
            sim.fail(ev[2], ev[1])
        elif kind == "open":
            sim.open(ev[1], ev[2])
        elif kind == "close":
            sim.close(ev[1], won=ev[2])
        elif kind == "share":
            sim.share(ev[1], ev[2])
        else:
            sim.release()
        sim.check()


@given(gross_st, rate_st, st.lists(event, max_size=25), st.booleans())
def test_every_plan_balances_and_keeps_the_accounts_equal_to_the_row(
    gross: int, rate: int, events: list[tuple[Any, ...]], destination: bool
) -> None:
    """Any event sequence: legs balance, accounts match the row, holds stay >= 0."""
    sim = Sim(state(gross, rate, destination=destination))
    sim.check()
    play(sim, events)


@given(gross_st, rate_st, st.lists(refund_event, max_size=20), st.randoms())
def test_refunds_in_any_order_reverse_the_split_by_cumulative_targets(
    gross: int, rate: int, events: list[tuple[Any, ...]], rnd: Random
) -> None:
    """Refunds and failures in any order reverse round(P * R / G) of R = max refunded - failed."""
    first: dict[str, int] = {}
    for ev in events:  # one amount per refund id, whatever order its events arrive in
        if ev[0] == "fail":
            first.setdefault(ev[2], ev[1])
    events = [("fail", first[ev[2]], ev[2]) if ev[0] == "fail" else ev for ev in events]
    ordered = Sim(state(gross, rate))
    play(ordered, events)
    shuffled_events = list(events)
    rnd.shuffle(shuffled_events)
    shuffled = Sim(state(gross, rate))
    play(shuffled, shuffled_events)
    assert shuffled.s == ordered.s
    assert shuffled.accounts == ordered.accounts
    s = ordered.s
    effective = min(max(ordered.refunded_high - ordered.failed, 0), gross)
    assert s.refund_applied == s.amount_reversed == effective
    assert s.payout_reversed == target(s, effective)
    assert s.fee_reversed == effective - target(s, effective)


@given(gross_st, rate_st, st.lists(st.integers(1, 200_000), min_size=1, max_size=10))
def test_partial_refunds_up_to_the_gross_reverse_exactly_fee_and_payout(
    gross: int, rate: int, steps: list[int]
) -> None:
    """Partial refunds reaching the gross reverse exactly the original fee and payout."""
    sim = Sim(state(gross, rate))
    total = 0
    for step in steps:
        total = min(gross, total + step)
        sim.refund(total)
        sim.check()
    sim.refund(gross)
    sim.check()
    assert (sim.s.fee_reversed, sim.s.payout_reversed) == (sim.s.platform_fee, sim.s.mentor_payout)
    assert sim.accounts[CLEARING] == 0
    assert all(sim.accounts[x] == 0 for x in MENTOR_ACCOUNTS)
    assert sim.s.status == "refunded"


@given(gross_st, rate_st, st.lists(event, max_size=25))
def test_a_released_payment_leaves_nothing_in_pending(
    gross: int, rate: int, events: list[tuple[Any, ...]]
) -> None:
    """In every order of events, a released payment leaves nothing in pending (DESIGN.md 5)."""
    sim = Sim(state(gross, rate))
    play(sim, [*events, ("release",)])
    for dispute_id in list(sim.disputes):
        sim.close(dispute_id, won=True)
        sim.check()
    assert sim.accounts[PENDING] == 0


@given(gross_st, rate_st, st.integers(1, 250_000), st.booleans())
def test_a_dispute_returns_exactly_its_hold_or_reverses_exactly_its_amount(
    gross: int, rate: int, disputed: int, won: bool
) -> None:
    """Won: everything is as before the dispute. Lost: the amount is reversed by the targets."""
    sim = Sim(state(gross, rate))
    before = (sim.s.payout_reversed, Counter(sim.accounts))
    sim.open("dp_1", disputed)
    sim.check()
    assert sim.s.status == "disputed"
    sim.close("dp_1", won=won)
    sim.check()
    applied = min(disputed, gross)
    if won:
        assert sim.s.payout_reversed == before[0]
        assert {k: v for k, v in sim.accounts.items() if v} == {
            k: v for k, v in before[1].items() if v
        }
        assert sim.s.status == "succeeded"
    else:
        assert sim.s.amount_reversed == applied
        assert sim.s.payout_reversed == target(sim.s, applied)
        assert sim.s.status == "dispute_lost"


@given(st.integers(1, 200_000), rate_st, st.integers(0, 200_000))
def test_review_credit_moves_suspense_to_fee_and_share_of_what_remains(
    gross: int, rate: int, refunded: int
) -> None:
    """Crediting a reviewed payment empties suspense into fee + share of the unrefunded part."""
    sim = Sim(state(gross, rate, review=True))
    refunded = min(refunded, gross - 1)
    sim.refund(refunded)
    sim.check()
    policy = CommissionPolicy(rate_bps=rate)
    plan = rules.review_credit(
        sim.s, booking_id="b2", mentor_id="m1", mentee_id="e2", policy=policy, release_due_at=None
    )
    assert plan is not None
    assert plan.legs is not None
    sim.write(plan)
    sim.check()
    assert sim.accounts[SUSPENSE] == 0
    remaining = gross - refunded
    payout_remaining = sim.s.mentor_payout - target(sim.s, refunded)
    assert sim.accounts[PENDING] == payout_remaining
    assert sim.accounts[COMMISSION] == remaining - payout_remaining
    assert (
        rules.review_credit(
            sim.s,
            booking_id="b2",
            mentor_id="m1",
            mentee_id="e2",
            policy=policy,
            release_due_at=None,
        )
        is None
    )


def test_review_credit_is_refused_while_disputed_or_fully_refunded() -> None:
    """Credit waits for an open dispute to close and has nothing to credit after a full refund."""
    sim = Sim(state(1000, 1000, review=True))
    sim.open("dp_1", 500)
    args = {"booking_id": "b", "mentor_id": "m1", "mentee_id": "e", "release_due_at": None}
    policy = CommissionPolicy(rate_bps=1000)
    with pytest.raises(ConflictError):
        rules.review_credit(sim.s, policy=policy, **args)  # type: ignore[arg-type]
    sim.close("dp_1", won=True)
    sim.refund(1000)
    with pytest.raises(ConflictError):
        rules.review_credit(sim.s, policy=policy, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("move", ["reserve", "paid", "returned", "reversed"])
def test_payout_legs_balance_and_move_one_mentor_between_two_accounts(move: str) -> None:
    """Each payout step is one balanced pair of the mentor's own accounts."""
    legs = payout_rules.payout_legs("m1", 700, move)  # type: ignore[arg-type]
    assert sum(amount for _, _, amount in legs) == 0
    assert {owner for _, owner, _ in legs} == {"m1"}
    assert [amount for _, _, amount in legs] == [-700, 700]


def test_release_moves_the_free_share_once() -> None:
    """Release moves pending -> available for the unreversed, unheld share, then never again."""
    sim = Sim(state(10_000, 1000))
    sim.refund(2000)
    sim.open("dp_1", 1000)
    plan = rules.release(sim.s, NOW)
    assert plan is not None
    assert plan.amount == 9000 - 1800 - 900
    sim.write(plan)
    sim.check()
    assert rules.release(sim.s, NOW) is None


def test_a_refund_in_another_currency_is_refused() -> None:
    """Currencies never mix: a refund or dispute in another currency raises."""
    s = state(1000, 1000)
    with pytest.raises(CurrencyMismatchError):
        rules.same_currency(s, Money(100, "EUR"), "refund")
    with pytest.raises(CurrencyMismatchError):
        rules.dispute_opened(s, Money(100, "EUR"))


def test_refund_change_accepts_a_row_mapping() -> None:
    """The rule reads a plain mapping as a state (missing columns default to zero / none)."""
    m = {
        "amount": 1000,
        "platform_fee": 100,
        "mentor_payout": 900,
        "rate_bps": 1000,
        "currency": CUR,
    }
    change = rules.refund_change(m, amount_refunded=500, refund_failed=0)
    assert (change.delta, change.fee, change.payout) == (500, 50, 450)
    assert change.values["status"] == "partially_refunded"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"reversed_total": 0, "refunded": 0, "disputed": 0}, "succeeded"),
        ({"reversed_total": 10, "refunded": 10, "disputed": 0}, "partially_refunded"),
        ({"reversed_total": 100, "refunded": 100, "disputed": 0}, "refunded"),
        ({"reversed_total": 10, "refunded": 10, "disputed": 5}, "disputed"),
        ({"reversed_total": 20, "refunded": 10, "disputed": 0}, "dispute_lost"),
        ({"reversed_total": 10, "refunded": 10, "disputed": 5, "in_review": True}, "needs_review"),
        ({"reversed_total": 100, "refunded": 100, "disputed": 0, "in_review": True}, "refunded"),
    ],
)
def test_payment_status_labels(kwargs: dict[str, object], expected: str) -> None:
    """Each status the ledger writes, from the amounts alone."""
    assert rules.payment_status(amount=100, **kwargs) == expected  # type: ignore[arg-type]


@given(gross_st, rate_st, st.integers(1, 12), st.sets(st.integers(0, 11)))
def test_session_shares_and_the_released_remainder_sum_to_the_payout(
    gross: int, rate: int, credits: int, delivered: set[int]
) -> None:
    """Delivered sessions' shares plus the remainder released at expiry move exactly P."""
    sim = Sim(state(gross, rate))
    shares = [sim.share(k, credits) for k in sorted(d for d in delivered if d < credits)]
    expected = [
        Fraction(sim.s.mentor_payout, credits) for d in delivered if d < credits
    ]  # each share is the exact fraction, rounded to a neighbouring unit
    assert all(abs(got - want) < 1 for got, want in zip(shares, expected, strict=True))
    sim.release()
    sim.check()
    assert sim.accounts[PENDING] == 0
    assert sim.accounts[AVAILABLE] == sim.s.mentor_payout


@given(gross_st, rate_st, st.integers(1, 8), st.integers(0, 8), st.integers(0, 200_000))
def test_a_refund_after_some_sessions_takes_pending_first_then_available(
    gross: int, rate: int, credits: int, delivered: int, refund: int
) -> None:
    """A refund after some sessions were released takes pending first, then available."""
    sim = Sim(state(gross, rate))
    released = sum(sim.share(k, credits) for k in range(min(delivered, credits)))
    pending_before = sim.accounts[PENDING]
    refund = min(refund, gross)
    sim.refund(refund)
    sim.check()
    reversed_share = target(sim.s, refund)
    from_pending = min(pending_before, reversed_share)
    assert sim.accounts[PENDING] == pending_before - from_pending
    assert sim.accounts[AVAILABLE] == released - (reversed_share - from_pending)


def test_pending_part_is_zero_once_released_or_transferred() -> None:
    """Nothing of a released or destination payment is pending, whatever its sessions did."""
    fresh = state(10_000, 1000)
    assert fresh.pending_part == 9000
    assert replace(fresh, payout_released=2000).pending_part == 7000
    assert replace(fresh, released_at=NOW).pending_part == 0
    assert replace(fresh, destination="acct_1").pending_part == 0
    assert replace(fresh, payout_released=2000, released_at=NOW).pending_part == 0
