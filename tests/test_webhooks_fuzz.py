"""Fuzzing the webhook entry point: whatever arrives, the answer is a result or a typed 4xx
error, and nothing reaches the ledger."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from mentorpay.errors import MentorpayError
from mentorpay.testing import encode_event, make_event, sign_payload
from mentorpay.webhooks import HANDLED_EVENT_TYPES, WebhookResult
from tests.fixtures.webhook_support import SECRET, Harness, ledger_counts, make_harness

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
# Objects shaped like Stripe's with a few fields dropped or made hostile. Never booking
# metadata, so whatever parses must not be a mentorpay payment.
ids = st.from_regex(r"\A(pi|ch|cs|dp)_[A-Za-z0-9]{1,24}\Z")
hostile = json_value | st.text(max_size=300)


@st.composite
def stripe_ish_object(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible object for any handled type, then up to three fields dropped or corrupted."""
    amount = st.integers(min_value=0, max_value=10**7)
    obj: dict[str, Any] = {
        "id": draw(ids),
        "amount": draw(amount),
        "amount_total": draw(amount),
        "amount_received": draw(amount),
        "amount_refunded": draw(amount),
        "currency": draw(st.sampled_from(["gbp", "usd", "jpy", "kwd", "xxx"])),
        "payment_intent": draw(ids | st.none()),
        "charge": draw(ids | st.none()),
        "payment_status": draw(st.sampled_from(["paid", "unpaid", "no_payment_required"])),
        "mode": draw(st.sampled_from(["payment", "setup"])),
        "status": draw(st.sampled_from(["won", "lost", "warning_closed", "needs_response"])),
        "metadata": draw(st.dictionaries(st.sampled_from(["booking_id", "x"]), st.text())),
        "latest_charge": draw(ids | st.none()),
    }
    for key in draw(st.sets(st.sampled_from(sorted(obj)), max_size=3)):
        if draw(st.booleans()):
            del obj[key]
        else:
            obj[key] = draw(hostile)
    return obj


# Mostly the types mentorpay handles (so the handlers see the hostile objects), some junk.
event_types = st.one_of(
    st.sampled_from(HANDLED_EVENT_TYPES),
    st.sampled_from(HANDLED_EVENT_TYPES),
    st.sampled_from(HANDLED_EVENT_TYPES),
    st.text(max_size=140),
)
event_ids = st.just("evt_") | st.text(max_size=300)
_serial = itertools.count()


@pytest.fixture
def h(engine: Engine) -> Harness:
    """A processor on a clean database (SQLite and PostgreSQL)."""
    return make_harness(engine)


def outcome(h: Harness, body: bytes, header: str | None) -> WebhookResult | MentorpayError:
    """Process and return the result or the typed error; anything else propagates (fails)."""
    try:
        return h.processor.process(body, header)
    except MentorpayError as exc:
        return exc


def assert_typed_4xx_or_result(result: WebhookResult | MentorpayError) -> None:
    """Only a 200 result or an error whose HTTP status is 4xx."""
    event(type(result).__name__ if isinstance(result, MentorpayError) else result.status)
    if isinstance(result, MentorpayError):
        assert 400 <= result.http_status < 500, (type(result).__name__, result.message)
    else:
        assert result.http_status == 200


@FUZZ
@given(body=st.binary(max_size=2048), header=st.none() | st.text(max_size=200))
def test_random_bodies_and_headers_are_refused(h: Harness, body: bytes, header: str | None) -> None:
    """Arbitrary bytes with an arbitrary header: a typed 4xx error, no write at all."""
    result = outcome(h, body, header)
    assert isinstance(result, MentorpayError) and 400 <= result.http_status < 500
    assert h.inbox_count() == 0 and ledger_counts(h.engine) == (0, 0, 0, 0)


@FUZZ
@given(body=st.binary(max_size=1024) | json_value.map(lambda v: json.dumps(v).encode()))
def test_signed_garbage_is_a_payload_error(h: Harness, body: bytes) -> None:
    """Correctly signed bytes or JSON that is not an event: a 4xx error, nothing stored."""
    try:
        header = sign_payload(body, SECRET)
    except UnicodeDecodeError:
        header = "t=1,v1=00"
    result = outcome(h, body, header)
    assert_typed_4xx_or_result(result)
    assert ledger_counts(h.engine) == (0, 0, 0, 0)


@FUZZ
@given(
    event_type=event_types,
    obj=stripe_ish_object(),
    extra=st.dictionaries(st.text(max_size=10), json_value, max_size=3),
    event_id=event_ids,
)
def test_signed_event_shaped_bodies_never_fail_or_credit(
    h: Harness, event_type: str, obj: dict[str, Any], extra: dict[str, Any], event_id: str
) -> None:
    """Signed events with hostile fields: a 200 result or a typed 4xx, never a ledger write."""
    # A fresh suffix keeps hypothesis' repeated draws from all being duplicates.
    event = make_event(event_type, obj, event_id=f"{event_id}{next(_serial)}")
    event.update({k: v for k, v in extra.items() if k not in event})
    body = encode_event(event)
    result = outcome(h, body, sign_payload(body, SECRET))
    assert_typed_4xx_or_result(result)
    assert ledger_counts(h.engine) == (0, 0, 0, 0)


@FUZZ
@given(
    mutation=st.sampled_from(["drop", "flip", "append", "timestamp"]), position=st.integers(0, 200)
)
def test_tampered_headers_and_bodies_are_refused(h: Harness, mutation: str, position: int) -> None:
    """A valid delivery with its header or body altered is a signature error, nothing stored."""
    body = encode_event(make_event("customer.created", {"id": "cus_1"}))
    header = sign_payload(body, SECRET)
    if mutation == "drop":
        header = header[: position % len(header)]
    elif mutation == "flip":
        i = position % len(body)
        body = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
    elif mutation == "append":
        body += b" "
    else:
        header = sign_payload(body, SECRET, timestamp=position)
    result = outcome(h, body, header)
    assert isinstance(result, MentorpayError) and 400 <= result.http_status < 500
    assert h.inbox_count() == 0
