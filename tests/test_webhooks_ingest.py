"""The fast-acknowledge mode: ``ingest`` stores verified events, ``work`` applies them."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from mentorpay.cli import Output, main
from mentorpay.errors import (
    PayloadTooLargeError,
    WebhookPayloadError,
    WebhookSignatureError,
)
from mentorpay.events import HandlerResult
from mentorpay.models import Payment, WebhookEvent
from mentorpay.testing import charge, encode_event, make_event, sign_payload
from tests.fixtures.webhook_support import (
    SECRET,
    Harness,
    intent_succeeded,
    make_harness,
)


def ingest(h: Harness, event: dict[str, Any], *, secret: str = SECRET) -> Any:
    """Sign ``event`` like Stripe and hand it to the fast-acknowledge entry point."""
    body = encode_event(event)
    return h.processor.ingest(body, sign_payload(body, secret))


def statuses(engine: Engine) -> dict[str, str]:
    """event id -> inbox status."""
    w = WebhookEvent.__table__
    with engine.connect() as conn:
        return {r.event_id: r.status for r in conn.execute(select(w.c.event_id, w.c.status))}


def payments(engine: Engine) -> list[str]:
    """The payment intents recorded."""
    p = Payment.__table__
    with engine.connect() as conn:
        return sorted(conn.execute(select(p.c.payment_intent_id)).scalars())


def refund(pi: str, total: int, amount: int = 5000) -> dict[str, Any]:
    """A charge.refunded event: ``total`` refunded so far on ``pi``'s charge."""
    obj = charge(
        id=f"ch_{pi}", payment_intent=pi, amount=amount, amount_refunded=total, currency="gbp"
    )
    return make_event("charge.refunded", obj)


def test_ingest_stores_the_event_as_received_and_applies_nothing(engine: Engine) -> None:
    """An ingested event is answered 200 `received`, listed as received, and moves no money."""
    h = make_harness(engine)
    ev = intent_succeeded("pi_in1")
    result = ingest(h, ev)
    assert (result.status, result.http_status, result.event_id) == ("received", 200, ev["id"])
    assert payments(engine) == []
    assert h.effects == []
    listed = h.processor.list_events(status="received")
    assert [e.event_id for e in listed] == [ev["id"]]
    assert listed[0].attempts == 0


def test_ingest_refuses_what_process_refuses_and_stores_nothing(engine: Engine) -> None:
    """Bad signature (400), oversized body (413) and a non-event body (400), as process()."""
    h = make_harness(engine)
    body = encode_event(intent_succeeded("pi_bad"))
    with pytest.raises(WebhookSignatureError) as sig:
        h.processor.ingest(body, sign_payload(body, "whsec_someone_else_0123456789"))
    assert sig.value.http_status == 400
    with pytest.raises(WebhookSignatureError):
        h.processor.ingest(body, None)
    big = b" " * (h.config.max_payload_bytes + 1)
    with pytest.raises(PayloadTooLargeError) as large:
        h.processor.ingest(big, sign_payload(big, SECRET))
    assert large.value.http_status == 413
    junk = b'{"hello": 1}'
    with pytest.raises(WebhookPayloadError):
        h.processor.ingest(junk, sign_payload(junk, SECRET))
    assert statuses(engine) == {}


def test_duplicates_before_and_after_work(engine: Engine) -> None:
    """A duplicate still queued stays one row; after it applied it is `already_processed`."""
    h = make_harness(engine)
    ev = intent_succeeded("pi_dup")
    assert ingest(h, ev).status == "received"
    assert ingest(h, ev).status == "received"
    assert len(statuses(engine)) == 1
    summary = h.processor.work()
    assert summary.taken == 1 and summary.statuses == {"processed": 1}
    assert ingest(h, ev).status == "already_processed"
    assert h.processor.work().taken == 0
    assert h.kinds() == ["payment_succeeded"]
    assert h.processor.process(encode_event(ev), sign_payload(encode_event(ev), SECRET)).status == (
        "already_processed"
    )


def test_work_applies_in_arrival_order_with_the_effects_of_process(engine: Engine) -> None:
    """Payment, then refunds, in small batches: the same rows and effects as process()."""
    h = make_harness(engine)
    events = [intent_succeeded("pi_w1"), refund("pi_w1", 1000), refund("pi_w1", 5000)]
    events.append(refund("pi_w2", 500))  # its payment never comes: deferred, as process() does
    for ev in events:
        assert ingest(h, ev).status == "received"
    summary = h.processor.work(batch=2)
    assert summary.taken == 4 and summary.batches == 2
    assert summary.statuses == {"processed": 3, "deferred": 1}
    assert h.kinds() == ["payment_succeeded", "refund_applied", "refund_applied"]
    assert statuses(engine)[events[3]["id"]] == "deferred"
    assert payments(engine) == ["pi_w1"]
    # The deferred refund applies when its payment arrives, through either entry point.
    ingest(h, intent_succeeded("pi_w2"))
    h.processor.work()
    assert statuses(engine)[events[3]["id"]] == "processed"
    assert h.kinds().count("refund_applied") == 3
    assert h.ledger.verify().ok


