"""Tests that kill surviving mutants of mentorpay.webhooks, through signed deliveries only
(WebhookProcessor.process), so they survive refactors of the handlers.

Each test names, in its docstring, the injected fault it catches; see scripts/mutation.sh.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import Engine, update

from mentorpay.errors import (
    ConfigurationError,
    PayloadTooLargeError,
    WebhookPayloadError,
    WebhookProcessingError,
    WebhookSignatureError,
)
from mentorpay.events import Effect, HandlerResult
from mentorpay.models import WebhookEvent
from mentorpay.money import Money
from mentorpay.testing import (
    charge,
    checkout_session,
    dispute,
    encode_event,
    make_event,
    payment_intent,
)
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
    # What each waited for stays on the row (`status == "deferred"` -> `!=` would erase it).
    assert all(h.inbox(e["id"])["waiting_for"] == "pi_1" for e in (refund, opened))
    bal = h.ledger.balance("m1", "GBP")
    assert (bal.pending, bal.held) == (Money(0, "GBP"), Money(3600, "GBP"))
    assert h.ledger.verify().ok


# -- boundaries nobody pinned (issue 14, survivor 10) -------------------------------------------


def intent_with(pi: str, amount: int = 5000, **meta: str) -> dict[str, Any]:
    """A payment_intent.succeeded event whose metadata is exactly ``meta``."""
    return make_event(
        "payment_intent.succeeded", payment_intent(id=pi, amount=amount, metadata=meta)
    )


def booking(**extra: str) -> dict[str, str]:
    """Valid booking metadata plus ``extra``."""
    return {"booking_id": "b1", "mentor_id": "m1", "mentee_id": "u1", **extra}


def test_body_of_exactly_the_size_limit_is_accepted(engine: Engine) -> None:
    """Kills `len(raw_body) > limit` -> `>=`: a body of exactly max_payload_bytes is processed."""
    event = intent_succeeded("pi_1")
    size = len(encode_event(event))
    assert make_harness(engine, max_payload_bytes=size).deliver(event).status == "success"
    with pytest.raises(PayloadTooLargeError):
        make_harness(engine, max_payload_bytes=size - 1).deliver(intent_succeeded("pi_2"))


def test_event_id_and_type_length_limits_are_inclusive(h: Harness) -> None:
    """Kills `len(env.id) <= 255` / `len(env.type) <= 128` -> `<` (and 255/128 off by one)."""
    longest_id = "evt_" + "x" * 251
    assert h.deliver(intent_succeeded("pi_1") | {"id": longest_id}).status == "success"
    with pytest.raises(WebhookPayloadError):
        h.deliver(intent_succeeded("pi_2") | {"id": longest_id + "x"})
    longest_type = "x." * 64
    assert h.deliver(make_event(longest_type, {"id": "obj_1"})).status == "ignored"
    with pytest.raises(WebhookPayloadError):
        h.deliver(make_event(longest_type + "x", {"id": "obj_2"}))


def test_booking_metadata_id_limit_is_inclusive(h: Harness) -> None:
    """Kills `len(value) > 255` -> `>=` for booking ids: a 255-character id is recorded."""
    assert h.deliver(intent_with("pi_1", **booking(booking_id="b" * 255))).status == "success"
    assert h.payment("pi_1")["booking_id"] == "b" * 255
    assert h.deliver(intent_with("pi_2", **booking(booking_id="b" * 256))).status == "rejected"


def test_one_character_id_and_type_are_accepted_empty_ones_refused(h: Harness) -> None:
    """Kills `0 < len(env.id)` / `0 < len(env.type)` -> `0 <=` or `1 <`: 1 char ok, 0 refused."""
    assert h.deliver(make_event("x", {"id": "obj_1"}, event_id="e")).status == "ignored"
    for event in (make_event("x", {"id": "o"}) | {"id": ""}, make_event("", {"id": "o"})):
        with pytest.raises(WebhookPayloadError):
            h.deliver(event)


def test_amount_limit_is_inclusive(h: Harness) -> None:
    """Kills `_AMOUNT_MAX = 2**53` -> `2**54` (and its `le=` bound): 2**53 is the largest amount."""
    assert h.deliver(intent_with("pi_1", amount=2**53, **booking())).status == "success"
    assert h.payment("pi_1")["amount"] == 2**53
    assert h.deliver(intent_with("pi_2", amount=2**53 + 1, **booking())).status == "rejected"


def test_failure_text_is_cut_to_exactly_the_column_width(h: Harness) -> None:
    """Kills `_describe`'s cut (`- 1` -> `- 0`, `<=` -> `<`): last_error is at most 2000 chars."""

    def explode(conn: Any, env: Any) -> Any:
        raise RuntimeError("x" * 5000)

    h.processor.register("transfer.created", explode)
    event = make_event("transfer.created", {"id": "tr_1"})
    with pytest.raises(WebhookProcessingError):
        h.deliver(event)
    error = h.inbox(event["id"])["last_error"]
    assert len(error) == 2000
    assert error.startswith("RuntimeError: xxx") and error.endswith("x…")
    fits = "y" * (2000 - len("RuntimeError: "))  # exactly 2000 characters: kept whole
    h.processor.register("transfer.created", lambda conn, env: explode_with(fits), replace=True)
    with pytest.raises(WebhookProcessingError):
        h.deliver(make_event("transfer.created", {"id": "tr_2"}) | {"id": "evt_fits"})
    assert h.inbox("evt_fits")["last_error"] == f"RuntimeError: {fits}"


