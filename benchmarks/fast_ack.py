"""The fast-acknowledge figures of ``benchmarks/webhooks.py`` (issue 13): ingest, then apply.

- ``ingest``: 8 concurrent callers of ``mp.webhooks.ingest`` (signature check, parse, durable
  store with group commit): events per second and per-call latency p50 / p99, against
  ``process()`` with the same 8 callers on the same fresh deliveries in the same run.
- ``apply``: ``work(batch=N)`` on what was ingested (one transaction per batch, a savepoint per
  event): events per second, against ``process()`` one thread in the same run.
- PostgreSQL: ingest with one gathering writer against four writer connections.

Goals (issue 13, SQLite synchronous=FULL): ingest >= 5,000/s with 8 callers, apply >= 3,000/s.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from mentorpay.config import MentorpayConfig
from mentorpay.ledger import LedgerService
from mentorpay.testing import truncate_all
from mentorpay.webhooks import WebhookProcessor

Deliveries = Callable[..., list[tuple[bytes, str]]]


def _processor(engine: Engine, secret: str, bookings: Any, writers: int | None = None) -> Any:
    processor = WebhookProcessor(
        MentorpayConfig(webhook_secrets=[secret]), engine, LedgerService(engine), bookings=bookings
    )
    if writers is not None:
        processor.ingester.writers = writers
    return processor


def _callers(
    items: list[tuple[bytes, str]], threads: int, call: Callable[[bytes, str], str], expect: str
) -> tuple[float, list[float]]:
    """Events per second and each call's latency (s), ``threads`` callers started together."""
    chunks = [items[i::threads] for i in range(threads)]
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)

    def run(k: int) -> None:
        barrier.wait()
        try:
            for body, header in chunks[k]:
                t0 = time.perf_counter()
                status = call(body, header)
                latencies[k].append(time.perf_counter() - t0)
                if status != expect:
                    raise AssertionError(f"expected {expect}, got {status}")
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return len(items) / elapsed, [x for lat in latencies for x in lat]


def commit_floor(engine: Engine, n: int = 400) -> float:
    """Durable commits per second of one bare connection (one tiny row each), in this run.

    Ingest with ``c`` callers cannot beat ``c`` times this: each caller waits for its commit.
    """
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS bench_commit_floor (id INTEGER, note TEXT)")
        raw.commit()
        t0 = time.perf_counter()
        for _ in range(n):
            if engine.dialect.name == "sqlite":
                cur.execute("BEGIN IMMEDIATE")  # as mentorpay's SQLite transactions begin
            cur.execute("INSERT INTO bench_commit_floor VALUES (1, 'x')")
            raw.commit()
        rate = n / (time.perf_counter() - t0)
        cur.execute("DROP TABLE bench_commit_floor")
        raw.commit()
        return rate
    finally:
        raw.close()


def _ms(values: list[float], q: float) -> float:
    cut = statistics.quantiles(values, n=100, method="inclusive")
    return round(cut[round(q * 100) - 1] * 1000, 3)


def bench(
    engine: Engine,
    n: int,
    rounds: int,
    *,
    deliveries: Deliveries,
    secret: str,
    bookings: Any,
    callers: tuple[int, ...] = (8, 32),
    batches: tuple[int, ...] = (100, 500),
    writer_counts: tuple[int | None, ...] = (None,),
) -> dict[str, Any]:
    """Best-of-``rounds`` ingest and apply figures on one database (see the module)."""
    best: dict[str, Any] = {}

    def keep(name: str, value: float, extra: dict[str, Any] | None = None) -> None:
        if value > best.get(name, (0.0, None))[0]:
            best[name] = (value, extra)

    for r in range(rounds):
        for writers in writer_counts:
            truncate_all(engine)
            label = "ingest" if writers is None else f"ingest_writers_{writers}"
            print(f"  fast-ack {label}, round {r} ...", file=sys.stderr)
            processor = _processor(engine, secret, bookings, writers)
            items = deliveries(f"ing{r}w{writers}", n)

            def ingest(body: bytes, header: str, p: Any = processor) -> str:
                return str(p.ingest(body, header).status)

            rate, lat = _callers(items, callers[0], ingest, "received")
            keep(f"{label}_per_s", rate, {"p50_ms": _ms(lat, 0.5), "p99_ms": _ms(lat, 0.99)})
            if writers is not None:
                continue
            for more in callers[1:]:
                truncate_all(engine)
                rate, lat = _callers(deliveries(f"ing{r}c{more}", n), more, ingest, "received")
                extra = {"p50_ms": _ms(lat, 0.5), "p99_ms": _ms(lat, 0.99)}
                keep(f"ingest_{more}_callers_per_s", rate, extra)
            # Apply what was just ingested, in batches of each size (re-ingested per size).
            for size in batches:
                if size != batches[0]:
                    truncate_all(engine)
                    for body, header in deliveries(f"app{r}b{size}", n):
                        processor.ingest(body, header)
                t0 = time.perf_counter()
                summary = processor.work(batch=size)
                elapsed = time.perf_counter() - t0
                assert summary.statuses == {"processed": n}, summary
                keep(f"apply_batch_{size}_per_s", n / elapsed)
        truncate_all(engine)
        baseline = _processor(engine, secret, bookings)

        def process(body: bytes, header: str, p: Any = baseline) -> str:
            return str(p.process(body, header).status)

        keep("commit_floor_per_s", commit_floor(engine))
        rate, lat = _callers(deliveries(f"proc{r}c", n), callers[0], process, "success")
        keep("process_8_callers_per_s", rate, {"p50_ms": _ms(lat, 0.5), "p99_ms": _ms(lat, 0.99)})
        truncate_all(engine)
        rate, _ = _callers(deliveries(f"proc{r}1", n), 1, process, "success")
        keep("process_1_caller_per_s", rate)
    out: dict[str, Any] = {}
    for name, (value, extra) in sorted(best.items()):
        out[name] = round(value)
        for key, v in (extra or {}).items():
            out[name.removesuffix("_per_s") + "_" + key] = v
    ingest_rate = best["ingest_per_s"][0]
    out["ingest_vs_process_8_callers"] = round(ingest_rate / best["process_8_callers_per_s"][0], 3)
    # Events per durable commit of a bare connection: above 1 only thanks to group commit.
    out["ingest_vs_commit_floor"] = round(ingest_rate / best["commit_floor_per_s"][0], 3)
    for size in batches:
        rate = best[f"apply_batch_{size}_per_s"][0]
        out[f"apply_batch_{size}_vs_process_1_caller"] = round(
            rate / best["process_1_caller_per_s"][0], 3
        )
    return out


def goals(fast_ack: dict[str, Any]) -> dict[str, bool]:
    """Issue 13's fast-acknowledge goals (SQLite, synchronous=FULL)."""
    sqlite = fast_ack.get("sqlite")
    if sqlite is None:
        return {}
    applies = [v for k, v in sqlite.items() if k.startswith("apply_batch_") and k.endswith("_s")]
    return {
        "sqlite_ingest_8_callers_at_least_5000_per_s": sqlite["ingest_per_s"] >= 5000,
        "sqlite_apply_at_least_3000_per_s": max(applies) >= 3000,
    }
