"""Scale benchmark: what mentorpay's reads and batch jobs cost as the ledger grows.

Run: ``python benchmarks/scale.py [--payments 10k|100k|1m|N] [--postgres URL | --no-postgres]``
(PostgreSQL defaults to MENTORPAY_TEST_POSTGRES_URL when set). Prints one JSON document;
progress goes to stderr. The default (10k payments) runs in well under a minute; 100k takes a
few minutes; 1m is for patient runs.

Each database gets a valid ledger seeded with set-based SQL (``benchmarks/seed.py``: 1,000
mentors, 3 currencies, payments over a year with a 7-day hold, 10% of them due for release),
then, timed (the median of several calls where a call is quick; milliseconds):

- ``balance_ms``: one mentor's balance in one currency; ``balances_ms``: all of a mentor's;
- ``history_first_page_ms`` / ``history_next_page_ms``: 50 payments of a mentor, then the next
  page by cursor; ``history_mentee_ms``: a mentee's first page;
- ``events_list_ms``: the inbox's newest 50 (``events list``), ``events_list_status_ms`` with
  ``--status processed``, ``events_list_type_ms`` with ``--type charge.refunded`` (none exist);
- ``stats_one_day_ms``: ``mp.analytics.summary`` for one day (``mentorpay stats``);
- ``review_queue_ms``: ``payments review``;
- ``verify_ms``: the first ``LedgerService.verify()`` (no checkpoint yet: a full pass over the
  journal, which writes one); ``verify_incremental_ms``: the next one (nothing new to read);
- ``release_due_s``: ``release_due_count`` releasing the 10% due (500 payments per
  transaction), and ``released_per_s``;
- ``verify_after_release_ms``: the incremental verify reading only the release's entries
  (``verify_after_release_entries_read``); ``verify_full_after_release_ms``: ``verify(full=True)``.
  Every verify must report OK;
- ``cli_version_s``: ``python -m mentorpay.cli --version`` (the CLI's start-up), best of 3.

SQLite runs on a file in a temporary directory (WAL, ``synchronous=FULL``, as ``make_engine``
configures it); PostgreSQL in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Engine, text

try:
    from benchmarks.seed import CURRENCIES, seed
except ImportError:  # run as a script: benchmarks/ itself is first on the path
    from seed import CURRENCIES, seed  # type: ignore[no-redef]

from mentorpay import MentorPay, MentorpayConfig
from mentorpay.testing import FakeGateway, InMemoryBookings, postgres_engine, sqlite_engine

SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
REPEAT = 20


def size(value: str) -> int:
    """``10k`` / ``100k`` / ``1m`` or a plain number of payments."""
    return SIZES.get(value.lower()) or int(value)


def median_ms(fn: Callable[[int], Any], repeat: int = REPEAT) -> float:
    """Median wall time of ``fn(i)`` over ``repeat`` calls (``i`` varies the mentor asked)."""
    times = []
    for i in range(repeat):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 3)


def cli_start() -> float:
    """Seconds for ``mentorpay --version`` in a fresh interpreter, best of 3."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mentorpay.cli", "--version"],
            check=True,
            capture_output=True,
        )
        best = min(best, time.perf_counter() - t0)
    return round(best, 3)


