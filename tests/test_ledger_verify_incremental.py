"""Incremental ``verify()``: checkpointed sums, only newer entries read; the full check stays."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select, text

from mentorpay.commission import CommissionPolicy
from mentorpay.ledger import LedgerService
from mentorpay.models import entries_table, ledger_checkpoints_table
from mentorpay.money import Money

POLICY = CommissionPolicy(rate_bps=1000)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _pay(ledger: LedgerService, pi: str, mentor: str = "m1", amount: int = 1000) -> None:
    """Record one payment under the 10% policy."""
    ledger.record_payment(
        payment_intent_id=pi,
        booking_id=f"b-{pi}",
        mentor_id=mentor,
        mentee_id="u1",
        gross=Money(amount, "GBP"),
        policy=POLICY,
    )


def _tamper(engine: Engine, entry_id: int, delta: int) -> None:
    """Change one journal entry's amount behind the ledger's back."""
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE mentorpay_ledger_entries SET amount = amount + :d WHERE id = :i"),
            {"d": delta, "i": entry_id},
        )


def _pending_entry(engine: Engine, pi_order: str = "min") -> int:
    """The id of the oldest (or newest) mentor_pending entry."""
    agg = func.min if pi_order == "min" else func.max
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(agg(entries_table.c.id)).where(entries_table.c.account == "mentor_pending")
            ).scalar_one()
        )


def test_verify_writes_a_checkpoint_and_later_reads_only_newer_entries(engine: Engine) -> None:
    """A clean verify checkpoints the newest entry; the next one reads only newer entries."""
    ledger = LedgerService(engine, clock=lambda: NOW)
    for i in range(4):
        _pay(ledger, f"pi_{i}", f"m{i % 2}")
    first = ledger.verify()
    assert first.ok and first.transactions == 4 and first.balances == 2
    with engine.connect() as conn:
        horizon = conn.execute(
            select(func.max(ledger_checkpoints_table.c.upto_entry_id))
        ).scalar_one()
        top = conn.execute(select(func.max(entries_table.c.id))).scalar_one()
    assert horizon == top
    _pay(ledger, "pi_new", "m1")
    ledger.release_payment("pi_0")
    again = ledger.verify()
    assert again.ok and again.incremental and again.transactions == 6
    assert again.entries_read == 3 + 2  # the new payment's three legs, the release's two
    full = ledger.verify(full=True)
    assert full.ok and not full.incremental and full.transactions == 6


def test_a_tampered_old_entry_is_caught_by_the_full_check(engine: Engine) -> None:
    """An entry changed below the checkpoint is still reported by ``verify(full=True)``."""
    ledger = LedgerService(engine, clock=lambda: NOW)
    _pay(ledger, "pi_1")
    _pay(ledger, "pi_2")
    assert ledger.verify().ok
    _tamper(engine, _pending_entry(engine, "min"), 7)
    full = ledger.verify(full=True)
    assert not full.ok
    assert any("does not balance" in p for p in full.problems)
    assert any("mentor m1 GBP pending" in p for p in full.problems)


def test_the_incremental_check_catches_a_new_imbalance(engine: Engine) -> None:
    """A tampered entry newer than the checkpoint is reported by the default incremental verify."""
    ledger = LedgerService(engine, clock=lambda: NOW)
    _pay(ledger, "pi_1")
    assert ledger.verify().ok
    _pay(ledger, "pi_2")
    _tamper(engine, _pending_entry(engine, "max"), -3)
    report = ledger.verify()
    assert report.incremental and not report.ok
    assert any("does not balance" in p for p in report.problems)
    assert any("mentor m1 GBP pending: stored 1800, entries say 1797" in p for p in report.problems)


def test_a_failed_verify_does_not_move_the_checkpoint(engine: Engine) -> None:
    """Problems found: no checkpoint is written over them, so the next pass still sees them."""
    ledger = LedgerService(engine, clock=lambda: NOW)
    _pay(ledger, "pi_1")
    assert ledger.verify().ok
    _pay(ledger, "pi_2")
    _tamper(engine, _pending_entry(engine, "max"), -3)
    assert not ledger.verify().ok
    assert not ledger.verify().ok


def test_a_tampered_balance_row_is_caught_incrementally(engine: Engine) -> None:
    """Balances are compared whole every time: a changed balance row is caught without --full."""
    ledger = LedgerService(engine, clock=lambda: NOW)
    _pay(ledger, "pi_1")
    assert ledger.verify().ok
    with engine.begin() as conn:
        conn.execute(text("UPDATE mentorpay_mentor_balances SET available = available + 5"))
    report = ledger.verify()
    assert report.incremental and not report.ok


def test_verify_reports_progress_per_step(engine: Engine) -> None:
    """``progress(done, total, "verifying")`` reaches its total."""
    ledger = LedgerService(engine, clock=lambda: NOW)
    _pay(ledger, "pi_1")
    calls: list[tuple[int, int, str]] = []
    assert ledger.verify(progress=lambda d, t, label: calls.append((d, t, label))).ok
    assert calls and calls[-1][0] == calls[-1][1] and calls[-1][2] == "verifying"


def _checkpoint_rows(engine: Engine) -> dict[tuple[str, str, str], int]:
    """The stored checkpoint totals (header row excluded)."""
    c = ledger_checkpoints_table.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.account, c.mentor_id, c.currency, c.total)).all()
    return {(a, m, cur): int(t) for a, m, cur, t in rows if a}


def test_incremental_checkpoints_add_up_to_what_a_full_pass_stores(engine: Engine) -> None:
    """Several incremental passes, each writing only what moved, store the full pass's totals."""
    ledger = LedgerService(engine, clock=lambda: NOW)
    _pay(ledger, "pi_1", "m1")
    assert ledger.verify().ok
    _pay(ledger, "pi_2", "m2", 2000)
    assert ledger.verify().ok
    ledger.release_payment("pi_1")
    ledger.apply_refund_total("pi_2", Money(500, "GBP"))
    assert ledger.verify().ok
    incremental = _checkpoint_rows(engine)
    assert ledger.verify(full=True).ok
    assert incremental == _checkpoint_rows(engine)
    # Oracle (DESIGN: 10% commission; the refund takes its share back from each side).
    assert incremental[("mentor_available", "m1", "GBP")] == 900
    assert incremental[("mentor_pending", "m2", "GBP")] == 1800 - 450
    assert incremental[("stripe_clearing", "", "GBP")] == -3000 + 500


