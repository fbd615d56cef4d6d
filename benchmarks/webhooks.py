"""Webhook benchmark: events per second through ``WebhookProcessor.process`` against raw SQL.

Run: ``python benchmarks/webhooks.py [--events 1500] [--rounds 2] [--postgres URL]``.
PostgreSQL defaults to MENTORPAY_TEST_POSTGRES_URL, else postgresql+psycopg://postgres@127.0.0.1
:5432/test; ``--no-postgres`` skips it. Prints one JSON document; progress goes to stderr.

What is measured, per database and for 1 and 4 worker threads:

- ``full_fresh_per_s``: signed ``payment_intent.succeeded`` deliveries of new payments through
  ``process()``: signature check, parse, duplicate peek, one durable transaction (inbox claim,
  payment, journal transaction, three entries, balance upsert, release date, the deferred-event
  check), commit.
- ``full_duplicate_per_s``: the same deliveries again (every one answered ``already_processed``).
- ``raw_fresh_per_s`` / ``raw_duplicate_per_s``: the bare driver (sqlite3 / psycopg, one
  connection per thread, no pool, no SQLAlchemy) issuing the same statements for the same
  work, in the same run. ``raw_writes_only_per_s`` drops the reads (peek, advisory lock,
  deferred check), the strictest baseline.
  On PostgreSQL mentorpay sends the payment's four inserts as one statement (data-modifying
  CTEs) while the baseline keeps them separate, so there the ratio can exceed 1.
- ``floor_fresh_per_s``: issue 13's floor, the least any exactly-once webhook endpoint does per
  fresh event, over the connection type mentorpay uses (an ``Engine`` from ``make_engine``,
  ``engine.begin()``, so SQLite's ``BEGIN IMMEDIATE`` and the pool are paid as mentorpay pays
  them): verify the signature (HMAC-SHA256 and the timestamp), parse the JSON, then the three
  essential writes on that connection's DBAPI cursor (the inbox row, the payment row, the
  balance upsert) and one commit. No journal, no reads.
- Ratios: ``full_vs_floor`` (= full / floor, issue 13's goal >= 0.5),
  ``full_vs_raw`` (= full / raw, goal >= 0.5), ``full_vs_raw_writes_only``,
  ``duplicate_speedup`` (= duplicates / fresh through ``process()``, goal >= 3) and, on
  PostgreSQL, ``scaling_4_vs_1`` (4 threads / 1 thread through ``process()``, goal >= 1.5).
- ``postgresql.hot_mentor_4_threads``: every event for ONE mentor (one balance row all threads
  update), 4 threads through ``process()``: events per second, the ratio to the same run spread
  over 200 mentors, and the deadlocks PostgreSQL counted meanwhile (``pg_stat_database``;
  mentorpay retries one, so a deadlock shows up here rather than as a failure).

``fast_ack``: the fast-acknowledge mode (``ingest`` with 8 callers, ``work`` in batches) against
``process()`` in the same run, per database; see ``benchmarks/fast_ack.py``. ``--fast-ack-only``
measures just that.

SQLite runs on a file in a temporary directory with WAL and ``synchronous=FULL`` (an
acknowledged payment must survive a power cut), exactly as ``make_engine`` configures it.
Each figure is the best of ``--rounds`` runs: the machine's absolute speed swings between runs.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import platform
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fast_ack  # a sibling module (this file runs as a script)
import sqlalchemy
import stripe
from sqlalchemy import Engine, text

from mentorpay.bookings import BookingInfo
from mentorpay.config import MentorpayConfig
from mentorpay.ledger import LedgerService
from mentorpay.money import Money
from mentorpay.testing import (
    booking_metadata,
    encode_event,
    make_event,
    payment_intent,
    postgres_engine,
    sign_payload,
    sqlite_engine,
    truncate_all,
)
from mentorpay.webhooks import WebhookProcessor

SECRET = "whsec_benchmark"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MENTORS = 200


def lock_key(name: str) -> int:
    """The advisory-lock key mentorpay takes for a payment intent (same derivation)."""
    digest = hashlib.blake2b(f"mentorpay:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def deliveries(tag: str, n: int, mentors: int = MENTORS) -> list[tuple[bytes, str]]:
    """``n`` signed payment_intent.succeeded bodies for new payments, with their headers."""
    out = []
    for i in range(n):
        obj = payment_intent(
            id=f"pi_{tag}_{i}",
            amount=5000 + i % 7,
            currency="gbp",
            metadata=booking_metadata(f"b_{tag}_{i}", mentor_id=f"m{i % mentors}", mentee_id="u1"),
        )
        body = encode_event(make_event("payment_intent.succeeded", obj, event_id=f"evt_{tag}_{i}"))
        out.append((body, sign_payload(body, SECRET)))
    return out


class BenchBookings:
    """The host's bookings for ``deliveries``: booking ``b_<tag>_<i>`` costs 5000 + i % 7 pence.

    A host answers from its own database; this answers from the id, so the benchmark measures
    mentorpay's own cost of checking a payment against its booking, not the host's.
    """

    def __init__(self, mentors: int = MENTORS) -> None:
        self.mentors = mentors

    def get_booking(self, booking_id: str) -> BookingInfo | None:
        """The booking ``deliveries`` paid for."""
        i = int(booking_id.rsplit("_", 1)[1])
        return BookingInfo(
            id=booking_id,
            mentee_id="u1",
            mentor_id=f"m{i % self.mentors}",
            price=Money(5000 + i % 7, "GBP"),
            status="confirmed",
        )


def run_threads(
    work: list[Any], threads: int, make_worker: Callable[[], Callable[[Any], None]]
) -> float:
    """Items per second, ``work`` split round-robin over ``threads`` workers started together."""
    chunks = [work[i::threads] for i in range(threads)]
    workers = [make_worker() for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def run(worker: Callable[[Any], None], chunk: list[Any]) -> None:
        barrier.wait()
        try:
            for item in chunk:
                worker(item)
        except BaseException as exc:  # surface worker failures instead of a silent fast run
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(w, c)) for w, c in zip(workers, chunks, strict=True)]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return len(work) / elapsed


# -- the raw-SQL baseline --------------------------------------------------------------------

PEEK = "SELECT status FROM mentorpay_webhook_events WHERE event_id = {p}"
WRITES = [
    # 0: inbox claim
    "INSERT INTO mentorpay_webhook_events (event_id, type, status, waiting_for, payload, attempts,"
    " last_error, created_at, processed_at) VALUES ({p}, 'payment_intent.succeeded', 'processed',"
    " NULL, {p}, 1, NULL, {p}, {p}) ON CONFLICT (event_id) DO NOTHING RETURNING id",
    # 1: payment
    "INSERT INTO mentorpay_payments (payment_intent_id, checkout_session_id, charge_id,"
    " booking_id, mentor_id, mentee_id, currency, status, amount, platform_fee, mentor_payout,"
    " rate_bps, rounding, amount_reversed, fee_reversed, payout_reversed, amount_refunded,"
    " payout_held, amount_disputed, release_due_at, released_at, created_at, updated_at)"
    " VALUES ({p}, NULL, NULL, {p}, {p}, 'u1', 'GBP', 'succeeded', {p}, {p}, {p}, 1000,"
    " 'half_even', 0, 0, 0, 0, 0, 0, NULL, NULL, {p}, {p})"
    " ON CONFLICT (payment_intent_id) DO NOTHING RETURNING id",
    # 2: journal transaction
    "INSERT INTO mentorpay_ledger_transactions (business_key, kind, currency, mentor_id,"
    " payment_intent_id, payout_request_id, created_at) VALUES ({p}, 'payment', 'GBP', {p}, {p},"
    " NULL, {p}) ON CONFLICT (business_key) DO NOTHING RETURNING id",
    # 3: entries
    "INSERT INTO mentorpay_ledger_entries (transaction_id, account, mentor_id, currency, amount)"
    " VALUES ({p}, 'stripe_clearing', NULL, 'GBP', {p}), ({p}, 'platform_commission', NULL,"
    " 'GBP', {p}), ({p}, 'mentor_pending', {p}, 'GBP', {p})",
    # 4: materialized balance
    "INSERT INTO mentorpay_mentor_balances (mentor_id, currency, pending, available, held,"
    " reserved, withdrawn, updated_at) VALUES ({p}, 'GBP', {p}, 0, 0, 0, 0, {p})"
    " ON CONFLICT (mentor_id, currency) DO UPDATE SET pending = mentorpay_mentor_balances.pending"
    " + excluded.pending, updated_at = excluded.updated_at",
    # 5: release date
    "UPDATE mentorpay_payments SET release_due_at = {p} WHERE payment_intent_id = {p}",
]
DEFERRED_CHECK = (
    "SELECT id, payload FROM mentorpay_webhook_events WHERE waiting_for = {p}"
    " AND status = 'deferred' ORDER BY id"
)


def raw_event(tag: str, i: int) -> dict[str, Any]:
    """The values one raw transaction writes (the same shape as a processed delivery)."""
    gross = 5000 + i % 7
    fee = (gross * 1000 + 5000) // 10000
    return {
        "event_id": f"evt_{tag}_{i}",
        "pi": f"pi_{tag}_{i}",
        "booking": f"b_{tag}_{i}",
        "mentor": f"m{i % MENTORS}",
        "gross": gross,
        "fee": fee,
        "payout": gross - fee,
        "payload": "{}" * 700,  # about the size of a real event body
    }


def raw_write(
    execute: Callable[[str, tuple[Any, ...]], Any],
    sql: list[str],
    e: dict[str, Any],
    now: Any,
    due: Any,
) -> None:
    """The write statements of one fresh delivery."""
    execute(sql[0], (e["event_id"], e["payload"], now, now)).fetchone()
    execute(
        sql[1], (e["pi"], e["booking"], e["mentor"], e["gross"], e["fee"], e["payout"], now, now)
    ).fetchone()
    txn = execute(sql[2], (f"payment:{e['pi']}", e["mentor"], e["pi"], now)).fetchone()[0]
    execute(sql[3], (txn, -e["gross"], txn, e["fee"], txn, e["mentor"], e["payout"]))
    execute(sql[4], (e["mentor"], e["payout"], now))
    execute(sql[5], (due, e["pi"]))


def raw_sqlite_worker(path: Path, *, reads: bool) -> Callable[[], Callable[[Any], None]]:
    """Bare sqlite3: WAL, synchronous=FULL, BEGIN IMMEDIATE, one connection per thread."""
    sql = [s.format(p="?") for s in WRITES]
    peek, check = PEEK.format(p="?"), DEFERRED_CHECK.format(p="?")

    def make() -> Callable[[Any], None]:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")

        def one(e: dict[str, Any]) -> None:
            now = datetime.now(UTC).isoformat()
            due = (datetime.now(UTC) + timedelta(days=7)).isoformat()
            if reads:
                db.execute(peek, (e["event_id"],)).fetchone()
            db.execute("BEGIN IMMEDIATE")
            raw_write(db.execute, sql, e, now, due)
            if reads:
                db.execute(check, (e["pi"],)).fetchall()
            db.execute("COMMIT")

        return one

    return make


def raw_sqlite_dup(path: Path) -> Callable[[], Callable[[Any], None]]:
    """Bare sqlite3 answering a duplicate: one indexed read of the inbox."""
    peek = PEEK.format(p="?")

    def make() -> Callable[[Any], None]:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=30000")

        def one(e: dict[str, Any]) -> None:
            db.execute(peek, (e["event_id"],)).fetchone()

        return one

    return make


def _pg_connect(url: str, schema: str) -> Any:
    import psycopg

    conn = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"))
    conn.execute(f'SET search_path TO "{schema}"')
    conn.commit()
    return conn


def raw_pg_worker(url: str, schema: str, *, reads: bool) -> Callable[[], Callable[[Any], None]]:
    """Bare psycopg: one connection per thread, one transaction per delivery."""
    sql = [s.format(p="%s") for s in WRITES]
    peek, check = PEEK.format(p="%s"), DEFERRED_CHECK.format(p="%s") + " FOR UPDATE"

    def make() -> Callable[[Any], None]:
        conn = _pg_connect(url, schema)

        def one(e: dict[str, Any]) -> None:
            now = datetime.now(UTC)
            due = now + timedelta(days=7)
            if reads:
                conn.autocommit = True
                conn.execute(peek, (e["event_id"],)).fetchone()
                conn.autocommit = False
            with conn.transaction():
                raw_write(conn.execute, sql, e, now, due)
                if reads:
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(e["pi"]),))
                    conn.execute(check, (e["pi"],)).fetchall()

        return one

    return make


def raw_pg_dup(url: str, schema: str) -> Callable[[], Callable[[Any], None]]:
    """Bare psycopg answering a duplicate: one indexed read in autocommit."""
    peek = PEEK.format(p="%s")

    def make() -> Callable[[Any], None]:
        conn = _pg_connect(url, schema)
        conn.autocommit = True

        def one(e: dict[str, Any]) -> None:
            conn.execute(peek, (e["event_id"],)).fetchone()

        return one

    return make


# -- the floor (issue 13) ----------------------------------------------------------------------

FLOOR_WRITES = [WRITES[0], WRITES[1], WRITES[4]]
TOLERANCE_S = 300  # Stripe's default signature tolerance


def verify_signature(body: bytes, header: str, secret: bytes) -> None:
    """Stripe's scheme at its barest: ``t=..,v1=..``, HMAC-SHA256 of ``t.body``, a fresh ``t``."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    signed = parts["t"].encode() + b"." + body
    expected = hmac.new(secret, signed, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts["v1"]):
        raise AssertionError("bad signature")
    if abs(time.time() - int(parts["t"])) > TOLERANCE_S:
        raise AssertionError("stale signature")


