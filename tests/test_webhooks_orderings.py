"""Any delivery order with any duplicates ends in the in-order oracle's state (hypothesis)."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mentorpay.testing import sqlite_engine
from tests.fixtures.webhook_storm import (
    build,
    check_effects,
    oracle,
    snapshot,
    storm_harness,
    unique_events,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=1, max_value=12),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    order=st.randoms(use_true_random=False),
    copies=st.integers(min_value=1, max_value=3),
)
def test_any_order_and_duplicates_match_the_oracle(
    n: int, seed: int, order: random.Random, copies: int
) -> None:
    """Shuffled, duplicated deliveries of every kind of payment aftermath converge exactly."""
    scenarios = build(n, seed, prefix=f"ord{seed}")
    with tempfile.TemporaryDirectory() as tmp:
        expected, _ = oracle(scenarios, Path(tmp))
        engine = sqlite_engine(tmp, "shuffled.db")
        try:
            h = storm_harness(engine)
            deliveries = unique_events(scenarios) * copies
            order.shuffle(deliveries)
            for event in deliveries:
                h.processor.process_trusted(event)
            got = snapshot(engine)
            assert got == expected
            assert h.ledger.verify().ok
            check_effects(h.effects, scenarios, got)
        finally:
            engine.dispose()
