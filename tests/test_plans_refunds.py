"""A plan period refunded at any point of its sessions' releases reverses exactly.

Oracle (plain integers, DESIGN.md and :mod:`mentorpay.plans.rules`' docstring): a period of gross
G = 8000 pays the mentor P = 7200 and grants N = 4 credits whose shares are 1800 each. The
refunds R in effect (the highest cumulative ``amount_refunded`` minus each failed refund) reverse
T = round(P * R / G) of the payout, taken from what is still pending first, then from what the
sessions released; a failed refund gives its part back to pending. A session's release moves
its share, capped by what is still pending. Credits left = max(0, N - used - ceil(R * N / G)).
When the credits lapse, the rest is released: available = P - T.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from mentorpay.testing import charge
from tests.fixtures.payment_support import refund_object, reset
from tests.plan_kit import PlanWorld, plan_world

GROSS, PAYOUT, CREDITS, SHARE = 8000, 7200, 4, 1800


@dataclass(frozen=True)
class Step:
    """``release`` of booking ``n``, a ``refund`` to cumulative ``n``, or ``fail`` of ``n``."""

    kind: str
    n: int


@st.composite
def scripts(draw: st.DrawFn) -> tuple[int, tuple[Step, ...]]:
    """How many credits are spent first, then releases interleaved with refunds (in Stripe's
    order: cumulative refunds, then maybe the first refund's failure)."""
    used = draw(st.integers(0, CREDITS))
    budget, cumulative = GROSS, 0
    money: list[Step] = []
    parts: list[int] = []
    for _ in range(draw(st.integers(1, 2))):
        part = draw(st.one_of(st.just(budget), st.integers(1, budget)))
        parts.append(part)
        cumulative += part
        budget -= part
        money.append(Step("refund", cumulative))
        # Stripe may deliver the same cumulative twice.
        if draw(st.booleans()):
            money.append(Step("refund", cumulative))
        if budget == 0:
            break
    if draw(st.booleans()):
        money.append(Step("fail", parts[0]))
    releases = [Step("release", i) for i in draw(st.permutations(range(used)))]
    releases = releases[: draw(st.integers(0, used))]
    # Merge keeping each list's order.
    slots = draw(st.permutations([0] * len(money) + [1] * len(releases)))
    out: list[Step] = []
    lists = [list(money), list(releases)]
    for slot in slots:
        out.append(lists[slot].pop(0))
    return used, tuple(out)


def oracle(used: int, steps: tuple[Step, ...]) -> tuple[int, int, int, int]:
    """(pending, available) after the steps, the payout reversed, the credits left."""
    pending, available, target, highest, failed = PAYOUT, 0, 0, 0, 0
    for step in steps:
        if step.kind == "release":
            moved = min(SHARE, pending)
            pending, available = pending - moved, available + moved
            continue
        if step.kind == "refund":
            highest = max(highest, step.n)
        else:
            failed += step.n
        effective = min(GROSS, max(0, highest - failed))
        new_target = round(Fraction(PAYOUT * effective, GROSS))
        delta, target = new_target - target, new_target
        if delta >= 0:
            taken = min(delta, pending)
            pending, available = pending - taken, available - (delta - taken)
        else:
            pending -= delta
    effective = min(GROSS, max(0, highest - failed))
    removed = -(-effective * CREDITS // GROSS)
    return pending, available, target, max(0, CREDITS - used - removed)


def play(w: PlanWorld, used: int, steps: tuple[Step, ...]) -> str:
    """Subscribe, spend ``used`` credits, then run the steps through mentorpay."""
    purchase = w.subscribe()
    for i in range(used):
        w.mp.plans.consume(purchase, w.book(f"b{i}"))
    pi = w.mp.plans.get(purchase).periods[0].payment_intent_id
    assert pi is not None
    ch = str(w.gateway.payment_intent(pi)["latest_charge"])
    for step in steps:
        w.clock.advance(timedelta(minutes=1))
        if step.kind == "release":
            w.mp.ledger.release(f"b{step.n}")
            continue
        obj: dict[str, Any]
        if step.kind == "refund":
            obj = charge(id=ch, payment_intent=pi, amount=GROSS, amount_refunded=step.n)
            event = w.event("charge.refunded", obj)
        else:
            obj = refund_object(id="re_first", amount=step.n, currency="gbp", charge=ch,
                                payment_intent=pi, status="failed")  # fmt: skip
            event = w.event("refund.failed", obj)
        assert w.process(event) in ("success", "ignored", "already_processed")
    return purchase


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no slow shrinking of DB worlds
)
@given(script=scripts())
def test_a_refund_at_any_point_of_the_releases_reverses_exactly(
    engine: Engine, script: tuple[int, tuple[Step, ...]]
) -> None:
    """Refunds (repeated, one failing) around session releases: exact balances and credits."""
    reset(engine)
    used, steps = script
    w = plan_world(engine)
    purchase = play(w, used, steps)
    pending, available, target, left = oracle(used, steps)
    assert w.balance() == (pending, available), script
    assert w.mp.plans.get(purchase).credits_left == left, script
    w.assert_verified()
    # The credits lapse: the unreleased remainder goes to the mentor, nothing more.
    w.clock.advance(timedelta(days=31))
    assert w.mp.plans.expire_due() == 1
    assert w.balance() == (0, PAYOUT - target), script
    w.assert_verified()


def test_oracle_examples() -> None:
    """The oracle's arithmetic on hand-checked cases (refund of 33.33 after one release)."""
    steps = (Step("release", 0), Step("refund", 3333))
    # T = round(7200 * 3333 / 8000) = round(2999.7) = 3000; credits removed ceil(1.6665) = 2.
    assert oracle(2, steps) == (7200 - 1800 - 3000, 1800, 3000, 0)
    full = (Step("release", 0), Step("release", 1), Step("refund", 8000), Step("fail", 8000))
    # The full refund takes the released 3600 back too; its failure returns all to pending.
    assert oracle(2, full) == (7200, 0, 0, 2)
    late = (Step("refund", 8000), Step("release", 0))
    assert oracle(1, late) == (0, 0, 7200, 0)