def test_a_writer_committing_late_is_never_skipped_by_the_checkpoint(pg_engine: Engine) -> None:
    """PostgreSQL hands out ids before commit: a lower id committed after a verify is still read."""
    ledger = LedgerService(pg_engine, clock=lambda: NOW)
    _pay(ledger, "pi_0")
    assert ledger.verify().ok
    with pg_engine.connect() as slow:
        tx = slow.begin()
        ledger.record_payment(
            payment_intent_id="pi_slow",
            booking_id="b-slow",
            mentor_id="m1",
            mentee_id="u1",
            gross=Money(1000, "GBP"),
            policy=POLICY,
            conn=slow,
        )
        _pay(ledger, "pi_fast", "m2")  # higher ids, committed first
        assert ledger.verify().ok  # cannot see pi_slow: its entries must stay unread
        tx.commit()
    report = ledger.verify()
    assert report.ok and report.transactions == 3
    stored = _checkpoint_rows(pg_engine)
    assert ledger.verify(full=True).ok
    assert stored == _checkpoint_rows(pg_engine)


def test_a_stale_verify_never_overwrites_a_newer_checkpoint(engine: Engine) -> None:
    """Two verifies racing: the one whose starting checkpoint moved meanwhile stores nothing."""
    from mentorpay.ledger import verify as verify_module

    ledger = LedgerService(engine, clock=lambda: NOW)
    _pay(ledger, "pi_1")
    assert ledger.verify().ok
    with engine.connect() as conn:
        stale = verify_module._load(conn)
    _pay(ledger, "pi_2", "m2")
    assert ledger.verify().ok  # moves the checkpoint past pi_2
    before = _checkpoint_rows(engine)
    bogus = verify_module._Checkpoint(
        stale.entry_id + 1, stale.transaction_id + 1, 99, {("mentor_pending", "m1", "GBP"): 1}
    )
    with engine.begin() as conn:
        verify_module._store(conn, stale, bogus, NOW, replace=False)
    assert _checkpoint_rows(engine) == before
    assert ledger.verify().ok and ledger.verify(full=True).ok
