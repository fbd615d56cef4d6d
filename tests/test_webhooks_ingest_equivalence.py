"""``ingest`` all + ``work`` ends exactly where ``process()`` one by one ends, crash or not."""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text

from mentorpay.models import OutboxEffect, WebhookEvent
from mentorpay.testing import encode_event, sign_payload, sqlite_engine, truncate_all
from tests.conftest import POSTGRES_URL
from tests.fixtures.webhook_storm import (
    Harness,
    build,
    check_effects,
    snapshot,
    storm_harness,
    unique_events,
)
from tests.fixtures.webhook_support import SECRET

ROOT = Path(__file__).resolve().parent.parent


class _Killed(BaseException):
    """The worker's process dying mid-batch (nothing of the open batch commits)."""


def inbox(engine: Engine) -> dict[str, str]:
    """event id -> status (timestamps and attempts are timing, not outcome)."""
    w = WebhookEvent.__table__
    with engine.connect() as conn:
        return {r.event_id: r.status for r in conn.execute(select(w.c.event_id, w.c.status))}


def outbox(engine: Engine) -> set[tuple[str, str, str]]:
    """Every stored effect: (effect id, kind, data)."""
    o = OutboxEffect.__table__
    with engine.connect() as conn:
        return {tuple(r) for r in conn.execute(select(o.c.effect_id, o.c.kind, o.c.data))}


def signed(h: Harness, event: dict[str, Any], *, ingest: bool) -> str:
    """Deliver ``event`` signed like Stripe, through ingest or process; the answer's status."""
    body = encode_event(event)
    entry = h.processor.ingest if ingest else h.processor.process
    return entry(body, sign_payload(body, SECRET)).status


def reference(deliveries: list[dict[str, Any]]) -> tuple[Any, ...]:
    """State, inbox, outbox and effects after process() of each delivery, one by one."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = sqlite_engine(tmp, "reference.db")
        try:
            h = storm_harness(engine)
            for event in deliveries:
                signed(h, event, ingest=False)
            assert h.ledger.verify().ok
            return snapshot(engine), inbox(engine), outbox(engine), list(h.effects)
        finally:
            engine.dispose()


def kill_after(h: Harness, calls: int) -> None:
    """Make the worker die while applying event number ``calls`` + 1 (inside its batch)."""
    worker = h.processor._worker
    dispatch = worker.dispatch
    seen = 0

    def dying(*args: Any) -> Any:
        nonlocal seen
        seen += 1
        if seen > calls:
            worker.dispatch = dispatch  # the next process runs the real code
            raise _Killed
        return dispatch(*args)

    worker.dispatch = dying


def assert_same(engine: Engine, h: Harness, expected: tuple[Any, ...], scenarios: Any) -> None:
    """Balances, payments, accounts, inbox statuses, outbox rows and callbacks all agree."""
    state, statuses, effects, _ = expected
    got = snapshot(engine)
    assert got == state
    assert inbox(engine) == statuses
    assert outbox(engine) == effects
    assert h.ledger.verify().ok
    check_effects(h.effects, scenarios, got)
    assert {e.id for e in h.effects} == {e[0] for e in effects}


@settings(
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    n=st.integers(min_value=1, max_value=8),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    order=st.randoms(use_true_random=False),
    copies=st.integers(min_value=1, max_value=3),
    batch=st.integers(min_value=1, max_value=25),
    kill=st.none() | st.integers(min_value=0, max_value=60),
)
def test_ingest_and_work_end_where_process_ends(
    engine: Engine,
    *,
    n: int,
    seed: int,
    order: random.Random,
    copies: int,
    batch: int,
    kill: int | None,
) -> None:
    """Shuffled, duplicated streams: ingest + work (even killed mid-batch) ends as process()."""
    truncate_all(engine)
    scenarios = build(n, seed, prefix=f"eq{seed}")
    deliveries = unique_events(scenarios) * copies
    order.shuffle(deliveries)
    expected = reference(deliveries)

    h = storm_harness(engine)
    for event in deliveries:
        assert signed(h, event, ingest=True) in ("received", "already_processed")
    assert h.effects == []  # nothing applied before the worker runs
    if kill is not None:
        kill_after(h, kill)
        with contextlib.suppress(_Killed):  # dies unless it ran out of events first
            h.processor.work(batch=batch)
    h.processor.work(batch=batch)
    assert_same(engine, h, expected, scenarios)


def _database_of(engine: Engine) -> tuple[str, str]:
    """The URL and (PostgreSQL) schema a subprocess needs to reach the test database."""
    if engine.dialect.name == "sqlite":
        return engine.url.render_as_string(hide_password=False), ""
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    assert POSTGRES_URL is not None
    return POSTGRES_URL, str(schema)


@pytest.mark.slow
def test_worker_process_killed_mid_batch_loses_nothing(engine: Engine) -> None:
    """SIGKILL mid-batch: the next worker applies the rest, exactly once, ending as process()."""
    scenarios = build(24, 7, prefix="kill")
    deliveries = unique_events(scenarios) * 2
    random.Random(7).shuffle(deliveries)
    expected = reference(deliveries)
    h = storm_harness(engine)
    for event in deliveries:
        signed(h, event, ingest=True)
    url, schema = _database_of(engine)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fixtures.worker_crash", url, schema, "45", "20"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = inbox(engine)
    assert "received" in left.values()  # the open batch (and the rest) was not applied
    assert set(left.values()) - {"received"}  # two earlier batches were committed
    summary = h.processor.work(batch=20)
    assert summary.taken == list(left.values()).count("received")
    state, statuses, effects, _ = expected
    assert snapshot(engine) == state
    assert inbox(engine) == statuses
    assert outbox(engine) == effects
    assert h.ledger.verify().ok