def test_a_failing_event_rolls_back_only_itself(engine: Engine) -> None:
    """In one batch: a crashing handler -> failed, a typed error -> rejected; the rest apply."""
    from mentorpay.errors import WebhookPayloadError as Typed

    h = make_harness(engine)

    def crash(conn: Any, env: Any) -> HandlerResult:
        conn.exec_driver_sql("DELETE FROM mentorpay_mentor_balances")  # must be rolled back
        raise RuntimeError("a bug")

    def refuse(conn: Any, env: Any) -> HandlerResult:
        raise Typed("cannot use this event")

    h.processor.register("test.crash", crash)
    h.processor.register("test.refuse", refuse)
    first, last = intent_succeeded("pi_f1"), intent_succeeded("pi_f2")
    bad = make_event("test.crash", {"id": "x1", "object": "thing"})
    refused = make_event("test.refuse", {"id": "x2", "object": "thing"})
    for ev in (first, bad, refused, last):
        ingest(h, ev)
    summary = h.processor.work()
    assert summary.batches == 1
    assert summary.statuses == {"processed": 2, "failed": 1, "rejected": 1}
    got = statuses(engine)
    assert got[bad["id"]] == "failed" and got[refused["id"]] == "rejected"
    assert payments(engine) == ["pi_f1", "pi_f2"]
    assert sorted(h.kinds()) == ["event_rejected", "payment_succeeded", "payment_succeeded"]
    assert h.ledger.balance("m1", "GBP").pending.amount > 0
    failed = h.processor.list_events(status="failed")[0]
    assert failed.attempts == 1 and "RuntimeError" in (failed.last_error or "")
    # A redelivery of the failed event queues it again, as process() would retry it.
    assert ingest(h, bad).status == "received"
    assert statuses(engine)[bad["id"]] == "received"


def test_concurrent_ingests_share_commits(engine: Engine) -> None:
    """8 callers, 200 events: every one stored once, in fewer commits than events."""
    h = make_harness(engine)
    commits: list[int] = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    bodies = [encode_event(intent_succeeded(f"pi_gc{i}")) for i in range(200)]
    results: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def caller(k: int) -> None:
        start.wait()
        for body in bodies[k::8]:
            r = h.processor.ingest(body, sign_payload(body, SECRET))
            with lock:
                results.append(r.status)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["received"] * 200
    assert set(statuses(engine).values()) == {"received"} and len(statuses(engine)) == 200
    assert len(commits) < 200
    assert h.processor.work().statuses == {"processed": 200}


@pytest.mark.postgres
def test_workers_on_postgres_share_the_work_exactly_once(pg_engine: Engine) -> None:
    """Four workers at once (FOR UPDATE SKIP LOCKED): each event applied once, none left."""
    h = make_harness(pg_engine)
    events = []
    for i in range(20):
        events.append(intent_succeeded(f"pi_sk{i}", mentor=f"m{i % 3}"))
        events.append(refund(f"pi_sk{i}", 1000))
    for ev in events:
        ingest(h, ev)
    taken: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        n = h.processor.work(batch=7).taken
        with lock:
            taken.append(n)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    h.processor.work()  # anything a worker deferred past the others
    assert sum(taken) >= 40
    assert set(statuses(pg_engine).values()) == {"processed"}
    assert h.kinds().count("payment_succeeded") == 20
    assert h.kinds().count("refund_applied") == 20
    assert h.ledger.verify().ok


def test_worker_command_applies_the_inbox(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mentorpay worker --once --app module:attr` applies stored events and reports them."""
    h = make_harness(engine)
    for i in range(5):
        ingest(h, intent_succeeded(f"pi_cli{i}"))
    module = tmp_path / "hostapp_worker.py"
    module.write_text("WEBHOOKS = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import hostapp_worker  # type: ignore[import-not-found]

    hostapp_worker.WEBHOOKS = h.processor
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["worker", "--once", "--batch", "2", "--app", "hostapp_worker:WEBHOOKS"],
        out=Output(out, err),
    )
    assert code == 0, err.getvalue()
    assert "applied 5 event(s) in 3 batch(es): processed 5" in out.getvalue()
    assert payments(engine) == [f"pi_cli{i}" for i in range(5)]


def test_events_list_shows_received_events(tmp_path: Path) -> None:
    """`mentorpay events list --status received` lists what waits for the worker."""
    from mentorpay.testing import sqlite_engine

    engine = sqlite_engine(tmp_path, "cli.db")
    try:
        h = make_harness(engine)
        ev = intent_succeeded("pi_listed")
        ingest(h, ev)
        url = engine.url.render_as_string(hide_password=False)
        out, err = io.StringIO(), io.StringIO()
        code = main(["events", "list", "--status", "received", "--url", url], out=Output(out, err))
        assert code == 0, err.getvalue()
        assert ev["id"] in out.getvalue() and "received" in out.getvalue()
    finally:
        engine.dispose()


def test_worker_command_refuses_to_run_without_the_hosts_bookings(tmp_path: Path) -> None:
    """Without --app or --bookings the worker would park every payment: it refuses instead."""
    out, err = io.StringIO(), io.StringIO()
    url = f"sqlite:///{tmp_path / 'none.db'}"
    code = main(["worker", "--once", "--url", url], out=Output(out, err))
    assert code != 0 and "--bookings" in err.getvalue()
