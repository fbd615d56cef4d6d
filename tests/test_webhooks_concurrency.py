"""Concurrent deliveries on PostgreSQL with real threads: one effect, whoever wins the race."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine

from mentorpay.errors import MentorpayError
from mentorpay.money import Money
from mentorpay.testing import charge, encode_event, make_event, sign_payload
from mentorpay.webhooks import WebhookResult
from tests.fixtures.webhook_support import (
    SECRET,
    Harness,
    intent_succeeded,
    make_harness,
    session_completed,
)

pytestmark = pytest.mark.postgres
ROUNDS = 25


def race(*calls: Callable[[], WebhookResult]) -> list[WebhookResult | BaseException]:
    """Start every call at the same moment on its own thread; their results in call order."""
    results: list[WebhookResult | BaseException] = [RuntimeError("not run")] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # reported through the results
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def statuses(results: list[WebhookResult | BaseException]) -> list[str]:
    """The statuses, failing loudly on any exception."""
    out = []
    for r in results:
        if isinstance(r, BaseException):
            raise r
        out.append(r.status)
    return out


def call(h: Harness, body: bytes, header: str) -> Callable[[], WebhookResult]:
    """A zero-argument delivery of ``body`` for race()."""
    return lambda: h.processor.process(body, header)


def signed(event: dict[str, Any]) -> tuple[bytes, str]:
    """A body and its Stripe-Signature header."""
    body = encode_event(event)
    return body, sign_payload(body, SECRET)


@pytest.fixture
def h(pg_engine: Engine) -> Harness:
    """A processor on a clean PostgreSQL database."""
    return make_harness(pg_engine)


def test_same_event_twice_at_once_applies_once(h: Harness) -> None:
    """The same delivery on two threads at once: one success, one already_processed."""
    for i in range(ROUNDS):
        body, header = signed(intent_succeeded(f"pi_{i}"))
        got = statuses(race(*[call(h, body, header)] * 2))
        assert sorted(got) == ["already_processed", "success"], got
    assert h.ledger_counts()[:2] == (ROUNDS, ROUNDS)
    assert Counter(h.kinds()) == {"payment_succeeded": ROUNDS}
    assert h.ledger.verify().ok


def test_same_event_on_four_threads_past_the_peek(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even when every thread gets past the duplicate peek, the unique claim admits one."""
    monkeypatch.setattr(h.processor, "_peek", lambda event_id: None)
    for i in range(ROUNDS):
        body, header = signed(intent_succeeded(f"pi_{i}"))
        got = statuses(race(*[call(h, body, header)] * 4))
        assert sorted(got) == ["already_processed"] * 3 + ["success"], got
    assert Counter(h.kinds()) == {"payment_succeeded": ROUNDS}


def test_sibling_events_at_once_record_one_payment(h: Harness) -> None:
    """checkout.session.completed and payment_intent.succeeded at once: one payment."""
    for i in range(ROUNDS):
        a, b = signed(session_completed(f"pi_{i}")), signed(intent_succeeded(f"pi_{i}"))
        got = statuses(
            race(lambda a=a: h.processor.process(*a), lambda b=b: h.processor.process(*b))
        )
        assert sorted(got) == ["payment_already_processed", "success"], got
    assert h.ledger_counts()[:2] == (ROUNDS, ROUNDS)
    assert Counter(h.kinds()) == {"payment_succeeded": ROUNDS}
    assert h.ledger.balance("m1", "GBP").pending == Money(4500 * ROUNDS, "GBP")


def test_refund_racing_its_payment_is_never_stranded(h: Harness) -> None:
    """A refund and its payment at once: the refund is applied whichever commits first."""
    # Without the advisory lock about 4% of these rounds strand the refund: 80 catch it.
    rounds = 80
    for i in range(rounds):
        pi = f"pi_{i}"
        refund = make_event(
            "charge.refunded", charge(id=f"ch_{i}", payment_intent=pi, amount_refunded=1000)
        )
        pay, ref = signed(intent_succeeded(pi)), signed(refund)
        got = statuses(
            race(lambda p=pay: h.processor.process(*p), lambda r=ref: h.processor.process(*r))
        )
        assert got[0] == "success" and got[1] in ("success", "deferred"), got
        assert h.payment(pi)["amount_refunded"] == 1000, (i, got)
        assert h.inbox(refund["id"])["status"] == "processed"
    assert Counter(h.kinds()) == {"payment_succeeded": rounds, "refund_applied": rounds}
    assert h.ledger.verify().ok


def test_refunds_and_disputes_of_one_payment_at_once(h: Harness) -> None:
    """Four different events about one payment at once all apply, exactly once each."""
    from mentorpay.testing import dispute

    h.deliver(intent_succeeded("pi_1", amount=10_000))
    events = [
        make_event("charge.refunded", charge(payment_intent="pi_1", amount=10_000,
                                             amount_refunded=2_000)),
        make_event("charge.refunded", charge(payment_intent="pi_1", amount=10_000,
                                             amount_refunded=3_000)),
        make_event("charge.dispute.created", dispute(id="dp_1", payment_intent="pi_1",
                                                     amount=7_000)),
        make_event("payment_intent.succeeded", intent_succeeded("pi_1")["data"]["object"]),
    ]  # fmt: skip
    bodies = [signed(e) for e in events]
    got = statuses(race(*[lambda b=b: h.processor.process(*b) for b in bodies]))
    assert got[:3] == ["success"] * 3 and got[3] == "payment_already_processed"
    payment = h.payment("pi_1")
    assert (payment["amount_refunded"], payment["amount_disputed"]) == (3_000, 7_000)
    assert h.ledger.verify().ok


def test_retries_of_a_failed_event_at_once_apply_once(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two concurrent retries of a failed event: one applies it, the other already_processed."""
    for i in range(ROUNDS // 5):
        event = intent_succeeded(f"pi_{i}")
        body, header = signed(event)
        with monkeypatch.context() as m:
            m.setattr(h.processor, "_drain", _boom)
            with pytest.raises(MentorpayError):
                h.processor.process(body, header)
        assert h.inbox(event["id"])["status"] == "failed"
        got = statuses(race(*[call(h, body, header)] * 2))
        assert sorted(got) == ["already_processed", "success"], got
        assert h.inbox(event["id"])["attempts"] == 2
    assert Counter(h.kinds()) == {"payment_succeeded": ROUNDS // 5}


def _boom(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("injected failure")