def floor_worker(engine: Engine) -> Callable[[], Callable[[Any], None]]:
    """Verify + parse + inbox row + payment row + balance upsert, one commit, per delivery."""
    p = "?" if engine.dialect.name == "sqlite" else "%s"
    sql = [s.format(p=p) for s in FLOOR_WRITES]
    secret = SECRET.encode()
    # What the driver must be given for a timestamp, as mentorpay binds it on each backend.
    stamp: Callable[[datetime], Any] = (
        (lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f")) if p == "?" else (lambda d: d)
    )

    def make() -> Callable[[Any], None]:
        def one(item: tuple[bytes, str]) -> None:
            body, header = item
            verify_signature(body, header, secret)
            event = json.loads(body)
            obj = event["data"]["object"]
            meta = obj["metadata"]
            gross = obj["amount"]
            fee = (gross * 1000 + 5000) // 10000
            now = stamp(datetime.now(UTC))
            with engine.begin() as conn:
                cursor = conn.connection.cursor()
                try:
                    cursor.execute(sql[0], (event["id"], body.decode(), now, now))
                    if cursor.fetchone() is None:
                        raise AssertionError("the floor saw a duplicate")
                    cursor.execute(
                        sql[1],
                        (
                            obj["id"],
                            meta["booking_id"],
                            meta["mentor_id"],
                            gross,
                            fee,
                            gross - fee,
                            now,
                            now,
                        ),
                    )
                    cursor.fetchone()
                    cursor.execute(sql[2], (meta["mentor_id"], gross - fee, now))
                finally:
                    cursor.close()

        return one

    return make


# -- scenarios ---------------------------------------------------------------------------------


def full_worker(processor: WebhookProcessor, expect: str) -> Callable[[], Callable[[Any], None]]:
    """A worker calling ``process()``; checks every answer so a fast failure cannot pass."""

    def make() -> Callable[[Any], None]:
        def one(item: tuple[bytes, str]) -> None:
            result = processor.process(item[0], item[1])
            if result.status != expect:
                raise AssertionError(f"expected {expect}, got {result.status}")

        return one

    return make


def scenario(
    engine: Engine,
    threads: int,
    n: int,
    rounds: int,
    *,
    raw_fresh: Callable[[bool], Callable[[], Callable[[Any], None]]],
    raw_dup: Callable[[], Callable[[Any], None]],
) -> dict[str, Any]:
    """Best-of-``rounds`` rates for one database and thread count."""
    config = MentorpayConfig(webhook_secrets=[SECRET])
    processor = WebhookProcessor(config, engine, LedgerService(engine), bookings=BenchBookings())
    best: dict[str, float] = {}

    def keep(name: str, value: float) -> None:
        best[name] = max(best.get(name, 0.0), value)

    for r in range(rounds):
        truncate_all(engine)
        tag = f"t{threads}r{r}"
        raw_items = [raw_event(f"raw{tag}", i) for i in range(n)]
        raw_items_w = [raw_event(f"raww{tag}", i) for i in range(n)]
        signed = deliveries(f"full{tag}", n)
        floor_items = deliveries(f"floor{tag}", n)
        keep("floor_fresh_per_s", run_threads(floor_items, threads, floor_worker(engine)))
        keep("raw_fresh_per_s", run_threads(raw_items, threads, raw_fresh(True)))
        keep("raw_writes_only_per_s", run_threads(raw_items_w, threads, raw_fresh(False)))
        keep("full_fresh_per_s", run_threads(signed, threads, full_worker(processor, "success")))
        keep("raw_duplicate_per_s", run_threads(raw_items, threads, raw_dup))
        keep(
            "full_duplicate_per_s",
            run_threads(signed, threads, full_worker(processor, "already_processed")),
        )
    out: dict[str, Any] = {k: round(v) for k, v in sorted(best.items())}
    out["full_vs_floor"] = round(best["full_fresh_per_s"] / best["floor_fresh_per_s"], 3)
    out["full_vs_raw"] = round(best["full_fresh_per_s"] / best["raw_fresh_per_s"], 3)
    out["full_vs_raw_writes_only"] = round(
        best["full_fresh_per_s"] / best["raw_writes_only_per_s"], 3
    )
    out["duplicate_vs_raw"] = round(best["full_duplicate_per_s"] / best["raw_duplicate_per_s"], 3)
    out["duplicate_speedup"] = round(best["full_duplicate_per_s"] / best["full_fresh_per_s"], 3)
    return out


def bench_database(
    engine: Engine,
    n: int,
    rounds: int,
    raw_fresh: Callable[[bool], Callable[[], Callable[[Any], None]]],
    raw_dup: Callable[[], Callable[[Any], None]],
) -> dict[str, Any]:
    """1 and 4 threads on one database, plus the scaling ratio."""
    result: dict[str, Any] = {}
    for threads in (1, 4):
        print(f"  {threads} thread(s) ...", file=sys.stderr)
        result[f"threads_{threads}"] = scenario(
            engine, threads, n, rounds, raw_fresh=raw_fresh, raw_dup=raw_dup
        )
    one, four = result["threads_1"], result["threads_4"]
    result["scaling_4_vs_1"] = round(four["full_fresh_per_s"] / one["full_fresh_per_s"], 3)
    result["raw_scaling_4_vs_1"] = round(four["raw_fresh_per_s"] / one["raw_fresh_per_s"], 3)
    result["floor_scaling_4_vs_1"] = round(four["floor_fresh_per_s"] / one["floor_fresh_per_s"], 3)
    return result


def _deadlocks(engine: Engine) -> int:
    with engine.connect() as c:
        return int(
            c.execute(
                text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            ).scalar_one()
        )


def hot_mentor(engine: Engine, n: int, rounds: int, spread_per_s: float) -> dict[str, Any]:
    """Every event for one mentor, 4 threads through ``process()`` (PostgreSQL)."""
    config = MentorpayConfig(webhook_secrets=[SECRET])
    processor = WebhookProcessor(
        config, engine, LedgerService(engine), bookings=BenchBookings(mentors=1)
    )
    best = 0.0
    before = _deadlocks(engine)
    for r in range(rounds):
        truncate_all(engine)
        signed = deliveries(f"hot{r}", n, mentors=1)
        best = max(best, run_threads(signed, 4, full_worker(processor, "success")))
    time.sleep(0.6)  # statistics reach pg_stat_database shortly after each transaction
    return {
        "full_fresh_per_s": round(best),
        "vs_spread_over_200_mentors": round(best / spread_per_s, 3),
        "deadlocks": _deadlocks(engine) - before,
    }


@contextmanager
def sqlite_database() -> Iterator[tuple[Engine, Path]]:
    """A file-backed SQLite database in a temporary directory, as make_engine configures it."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = sqlite_engine(tmp, "bench.db")
        try:
            yield engine, Path(tmp) / "bench.db"
        finally:
            engine.dispose()


def goals(results: dict[str, Any]) -> dict[str, bool]:
    """The issue's goals, checked against the figures."""
    out: dict[str, bool] = {}
    for db in ("sqlite", "postgresql"):
        if db not in results:
            continue
        r = results[db]
        out[f"{db}_full_vs_floor_at_least_0.5"] = all(
            r[f"threads_{t}"]["full_vs_floor"] >= 0.5 for t in (1, 4)
        )
        out[f"{db}_full_vs_raw_at_least_0.5"] = all(
            r[f"threads_{t}"]["full_vs_raw"] >= 0.5 for t in (1, 4)
        )
        out[f"{db}_duplicates_at_least_3x_fresh"] = all(
            r[f"threads_{t}"]["duplicate_speedup"] >= 3 for t in (1, 4)
        )
    if "postgresql" in results:
        out["postgresql_4_threads_at_least_1.5x_one"] = (
            results["postgresql"]["scaling_4_vs_1"] >= 1.5
        )
        hot = results["postgresql"].get("hot_mentor_4_threads")
        if hot is not None:
            out["postgresql_hot_mentor_without_deadlock"] = hot["deadlocks"] == 0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1500, help="deliveries per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="best of this many runs")
    parser.add_argument(
        "--postgres", default=os.environ.get("MENTORPAY_TEST_POSTGRES_URL") or DEFAULT_PG
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--fast-ack-only", action="store_true", help="only the fast-ack figures")
    args = parser.parse_args()
    if args.fast_ack_only:
        main_fast_ack(args)
        return
    started = time.perf_counter()
    results: dict[str, Any] = {
        "events_per_measurement": args.events,
        "rounds": args.rounds,
        "environment": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "sqlite": sqlite3.sqlite_version,
            "sqlalchemy": sqlalchemy.__version__,
            "stripe": stripe.VERSION,
        },
    }
    print("sqlite ...", file=sys.stderr)
    with sqlite_database() as (engine, path):
        results["sqlite"] = bench_database(
            engine,
            args.events,
            args.rounds,
            lambda reads: raw_sqlite_worker(path, reads=reads),
            raw_sqlite_dup(path),
        )
    if not args.no_postgres:
        print("postgresql ...", file=sys.stderr)
        with postgres_engine(args.postgres) as engine:
            with engine.connect() as c:
                schema = c.execute(text("SELECT current_schema()")).scalar_one()
                results["environment"]["postgresql"] = c.execute(
                    text("SHOW server_version")
                ).scalar_one()
            results["postgresql"] = bench_database(
                engine,
                args.events,
                args.rounds,
                lambda reads: raw_pg_worker(args.postgres, schema, reads=reads),
                raw_pg_dup(args.postgres, schema),
            )
            print("  hot mentor, 4 threads ...", file=sys.stderr)
            results["postgresql"]["hot_mentor_4_threads"] = hot_mentor(
                engine,
                args.events,
                args.rounds,
                results["postgresql"]["threads_4"]["full_fresh_per_s"],
            )
    results["fast_ack"] = bench_fast_ack(args)
    results["goals_met"] = goals(results) | fast_ack.goals(results["fast_ack"])
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results, indent=2))


def bench_fast_ack(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest and apply figures on SQLite and (unless skipped) PostgreSQL."""
    out: dict[str, Any] = {}
    common = {"deliveries": deliveries, "secret": SECRET, "bookings": BenchBookings()}
    print("fast-ack, sqlite ...", file=sys.stderr)
    with sqlite_database() as (engine, _):
        out["sqlite"] = fast_ack.bench(engine, args.events, args.rounds, **common)
    if not args.no_postgres:
        print("fast-ack, postgresql ...", file=sys.stderr)
        with postgres_engine(args.postgres) as engine:
            out["postgresql"] = fast_ack.bench(
                engine, args.events, args.rounds, writer_counts=(None, 1, 4), **common
            )
    return out


def main_fast_ack(args: argparse.Namespace) -> None:
    """``--fast-ack-only``: the fast-acknowledge figures and their goals, as JSON."""
    started = time.perf_counter()
    results: dict[str, Any] = {"events_per_measurement": args.events, "rounds": args.rounds}
    results["fast_ack"] = bench_fast_ack(args)
    results["goals_met"] = fast_ack.goals(results["fast_ack"])
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