def bench(engine: Engine, payments: int) -> dict[str, Any]:
    """Seed, then time each read and batch job on ``engine``."""
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    plan = seed(engine, payments)
    out["seed_s"] = round(time.perf_counter() - t0, 2)
    with engine.connect() as conn:
        out["rows"] = {
            name: conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
            for name in (
                "mentorpay_payments",
                "mentorpay_ledger_transactions",
                "mentorpay_ledger_entries",
                "mentorpay_webhook_events",
            )
        }
    mp = MentorPay(
        MentorpayConfig(webhook_secrets=["whsec_scale"]),
        engine,
        bookings=InMemoryBookings([]),
        gateway=FakeGateway(),
        clock=lambda: plan.end,
    )
    mentors = plan.mentors

    def mentor(i: int) -> str:
        return f"m{(i * 37) % mentors}"

    out["balance_ms"] = median_ms(lambda i: mp.ledger.balance(mentor(i), CURRENCIES[i % 3]))
    out["balances_ms"] = median_ms(lambda i: mp.ledger.balances(mentor(i)))
    out["history_first_page_ms"] = median_ms(lambda i: mp.ledger.history(mentor(i), limit=50))
    cursors = [mp.ledger.history(mentor(i), limit=50).next_cursor for i in range(REPEAT)]
    out["history_next_page_ms"] = median_ms(
        lambda i: mp.ledger.history(mentor(i), limit=50, cursor=cursors[i])
    )
    out["history_mentee_ms"] = median_ms(
        lambda i: mp.ledger.history(f"u{i}", role="mentee", limit=50)
    )
    out["events_list_ms"] = median_ms(lambda _: mp.webhooks.list_events(limit=50))
    out["events_list_status_ms"] = median_ms(
        lambda _: mp.webhooks.list_events(status="processed", limit=50)
    )
    out["events_list_type_ms"] = median_ms(
        lambda _: mp.webhooks.list_events(limit=50, event_type="charge.refunded")
    )
    day = plan.end - timedelta(days=30)
    out["stats_one_day_ms"] = median_ms(
        lambda i: mp.analytics.summary(day - timedelta(days=i), day - timedelta(days=i - 1)),
        repeat=5,
    )
    out["review_queue_ms"] = median_ms(lambda _: mp.ledger.review_queue(100), repeat=5)

    t0 = time.perf_counter()
    report = mp.ledger.verify()  # no checkpoint yet: a full pass, which writes one
    out["verify_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    if not report.ok:
        raise AssertionError(f"seeded ledger does not verify: {report.problems[:5]}")
    t0 = time.perf_counter()
    again = mp.ledger.verify()
    out["verify_incremental_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    if not (again.ok and again.incremental):
        raise AssertionError(f"incremental verify failed: {again.problems[:5]}")
    print(f"  release_due of {plan.due} payments ...", file=sys.stderr)
    t0 = time.perf_counter()
    released = mp.ledger.release_due_count(plan.end)
    elapsed = time.perf_counter() - t0
    if released != plan.due:
        raise AssertionError(f"released {released}, expected {plan.due}")
    out["release_due_payments"] = plan.due
    out["release_due_s"] = round(elapsed, 2)
    out["released_per_s"] = round(plan.due / elapsed) if elapsed else None
    t0 = time.perf_counter()
    after = mp.ledger.verify()
    out["verify_after_release_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    out["verify_after_release_entries_read"] = after.entries_read
    if not after.ok:
        raise AssertionError(f"ledger does not verify after release: {after.problems[:5]}")
    t0 = time.perf_counter()
    full = mp.ledger.verify(full=True)
    out["verify_full_after_release_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    if not full.ok:
        raise AssertionError(f"full verify fails after release: {full.problems[:5]}")
    return out


@contextmanager
def sqlite_database() -> Iterator[Engine]:
    """A file-backed SQLite database in a temporary directory, as make_engine configures it."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = sqlite_engine(tmp, "scale.db")
        try:
            yield engine
        finally:
            engine.dispose()


def main() -> None:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--payments", type=size, default=10_000, help="10k, 100k, 1m or N")
    parser.add_argument("--postgres", default=os.environ.get("MENTORPAY_TEST_POSTGRES_URL"))
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[str, Any] = {
        "payments": args.payments,
        "environment": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "sqlite": sqlite3.sqlite_version,
            "sqlalchemy": sqlalchemy.__version__,
        },
        "cli_version_s": cli_start(),
    }
    print(f"sqlite, {args.payments} payments ...", file=sys.stderr)
    with sqlite_database() as engine:
        results["sqlite"] = bench(engine, args.payments)
    if args.postgres and not args.no_postgres:
        print(f"postgresql, {args.payments} payments ...", file=sys.stderr)
        with postgres_engine(args.postgres) as engine:
            with engine.connect() as conn:
                results["environment"]["postgresql"] = conn.execute(
                    text("SHOW server_version")
                ).scalar_one()
            results["postgresql"] = bench(engine, args.payments)
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples, benchmarks
    main()