def explode_with(message: str) -> Any:
    """A handler body that fails with ``message``."""
    raise RuntimeError(message)


def test_zero_amount_payment_is_ignored_not_refused(h: Harness) -> None:
    """Kills `Amount` `ge=0` -> `ge=1`: a zero amount is a valid payload that records nothing."""
    result = h.deliver(intent_with("pi_1", amount=0, **booking()))
    assert result.status == "ignored"
    assert not h.has_payment("pi_1")


def test_results_and_inbox_rows_are_immutable(h: Harness) -> None:
    """Kills `frozen=True -> False` on WebhookResult and InboxEvent: what callers get is a value."""
    result = h.deliver(intent_succeeded("pi_1"))
    with pytest.raises(AttributeError):
        result.status = "ignored"  # type: ignore[misc]
    (row,) = h.processor.list_events()
    with pytest.raises(AttributeError):
        row.status = "failed"  # type: ignore[misc]


def test_signature_diagnosis_reads_v1_before_t(h: Harness) -> None:
    """Kills `key == "t" and timestamp is None` -> `or`: a v1 listed first is still a v1."""
    body = encode_event(intent_succeeded("pi_1"))
    header = f"v1={'ab' * 32},t={int(time.time())}"
    with pytest.raises(WebhookSignatureError) as info:
        h.processor.process(body, header)
    assert info.value.details["reason"] == "no_secret_matched"


def test_object_with_an_empty_id_is_a_payload_error(h: Harness) -> None:
    """Kills StripeId's `min_length=1` -> `0`: an object with id "" is rejected, nothing written."""
    event = intent_with("pi_1", **booking())
    event["data"]["object"]["id"] = ""
    assert h.deliver(event).status == "rejected"
    assert h.ledger_counts() == (0, 0, 0, 0)


def test_register_refuses_an_empty_or_too_long_event_type(h: Harness) -> None:
    """Kills `not event_type or len(event_type) > 128` -> `and` in register()."""
    for bad in ("", "x" * 129):
        with pytest.raises(ConfigurationError):
            h.processor.register(bad, lambda conn, env: HandlerResult("ignored"))
    h.processor.register("x" * 128, lambda conn, env: HandlerResult("ignored"))


def test_envelope_error_names_the_missing_fields(h: Harness) -> None:
    """Kills `".".join(loc) or "body"` -> `and`: the error lists the fields, not just "body"."""
    event = intent_succeeded("pi_1")
    del event["type"], event["created"]
    with pytest.raises(WebhookPayloadError) as info:
        h.deliver(event)
    assert info.value.details["fields"] == ["created", "type"]


def test_failed_async_payment_without_booking_is_ignored(h: Harness) -> None:
    """Kills async_payment_failed's `return HandlerResult("ignored")` -> `return None`."""
    session = checkout_session(payment_intent="pi_1", payment_status="unpaid")
    result = h.deliver(make_event("checkout.session.async_payment_failed", session))
    assert result.status == "ignored"
    assert h.effects == []


