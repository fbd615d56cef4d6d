"""Seed a valid ledger of N payments fast, with set-based SQL (SQLite and PostgreSQL).

Used by ``benchmarks/scale.py`` and ``tests/test_query_plans.py``. Everything is written the
way mentorpay's own postings write it, so ``LedgerService.verify()`` passes on the result:

- payment ``i`` (1..N): ``pi_seed_<i>``, mentor ``m<i % mentors>``, mentee ``u<i % 5000>``, one of
  three currencies (``i % 3``), gross 5000 + i % 7, 10% commission, created ``step`` seconds
  after the previous one, with a 7-day hold (``release_due_at = created_at + 7 days``);
- its journal transaction ``payment:<pi>`` with three legs (clearing, commission, pending), its
  inbox event (``evt_seed_<i>``, processed) and its Checkout Session (complete);
- the oldest payments released (``release:<pi>``, pending -> available) so that, at ``end``,
  ``due_share`` of all payments is due and unreleased and the newest ones are still held;
- one balance row per mentor and currency, summed from those legs.

A few hundred rows from Python would hide the planner's choices; millions through the ORM would
take an hour. ``INSERT ... SELECT`` over a generated series of integers takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

HOLD = timedelta(days=7)
CURRENCIES = ("GBP", "USD", "EUR")
MENTEES = 5000
#: Roughly a real event body's size, so the inbox's pages weigh what they do in production.
PAYLOAD = '{"object": "event", "type": "payment_intent.succeeded", "data": "' + "x" * 600 + '"}'


@dataclass(frozen=True, slots=True)
class Seeded:
    """What was seeded: the time span and how many payments are due for release at ``end``."""

    payments: int
    mentors: int
    start: datetime
    end: datetime
    step: timedelta
    released: int
    due: int


def _plan(payments: int, mentors: int, days: int, due_share: float) -> Seeded:
    """Times and counts: payments spread evenly over ``days`` ending at ``end``."""
    end = datetime(2026, 6, 30, tzinfo=UTC)
    step = timedelta(seconds=max(1, days * 86_400 // payments))
    start = end - step * payments
    # Payment i is due at start + i*step + HOLD; due at `end` when i <= (end - HOLD - start)/step.
    due_upto = min(payments, int((end - HOLD - start) / step))
    due = min(due_upto, round(payments * due_share))
    return Seeded(payments, mentors, start, end, step, due_upto - due, due)


def _dialect_sql(engine: Engine) -> dict[str, str]:
    """The few expressions that differ: the integer series and timestamp arithmetic."""
    if engine.dialect.name == "postgresql":
        return {
            "series": "(SELECT g AS i FROM generate_series(1, :n) AS g) AS s",
            "at": "(CAST(:start AS timestamptz) + make_interval(secs => s.i * :step))",
            "due": "(CAST(:start AS timestamptz) + make_interval(secs => s.i * :step + :hold))",
            "now": "CAST(:end AS timestamptz)",
        }
    # SQLite stores what SQLAlchemy's DATETIME stores: 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC.
    return {
        "series": "(WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g"
        " WHERE i < :n) SELECT i FROM g) AS s",
        "at": "(datetime(:start, '+' || (s.i * :step) || ' seconds') || '.000000')",
        "due": "(datetime(:start, '+' || (s.i * :step + :hold) || ' seconds') || '.000000')",
        "now": "(datetime(:end) || '.000000')",
    }


def _statements(d: dict[str, str]) -> list[str]:
    currency = "CASE s.i % 3 WHEN 0 THEN 'GBP' WHEN 1 THEN 'USD' ELSE 'EUR' END"
    amount = "(5000 + s.i % 7)"
    fee = f"(({amount} * 1000 + 5000) / 10000)"
    released = f"CASE WHEN s.i <= :released THEN {d['due']} END"
    return [
        "INSERT INTO mentorpay_checkout_sessions (id, booking_id, mentee_id, mentor_id, currency,"
        " amount, platform_fee, status, url, idempotency_key, expires_at, created_at, updated_at)"
        f" SELECT 'cs_seed_' || s.i, 'b_seed_' || s.i, 'u' || (s.i % {MENTEES}),"
        f" 'm' || (s.i % :mentors), {currency}, {amount}, {fee}, 'complete', NULL,"
        f" 'idem_seed_' || s.i, {d['at']}, {d['at']}, {d['at']} FROM {d['series']}",
        "INSERT INTO mentorpay_payments (payment_intent_id, checkout_session_id, charge_id,"
        " booking_id, mentor_id, mentee_id, currency, status, amount, platform_fee, mentor_payout,"
        " rate_bps, rounding, destination, amount_reversed, fee_reversed, payout_reversed,"
        " amount_refunded, refund_failed, refund_applied, payout_held, amount_disputed,"
        " review_reason, release_due_at, released_at, created_at, updated_at)"
        f" SELECT 'pi_seed_' || s.i, 'cs_seed_' || s.i, 'ch_seed_' || s.i, 'b_seed_' || s.i,"
        f" 'm' || (s.i % :mentors), 'u' || (s.i % {MENTEES}), {currency}, 'succeeded', {amount},"
        f" {fee}, {amount} - {fee}, 1000, 'half_up', NULL, 0, 0, 0, 0, 0, 0, 0, 0, NULL,"
        f" {d['due']}, {released}, {d['at']}, COALESCE({released}, {d['at']})"
        f" FROM {d['series']}",
        "INSERT INTO mentorpay_webhook_events (event_id, type, status, waiting_for, payload,"
        " attempts, last_error, created_at, processed_at)"
        " SELECT 'evt_seed_' || s.i, 'payment_intent.succeeded', 'processed', NULL, :payload,"
        f" 1, NULL, {d['at']}, {d['at']} FROM {d['series']}",
        "INSERT INTO mentorpay_ledger_transactions (business_key, kind, currency, mentor_id,"
        " payment_intent_id, payout_request_id, created_at)"
        " SELECT 'payment:' || payment_intent_id, 'payment', currency, mentor_id,"
        " payment_intent_id, NULL, created_at FROM mentorpay_payments"
        " ORDER BY id",
        "INSERT INTO mentorpay_ledger_transactions (business_key, kind, currency, mentor_id,"
        " payment_intent_id, payout_request_id, created_at)"
        " SELECT 'release:' || payment_intent_id, 'release', currency, mentor_id,"
        " payment_intent_id, NULL, released_at FROM mentorpay_payments"
        " WHERE released_at IS NOT NULL ORDER BY id",
        "INSERT INTO mentorpay_ledger_entries (transaction_id, account, mentor_id, currency,"
        " amount) SELECT t.id, a.account, CASE WHEN a.k = 3 THEN p.mentor_id END, p.currency,"
        " CASE a.k WHEN 1 THEN -p.amount WHEN 2 THEN p.platform_fee ELSE p.mentor_payout END"
        " FROM mentorpay_ledger_transactions t"
        " JOIN mentorpay_payments p ON p.payment_intent_id = t.payment_intent_id"
        " CROSS JOIN (SELECT 1 AS k, 'stripe_clearing' AS account UNION ALL"
        " SELECT 2, 'platform_commission' UNION ALL SELECT 3, 'mentor_pending') AS a"
        " WHERE t.kind = 'payment'"
        " ORDER BY t.id, a.k",
        "INSERT INTO mentorpay_ledger_entries (transaction_id, account, mentor_id, currency,"
        " amount) SELECT t.id, a.account, p.mentor_id, p.currency, a.sign * p.mentor_payout"
        " FROM mentorpay_ledger_transactions t"
        " JOIN mentorpay_payments p ON p.payment_intent_id = t.payment_intent_id"
        " CROSS JOIN (SELECT 1 AS k, 'mentor_pending' AS account, -1 AS sign UNION ALL"
        " SELECT 2, 'mentor_available', 1) AS a"
        " WHERE t.kind = 'release'"
        " ORDER BY t.id, a.k",
        "INSERT INTO mentorpay_mentor_balances (mentor_id, currency, pending, available, held,"
        " reserved, withdrawn, updated_at)"
        " SELECT mentor_id, currency,"
        " SUM(CASE WHEN released_at IS NULL THEN mentor_payout ELSE 0 END),"
        f" SUM(CASE WHEN released_at IS NULL THEN 0 ELSE mentor_payout END), 0, 0, 0, {d['now']}"
        " FROM mentorpay_payments"
        " GROUP BY mentor_id, currency",
    ]


def seed(
    engine: Engine,
    payments: int,
    *,
    mentors: int = 1000,
    days: int = 365,
    due_share: float = 0.1,
) -> Seeded:
    """Seed ``payments`` payments into an EMPTY mentorpay schema (every row of the payments table
    is taken as seeded), then, on PostgreSQL, refresh the planner's statistics."""
    plan = _plan(payments, mentors, days, due_share)
    d = _dialect_sql(engine)
    postgres = engine.dialect.name == "postgresql"
    params: dict[str, Any] = {
        "n": payments,
        "mentors": mentors,
        "step": int(plan.step.total_seconds()),
        "hold": int(HOLD.total_seconds()),
        "released": plan.released,
        "payload": PAYLOAD,
        # PostgreSQL casts an ISO string; SQLite's datetime() wants it without the offset.
        "start": plan.start.isoformat() if postgres else plan.start.strftime("%Y-%m-%d %H:%M:%S"),
        "end": plan.end.isoformat() if postgres else plan.end.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with engine.begin() as conn:
        for sql in _statements(d):
            conn.execute(text(sql), params)
    if postgres:
        # Fresh statistics, as autovacuum would gather them soon after such a load. Not on
        # SQLite: nothing runs ANALYZE there in production, and its planner without statistics
        # is the one users get.
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    return plan
