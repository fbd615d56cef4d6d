"""Batched ``release_due``: many payments per transaction, the same ledger as one at a time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, select

from mentorpay.commission import CommissionPolicy
from mentorpay.ledger import LedgerService
from mentorpay.models import balances_table, entries_table, payments_table, transactions_table
from mentorpay.money import Money

POLICY = CommissionPolicy(rate_bps=1000)
DUE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = DUE + timedelta(hours=1)


def _pay(ledger: LedgerService, pi: str, mentor: str, amount: int, due: datetime) -> None:
    """Record one payment due for release at ``due``."""
    ledger.record_payment(
        payment_intent_id=pi,
        booking_id=f"b-{pi}",
        mentor_id=mentor,
        mentee_id="u1",
        gross=Money(amount, "GBP"),
        policy=POLICY,
        release_due_at=due,
    )


def _seed(ledger: LedgerService, prefix: str) -> list[str]:
    """Eight due payments of two mentors (one disputed beforehand) and one not yet due."""
    pis = [f"{prefix}pi_{i}" for i in range(8)]
    for i, pi in enumerate(pis):
        _pay(ledger, pi, f"{prefix}m{i % 2}", 1000 + 100 * i, DUE)
    _pay(ledger, f"{prefix}pi_later", f"{prefix}m0", 5000, NOW + timedelta(days=1))
    ledger.open_dispute(pis[2], f"{prefix}dp_early", Money(500, "GBP"))
    return pis


def _interfere(ledger: LedgerService, prefix: str) -> None:
    """What webhooks do mid-run: refund a released payment, refund and dispute unreleased ones."""
    ledger.apply_refund_total(f"{prefix}pi_0", Money(400, "GBP"))
    ledger.apply_refund_total(f"{prefix}pi_5", Money(1500, "GBP"))  # the whole payment
    ledger.open_dispute(f"{prefix}pi_6", f"{prefix}dp_mid", Money(1600, "GBP"))


def _state(engine: Engine, prefix: str) -> dict[str, Any]:
    """Payments, balances and journal of one prefix, with the prefix stripped (comparable)."""

    def strip(value: Any) -> Any:
        return value.replace(prefix, "") if isinstance(value, str) else value

    p, b, t, e = payments_table, balances_table, transactions_table, entries_table
    with engine.connect() as conn:
        payments = {
            strip(r.payment_intent_id): (
                r.status,
                r.released_at is not None,
                r.payout_reversed,
                r.payout_held,
                r.fee_reversed,
            )
            for r in conn.execute(select(p).where(p.c.payment_intent_id.startswith(prefix)))
        }
        balances = {
            strip(r.mentor_id): (r.pending, r.available, r.held, r.reserved, r.withdrawn)
            for r in conn.execute(select(b).where(b.c.mentor_id.startswith(prefix)))
        }
        journal: dict[str, list[tuple[str, Any, int]]] = {}
        for key, account, mentor, amount in conn.execute(
            select(t.c.business_key, e.c.account, e.c.mentor_id, e.c.amount)
            .join(e, e.c.transaction_id == t.c.id)
            .where(t.c.payment_intent_id.startswith(prefix))
        ):
            journal.setdefault(strip(key), []).append((account, strip(mentor), amount))
    return {
        "payments": payments,
        "balances": balances,
        "journal": {k: sorted(v, key=repr) for k, v in journal.items()},
    }


def test_batched_release_due_equals_one_at_a_time_with_webhooks_mid_run(engine: Engine) -> None:
    """Batches of 3 with webhooks between batches leave the ledger one-at-a-time release leaves."""
    ledger = LedgerService(engine, clock=lambda: NOW)
    one = _seed(ledger, "a_")
    for pi in one[:3]:
        ledger.release_payment(pi)
    _interfere(ledger, "a_")
    for pi in one[3:]:
        ledger.release_payment(pi)

    _seed(ledger, "b_")
    calls: list[tuple[int, int]] = []

    def progress(done: int, total: int, label: str) -> None:
        calls.append((done, total))
        if len(calls) == 1:
            _interfere(ledger, "b_")

    # Only the b_ payments are still due (the a_ ones were released above).
    released = ledger.release_due_count(NOW, batch=3, progress=progress)
    assert released == 8
    assert calls[0] == (3, 8) and calls[-1] == (8, 8)
    assert _state(engine, "a_") == _state(engine, "b_")
    state = _state(engine, "b_")
    # Oracle from the rules: pi_5 was refunded whole before its release: nothing to release.
    assert "release:pi_5" not in state["journal"]  # no entry moved any money
    assert state["payments"]["pi_5"][1:3] == (True, 1350)
    assert state["payments"]["pi_later"][1] is False
    assert ledger.verify().ok


def test_release_due_commits_once_per_batch(engine: Engine) -> None:
    """Five due payments in batches of two: three write transactions, not five."""
    ledger = LedgerService(engine, clock=lambda: NOW)
    for i in range(5):
        _pay(ledger, f"pi_{i}", "m1", 1000, DUE)
    commits: list[int] = []

    def on_commit(conn: Any) -> None:
        commits.append(1)

    event.listen(engine, "commit", on_commit)
    try:
        assert ledger.release_due_count(NOW, batch=2) == 5
    finally:
        event.remove(engine, "commit", on_commit)
    assert len(commits) == 3
    assert ledger.release_due_count(NOW, batch=2) == 0
    assert ledger.balance("m1", "GBP").available == Money(4500, "GBP")


def test_release_due_list_api_still_returns_the_created_postings(engine: Engine) -> None:
    """The list-returning ``release_due`` (kept for compatibility) runs on the batched path."""
    ledger = LedgerService(engine, clock=lambda: NOW)
    for i in range(5):
        _pay(ledger, f"pi_{i}", "m1", 1000, DUE)
    released = ledger.release_due(NOW, batch=2)
    assert [p.business_key for p in released] == [f"release:pi_{i}" for i in range(5)]
    assert ledger.release_due(NOW, batch=2) == []


def test_release_due_beside_concurrent_refunds_never_double_releases(engine: Engine) -> None:
    """Refunds and disputes racing the batches: one release each, no refunded/held share freed."""
    ledger = LedgerService(engine, clock=lambda: NOW)
    pis = [f"pi_{i}" for i in range(60)]
    for i, pi in enumerate(pis):
        _pay(ledger, pi, f"m{i % 3}", 1000, DUE)

    def webhooks() -> None:
        for i in range(0, 60, 4):
            ledger.apply_refund_total(pis[59 - i], Money(1000, "GBP"))
            ledger.open_dispute(pis[i + 1], f"dp_{i}", Money(1000, "GBP"))

    thread = threading.Thread(target=webhooks)
    thread.start()
    ledger.release_due_count(NOW, batch=7)
    thread.join()
    ledger.release_due_count(NOW, batch=7)  # anything a race left behind
    t, p = transactions_table, payments_table
    with engine.connect() as conn:
        kinds = [r[0] for r in conn.execute(select(t.c.business_key).where(t.c.kind == "release"))]
        rows = conn.execute(select(p)).all()
    assert sorted(kinds) == sorted(f"release:{pi}" for pi in pis)
    assert all(r.released_at is not None for r in rows)
    for mentor in ("m0", "m1", "m2"):
        mine = [r for r in rows if r.mentor_id == mentor]
        view = ledger.balance(mentor, "GBP")
        # Oracle (DESIGN: release moves the free share; refunds and holds take theirs first).
        free = sum(r.mentor_payout - r.payout_reversed - r.payout_held for r in mine)
        assert view.pending == Money(0, "GBP")
        assert view.available == Money(free, "GBP")
        assert view.held == Money(sum(r.payout_held for r in mine), "GBP")
    assert ledger.verify().ok


def test_a_row_released_while_the_batch_waits_does_not_end_the_run(pg_engine: Engine) -> None:
    """A locked due row released meanwhile drops out of a full batch; later payments still go."""
    ledger = LedgerService(pg_engine, clock=lambda: NOW)
    for i in range(5):
        _pay(ledger, f"pi_{i}", f"m{i}", 1000, DUE)
    counted: list[int] = []
    with pg_engine.connect() as slow:
        tx = slow.begin()
        ledger.release_payment("pi_0", conn=slow)  # holds pi_0's row lock
        worker = threading.Thread(
            target=lambda: counted.append(ledger.release_due_count(NOW, batch=2))
        )
        worker.start()
        worker.join(timeout=0.5)  # the batch now waits for pi_0
        tx.commit()
    worker.join()
    assert counted == [4]
    with pg_engine.connect() as conn:
        unreleased = conn.execute(
            select(payments_table.c.payment_intent_id).where(payments_table.c.released_at.is_(None))
        ).all()
    assert unreleased == []