def test_failed_payment_intent_without_booking_is_ignored(h: Harness) -> None:
    """Kills payment_failed's `return HandlerResult("ignored")` -> `return None` (no booking)."""
    intent = payment_intent(id="pi_1", status="requires_payment_method")
    result = h.deliver(make_event("payment_intent.payment_failed", intent))
    assert result.status == "ignored"
    assert h.effects == []


def test_deferred_cumulative_refunds_apply_in_created_order(h: Harness) -> None:
    """Kills deleting the drain's sort (or sorting by row id): refunds apply in Stripe's order."""
    second = refund_event("pi_1", 2000, created=2000)
    first = refund_event("pi_1", 1000, created=1000)
    assert h.deliver(second).status == "deferred"  # arrives first
    assert h.deliver(first).status == "deferred"
    h.deliver(intent_succeeded("pi_1"))
    refunds = [e.data["amount"] for e in h.effects if e.kind == "refund_applied"]
    assert refunds == [1000, 1000]
    assert h.ledger.payment("pi_1").refunded == Money(2000, "GBP")


def test_drained_event_counts_its_attempt(h: Harness) -> None:
    """Kills `attempts + 1` -> `+ 0` in the drain: applying a deferred event is an attempt."""
    refund = refund_event("pi_1", 1000)
    h.deliver(refund)
    before = h.inbox(refund["id"])["attempts"]
    h.deliver(intent_succeeded("pi_1"))
    assert h.inbox(refund["id"])["attempts"] == before + 1


def test_unreadable_deferred_event_is_marked_failed(h: Harness) -> None:
    """Kills dropping an unparsable deferred payload in the drain: its row becomes failed."""
    refund = refund_event("pi_1", 1000)
    h.deliver(refund)
    with h.engine.begin() as conn:
        conn.execute(
            update(WebhookEvent.__table__)
            .where(WebhookEvent.__table__.c.event_id == refund["id"])
            .values(payload="{}")
        )
    assert h.deliver(intent_succeeded("pi_1")).status == "success"
    row = h.inbox(refund["id"])
    assert row["status"] == "failed"
    assert "ValidationError" in row["last_error"]
    assert h.ledger.payment("pi_1").refunded == Money(0, "GBP")


def test_paid_session_without_payment_intent_is_ignored(h: Harness) -> None:
    """Kills `_record_payment`'s `return HandlerResult("ignored")` -> None when pi is missing."""
    session = checkout_session(payment_intent=None, metadata=booking())
    result = h.deliver(make_event("checkout.session.completed", session))
    assert result.status == "ignored"
    assert h.ledger_counts() == (0, 0, 0, 0)


def test_completed_subscription_session_is_ignored(h: Harness) -> None:
    """Kills the mode check's `return HandlerResult("ignored")` -> None for non-payment modes."""
    session = checkout_session(payment_intent=None, mode="subscription", metadata=booking())
    assert h.deliver(make_event("checkout.session.completed", session)).status == "ignored"
    assert h.ledger_counts() == (0, 0, 0, 0)


def test_emit_delivers_effects_to_callbacks(h: Harness) -> None:
    """Kills emit()'s `_run_callbacks(effects)` -> pass: settled effects reach the host."""
    effect = Effect("payout_settled", {"payout_request_id": 1})
    h.processor.emit([effect])
    assert h.effects == [effect]


def test_deferred_rows_wait_unprocessed_ignored_rows_are_stamped(h: Harness) -> None:
    """Kills `None if status == "deferred" else now` -> `!=` when an event is first stored."""
    refund = refund_event("pi_1", 1000)
    h.deliver(refund)
    assert h.inbox(refund["id"])["processed_at"] is None
    other = make_event("customer.created", {"id": "cus_1"})
    assert h.deliver(other).status == "ignored"
    assert h.inbox(other["id"])["processed_at"] is not None


def test_listing_accepts_up_to_ten_thousand_events(h: Harness) -> None:
    """Kills `limit <= 10_000` -> `<`: the documented largest page (10000) is accepted."""
    h.deliver(intent_succeeded("pi_1"))
    assert len(h.processor.list_events(limit=10_000)) == 1
