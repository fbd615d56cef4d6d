"""Tests that kill surviving mutants of mentorpay.webhooks, through signed deliveries only
(WebhookProcessor.process), so they survive refactors of the handlers.

Each test names, in its docstring, the injected fault it catches; see scripts/mutation.sh.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from mentorpay.money import Money
from mentorpay.testing import charge, dispute, make_event
from tests.fixtures.webhook_support import Harness, intent_succeeded, make_harness


@pytest.fixture
def h(engine: Engine) -> Harness:
    """A processor on a clean database (SQLite and PostgreSQL)."""
    return make_harness(engine)


def refund_event(pi: str, total: int, *, created: int | None = None) -> dict[str, Any]:
    """A charge.refunded event with cumulative ``total`` refunded of a 50.00 GBP charge."""
    obj = charge(id=f"ch_{pi}", payment_intent=pi, amount=5000, amount_refunded=total)
    return make_event("charge.refunded", obj, created=created)


def dispute_event(kind: str, pi: str, status: str, *, created: int | None = None) -> dict[str, Any]:
    """A charge.dispute.<kind> event for the whole 50.00 GBP charge of ``pi``."""
    obj = dispute(id=f"dp_{pi}", charge=f"ch_{pi}", payment_intent=pi, status=status)
    return make_event(f"charge.dispute.{kind}", obj, created=created)


def test_deferred_events_created_in_the_same_second_all_apply(h: Harness) -> None:
    """Kills the drain's sort key `(created, row_id)` -> `(created, envelope)`: ties crash it."""
    refund = refund_event("pi_1", 1000, created=1000)
    opened = dispute_event("created", "pi_1", "needs_response", created=1000)
    assert h.deliver(refund).status == "deferred"
    assert h.deliver(opened).status == "deferred"
    result = h.deliver(intent_succeeded("pi_1"))
    assert result.status == "success"
    assert h.has_payment("pi_1")
    # Same second: applied in arrival order (the refund first), so the hold is on what is left.
    assert h.kinds() == ["payment_succeeded", "refund_applied", "dispute_opened"]
    assert all(h.inbox(e["id"])["status"] == "processed" for e in (refund, opened))
    bal = h.ledger.balance("m1", "GBP")
    assert (bal.pending, bal.held) == (Money(0, "GBP"), Money(3600, "GBP"))
    assert h.ledger.verify().ok
