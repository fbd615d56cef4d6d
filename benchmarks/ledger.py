"""Ledger benchmark: balance() cost as history grows, and posting throughput against raw SQL.

Run: ``python benchmarks/ledger.py [--payments 100000] [--postgres URL]`` (PostgreSQL defaults to
MENTORPAY_TEST_POSTGRES_URL when set). Prints one JSON document.

- ``balance_ratio``: time of ``balance()`` after N payments over its time after 1k payments, for
  one mentor. The balance is a materialized row, so the goal is at most 1.5.
- ``postings_per_s``: ``record_payment`` in its own durable transaction, next to raw SQL issuing
  the same rows (payment, journal transaction, three entries, balance upsert) through the bare
  driver, one transaction each, in the same run. ``ratio`` = mentorpay / raw.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from mentorpay.commission import CommissionPolicy
from mentorpay.ledger import LedgerService
from mentorpay.money import Money
from mentorpay.testing import postgres_engine, sqlite_engine

POLICY = CommissionPolicy(rate_bps=1000)


def fill(ledger: LedgerService, engine: Engine, start: int, stop: int, batch: int = 1000) -> None:
    """Record payments start..stop for mentor m1, many per transaction (setup, not measured)."""
    for lo in range(start, stop, batch):
        with engine.begin() as conn:
            for i in range(lo, min(stop, lo + batch)):
                ledger.record_payment(
                    payment_intent_id=f"pi_fill_{i}",
                    booking_id=f"b{i}",
                    mentor_id="m1",
                    mentee_id="u1",
                    gross=Money(5000 + i % 97, "GBP"),
                    policy=POLICY,
                    conn=conn,
                )


def time_balance(ledger: LedgerService, repeats: int = 300) -> float:
    """Median seconds of one balance() call."""
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ledger.balance("m1", "GBP")
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def rate(fn: Callable[[int], None], n: int) -> float:
    """Calls per second of fn(i) for i in range(n)."""
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t0)


RAW_STATEMENTS = [
    "INSERT INTO mentorpay_payments (payment_intent_id, booking_id, mentor_id, mentee_id,"
    " currency, status, amount, platform_fee, mentor_payout, rate_bps, rounding,"
    " amount_reversed, fee_reversed, payout_reversed, amount_refunded, payout_held,"
    " amount_disputed, created_at, updated_at) VALUES ({p}, {p}, 'm9', 'u1', 'GBP',"
    " 'succeeded', 5000, 500, 4500, 1000, 'half_even', 0, 0, 0, 0, 0, 0, {p}, {p})",
    "INSERT INTO mentorpay_ledger_transactions (business_key, kind, currency, mentor_id,"
    " payment_intent_id, created_at) VALUES ({p}, 'payment', 'GBP', 'm9', {p}, {p})"
    " ON CONFLICT (business_key) DO NOTHING RETURNING id",
    "INSERT INTO mentorpay_ledger_entries (transaction_id, account, mentor_id, currency, amount)"
    " VALUES ({p}, 'stripe_clearing', NULL, 'GBP', -5000), ({p}, 'platform_commission', NULL,"
    " 'GBP', 500), ({p}, 'mentor_pending', 'm9', 'GBP', 4500)",
    "INSERT INTO mentorpay_mentor_balances (mentor_id, currency, pending, available, held,"
    " reserved, withdrawn, updated_at) VALUES ('m9', 'GBP', 4500, 0, 0, 0, 0, {p})"
    " ON CONFLICT (mentor_id, currency) DO UPDATE SET pending = mentorpay_mentor_balances.pending"
    " + excluded.pending, updated_at = excluded.updated_at",
]


def raw_sqlite(path: Path) -> Callable[[int], None]:
    """The same rows through the bare sqlite3 driver, WAL + synchronous=FULL, BEGIN IMMEDIATE."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    sql = [s.format(p="?") for s in RAW_STATEMENTS]

    def one(i: int) -> None:
        now = datetime.now(UTC).isoformat()
        pi = f"pi_raw_{i}"
        db.execute("BEGIN IMMEDIATE")
        db.execute(sql[0], (pi, f"b{i}", now, now))
        txn = db.execute(sql[1], (f"payment:{pi}", pi, now)).fetchone()[0]
        db.execute(sql[2], (txn, txn, txn))
        db.execute(sql[3], (now,))
        db.execute("COMMIT")

    return one


def raw_postgres(url: str, schema_engine: Engine) -> Callable[[int], None]:
    """The same rows through the bare psycopg driver, one transaction each."""
    import psycopg
    from sqlalchemy import text

    with schema_engine.connect() as c:
        search_path = c.execute(text("SELECT current_schema()")).scalar_one()
    conn = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"))
    conn.execute(f'SET search_path TO "{search_path}"')
    conn.commit()
    sql = [s.format(p="%s") for s in RAW_STATEMENTS]

    def one(i: int) -> None:
        now = datetime.now(UTC)
        pi = f"pi_raw_{i}"
        with conn.transaction():
            conn.execute(sql[0], (pi, f"b{i}", now, now))
            row = conn.execute(sql[1], (f"payment:{pi}", pi, now)).fetchone()
            assert row is not None
            conn.execute(sql[2], (row[0], row[0], row[0]))
            conn.execute(sql[3], (now,))

    return one


def bench(engine: Engine, raw: Callable[[int], None], payments: int, n: int) -> dict[str, Any]:
    """Balance timing at 1k and at ``payments``, then posting rate against raw SQL."""
    ledger = LedgerService(engine)
    fill(ledger, engine, 0, 1000)
    small = time_balance(ledger)
    fill(ledger, engine, 1000, payments)
    large = time_balance(ledger)

    def post(i: int) -> None:
        ledger.record_payment(
            payment_intent_id=f"pi_bench_{i}",
            booking_id=f"bb{i}",
            mentor_id="m2",
            mentee_id="u1",
            gross=Money(5000, "GBP"),
            policy=POLICY,
        )

    mentorpay_rate = rate(post, n)
    raw_rate = rate(raw, n)
    return {
        "balance_at_1k_payments_us": round(small * 1e6, 1),
        f"balance_at_{payments}_payments_us": round(large * 1e6, 1),
        "entries_at_end": payments * 3,
        "balance_ratio": round(large / small, 3),
        "postings_per_s": round(mentorpay_rate),
        "raw_sql_per_s": round(raw_rate),
        "ratio": round(mentorpay_rate / raw_rate, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--postings", type=int, default=2_000, help="measured postings")
    parser.add_argument("--postgres", default=os.environ.get("MENTORPAY_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    results: dict[str, Any] = {"payments": args.payments}
    with tempfile.TemporaryDirectory() as tmp:
        engine = sqlite_engine(tmp)
        print("sqlite ...", file=sys.stderr)
        results["sqlite"] = bench(
            engine, raw_sqlite(Path(tmp) / "mentorpay-test.db"), args.payments, args.postings
        )
        engine.dispose()
    if args.postgres:
        print("postgresql ...", file=sys.stderr)
        with postgres_engine(args.postgres) as engine:
            results["postgresql"] = bench(
                engine, raw_postgres(args.postgres, engine), args.payments, args.postings
            )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
