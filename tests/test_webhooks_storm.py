"""Storm and kill: shuffled, repeated, concurrent or interrupted deliveries end exactly where a
sequential run of the same events ends."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from mentorpay.testing import encode_event, sign_payload, sqlite_engine
from mentorpay.webhooks import WebhookResult
from tests.conftest import PG_LEGS, database_leg
from tests.fixtures.webhook_storm import (
    build,
    check_effects,
    inbox_statuses,
    oracle,
    snapshot,
    storm_harness,
    unique_events,
)
from tests.fixtures.webhook_support import SECRET

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.postgres
def test_storm_of_shuffled_triplicated_events_matches_the_oracle(
    pg_engine: Engine, tmp_path: Path
) -> None:
    """500 payments' events, each delivered 3 times, shuffled, 8 threads: oracle's end state."""
    scenarios = build(500, seed=20261126)
    expected, expected_effects = oracle(scenarios, tmp_path)
    events = unique_events(scenarios)
    deliveries = [(e["id"], encode_event(e)) for e in events] * 3
    random.Random(7).shuffle(deliveries)
    signed = [(eid, body, sign_payload(body, SECRET)) for eid, body in deliveries]

    h = storm_harness(pg_engine)
    results: list[WebhookResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    cursor = iter(range(len(signed)))

    def worker() -> None:
        mine = []
        try:
            while True:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    break
                _, body, header = signed[i]
                mine.append(h.processor.process(body, header))
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started

    assert not errors, errors[:3]
    assert len(results) == len(signed)
    got = snapshot(pg_engine)
    assert got["payments"] == expected["payments"]
    assert got["balances"] == expected["balances"]
    assert got["accounts"] == expected["accounts"]
    report = h.ledger.verify()
    assert report.ok, report.problems[:5]
    check_effects(h.effects, scenarios, got)
    check_effects(expected_effects, scenarios, expected)
    statuses = Counter(r.status for r in results)
    # The shuffle must really have exercised the hard paths.
    assert statuses["deferred"] > 0 and statuses["already_processed"] >= len(events)
    assert statuses["payment_already_processed"] > 0
    assert inbox_statuses(pg_engine) == {"processed": len(events)}
    print(f"storm: {len(signed)} deliveries in {elapsed:.1f}s, {dict(statuses)}")


def _engine_for(kind: str, tmp_path: Path, pg: Engine | None) -> tuple[Engine, str, str]:
    """The database the worker and the test share: (engine, url, schema or '-')."""
    if kind == "sqlite":
        engine = sqlite_engine(tmp_path, "kill.db")
        return engine, f"sqlite:///{tmp_path / 'kill.db'}", "-"
    assert pg is not None
    with pg.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    # Through PgBouncer the run has a database of its own (no search_path option there).
    return pg, pg.url.render_as_string(hide_password=False), "-" if schema == "public" else schema


@pytest.fixture(params=["sqlite", *PG_LEGS])
def kill_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, str, str]]:
    """A database for the kill test, on SQLite, PostgreSQL and PostgreSQL through PgBouncer."""
    if request.param == "sqlite":
        engine, url, schema = _engine_for("sqlite", tmp_path, None)
        yield engine, url, schema
        engine.dispose()
        return
    yield _engine_for("postgres", tmp_path, next(database_leg(request, tmp_path)))


def test_worker_killed_midstream_converges_after_redelivery(
    kill_db: tuple[Engine, str, str], tmp_path: Path
) -> None:
    """SIGKILL a worker part-way through a stream; redelivering everything reaches the oracle."""
    engine, url, schema = kill_db
    scenarios = build(120, seed=99, prefix="kill")
    expected, _ = oracle(scenarios, tmp_path)
    events = unique_events(scenarios)
    random.Random(3).shuffle(events)
    stream = tmp_path / "stream.jsonl"
    stream.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    errors = (tmp_path / "worker.err").open("w")  # a file: a full pipe would stall the worker
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.webhook_worker", url, schema, str(stream)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    target = len(events) // 3
    done = -1
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "done":
            break
        done = int(line)
        if done >= target:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    errors.close()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "worker.err").read_text()
    assert 0 < done < len(events) - 1

    h = storm_harness(engine)
    results: list[Any] = [h.processor.process(encode_event(e), _sign(e)) for e in events]
    before_kill = Counter(r.status for r in results[: done + 1])
    # What the worker committed is recognized (deferred ones are simply tried again).
    assert set(before_kill) <= {"already_processed", "deferred", "success"}
    assert before_kill["already_processed"] >= (done + 1) // 2
    got = snapshot(engine)
    assert got == expected
    assert h.ledger.verify().ok
    assert inbox_statuses(engine) == {"processed": len(events)}


def _sign(event: dict[str, Any]) -> str:
    return sign_payload(encode_event(event), SECRET)
