"""Inbox retention: old payloads pruned (ids kept), stale deferred events reported, and
deferred events drained in bounded transactions."""

from __future__ import annotations

import io
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select, update

from mentorpay.analytics import AnalyticsService
from mentorpay.cli import Output, main
from mentorpay.errors import InvalidRequestError
from mentorpay.events import EventEnvelope, HandlerResult
from mentorpay.inbox import PRUNED_MARK, Inbox, parse_duration
from mentorpay.models import webhook_events_table
from mentorpay.money import Money
from mentorpay.testing import charge, encode_event, make_event
from tests.fixtures.webhook_support import NOW, Harness, intent_succeeded, make_harness

DAY = timedelta(days=1)


@pytest.fixture
def h(engine: Engine) -> Harness:
    """A processor whose clock reads NOW."""
    return make_harness(engine)


def refunded(pi: str, total: int, **kw: Any) -> dict[str, Any]:
    """charge.refunded with cumulative ``total`` refunded."""
    return make_event(
        "charge.refunded",
        charge(id=f"ch_{pi}", payment_intent=pi, amount=5000, amount_refunded=total),
        **kw,
    )


def payload(engine: Engine, event_id: str) -> str:
    """The stored payload of one event."""
    with engine.connect() as conn:
        value = conn.execute(
            select(webhook_events_table.c.payload).where(
                webhook_events_table.c.event_id == event_id
            )
        ).scalar_one()
    return str(value)


def age(engine: Engine, days: int) -> None:
    """Move every stored event ``days`` into the past."""
    t = webhook_events_table.c
    then = NOW - timedelta(days=days)
    with engine.begin() as conn:
        conn.execute(update(webhook_events_table).values(created_at=then))
        conn.execute(
            update(webhook_events_table)
            .where(t.processed_at.is_not(None))
            .values(processed_at=then)
        )


# -- prune ----------------------------------------------------------------------------------------


def test_prune_is_a_dry_run_unless_applied(h: Harness) -> None:
    """Old processed and ignored payloads are counted, then replaced by a stub naming the event."""
    paid = intent_succeeded("pi_1")
    ignored = make_event("customer.created", {"id": "cus_1", "padding": "x" * 5000})
    deferred = refunded("pi_2", 1000)
    for e in (paid, ignored, deferred):
        h.deliver(e)
    age(h.engine, 100)
    inbox = Inbox(h.engine, clock=lambda: NOW)

    dry = inbox.prune(timedelta(days=90))
    assert (dry.applied, dry.events) == (False, 2) and dry.payload_chars > 5000
    assert payload(h.engine, ignored["id"]) == encode_event(ignored).decode()

    done = inbox.prune(timedelta(days=90), apply=True, batch=1)
    assert (done.applied, done.events) == (True, 2)
    for e in (paid, ignored):
        stub = json.loads(payload(h.engine, e["id"]))
        assert payload(h.engine, e["id"]).startswith(PRUNED_MARK)
        assert (stub["id"], stub["type"]) == (e["id"], e["type"])
    assert payload(h.engine, deferred["id"]) == encode_event(deferred).decode()  # waits on
    assert inbox.prune(timedelta(days=90)).events == 0  # nothing left to prune


def test_recent_events_are_kept_whole(h: Harness) -> None:
    """Events inside the window keep their payload."""
    paid = intent_succeeded("pi_1")
    h.deliver(paid)
    age(h.engine, 10)
    report = Inbox(h.engine, clock=lambda: NOW).prune(timedelta(days=90), apply=True)
    assert report.events == 0
    assert payload(h.engine, paid["id"]) == encode_event(paid).decode()


def test_pruned_event_redelivered_is_already_processed(h: Harness) -> None:
    """Ids survive pruning: Stripe redelivering a pruned event changes nothing."""
    paid = intent_succeeded("pi_1")
    h.deliver(paid)
    age(h.engine, 100)
    Inbox(h.engine, clock=lambda: NOW).prune(timedelta(days=90), apply=True)
    counts = h.ledger_counts()
    assert h.deliver(paid).status == "already_processed"
    assert h.processor.replay(paid["id"]).status == "already_processed"
    assert h.ledger_counts() == counts and h.kinds() == ["payment_succeeded"]


def test_prune_refuses_a_window_shorter_than_a_day(h: Harness) -> None:
    """A typo like 90s must not wipe the inbox."""
    with pytest.raises(InvalidRequestError):
        Inbox(h.engine).prune(timedelta(hours=1))
    with pytest.raises(InvalidRequestError):
        parse_duration("ninety days")
    assert parse_duration("90d") == timedelta(days=90)
    assert parse_duration("12h") == timedelta(hours=12)


def test_events_prune_command(h: Harness) -> None:
    """`events prune --older-than 90d` counts; with --apply it prunes."""
    if h.engine.dialect.name != "sqlite":
        pytest.skip("the command builds its own engine; the schema-confined one is SQLite-only")
    h.deliver(intent_succeeded("pi_1"))
    age(h.engine, 400)  # the command uses the real clock
    url = h.engine.url.render_as_string(hide_password=False)
    out = io.StringIO()
    assert main(["events", "prune", "--older-than", "90d", "--url", url], out=Output(out)) == 0
    assert "would prune 1 event payload(s)" in out.getvalue() and "dry run" in out.getvalue()
    out = io.StringIO()
    args = ["events", "prune", "--older-than", "90d", "--apply", "--url", url]
    assert main(args, out=Output(out)) == 0
    assert "pruned 1 event payload(s)" in out.getvalue()


# -- stale deferred events ------------------------------------------------------------------------


def test_stale_deferred_events_are_listed_and_counted_in_stats(h: Harness) -> None:
    """A refund waiting 30 days for its payment shows in events list --stale and in stats."""
    old = refunded("pi_gone", 1000)
    h.deliver(old)
    age(h.engine, 30)
    fresh = refunded("pi_soon", 1000)
    h.deliver(fresh)
    inbox = Inbox(h.engine, clock=lambda: NOW)
    assert [e.event_id for e in inbox.stale()] == [old["id"]]
    assert inbox.count_stale() == 1 and inbox.count_stale(timedelta(days=60)) == 0
    report = AnalyticsService(h.engine, clock=lambda: NOW).summary(NOW - 60 * DAY)
    assert report.stale_deferred == 1
    assert report.as_dict()["operations"] == {"stale_deferred": 1, "outbox_pending": 0}


def test_events_list_stale_command(h: Harness) -> None:
    """`events list --stale --older-than 7d` prints only the old deferred events."""
    if h.engine.dialect.name != "sqlite":
        pytest.skip("the command builds its own engine; the schema-confined one is SQLite-only")
    old = refunded("pi_gone", 1000)
    h.deliver(old)
    h.deliver(intent_succeeded("pi_1"))
    age(h.engine, 400)
    url = h.engine.url.render_as_string(hide_password=False)
    out = io.StringIO()
    code = main(["events", "list", "--stale", "--older-than", "7d", "--url", url], out=Output(out))
    assert code == 0
    assert old["id"] in out.getvalue() and "payment_intent.succeeded" not in out.getvalue()


# -- bounded drains -------------------------------------------------------------------------------


class TransactionWatch:
    """Counts inbox updates per transaction and times each transaction."""

    def __init__(self, engine: Engine) -> None:
        self.current = 0
        self.most = 0
        self.started = 0.0
        self.longest = 0.0
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "commit", self._end)
        event.listen(engine, "before_cursor_execute", self._statement)
        self.engine = engine

    def _begin(self, conn: Any) -> None:
        self.current = 0
        self.started = time.perf_counter()

    def _end(self, conn: Any) -> None:
        self.most = max(self.most, self.current)
        self.longest = max(self.longest, time.perf_counter() - self.started)

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE MENTORPAY_WEBHOOK_EVENTS"):
            self.current += 1

    def close(self) -> None:
        event.remove(self.engine, "begin", self._begin)
        event.remove(self.engine, "commit", self._end)
        event.remove(self.engine, "before_cursor_execute", self._statement)


def deferred_rows(events: list[dict[str, Any]], waiting_for: str) -> list[dict[str, Any]]:
    """Inbox rows for events deferred on ``waiting_for`` (bulk-inserted: quicker than HTTP)."""
    return [
        {
            "event_id": e["id"],
            "type": e["type"],
            "status": "deferred",
            "waiting_for": waiting_for,
            "payload": encode_event(e).decode(),
            "attempts": 1,
            "last_error": None,
            "created_at": NOW,
            "processed_at": None,
        }
        for e in events
    ]


def test_thousands_of_deferred_events_drain_in_bounded_transactions(h: Harness) -> None:
    """3,000 events deferred on one payment all apply; no transaction applies more than N."""
    n, batch = 3000, 100
    applied: list[str] = []

    def handler(conn: Any, env: EventEnvelope) -> HandlerResult:
        applied.append(env.id)
        return HandlerResult("success")

    # A cheap registered handler: the bound is what is tested, not the cost of a posting.
    h.processor.register("mentorpay_test.deferred", handler)
    events = [
        make_event("mentorpay_test.deferred", {"id": f"obj_{k}"}, event_id=f"evt_d{k:05d}")
        for k in range(n)
    ]
    with h.engine.begin() as conn:
        conn.execute(insert(webhook_events_table), deferred_rows(events, "pi_1"))
    assert h.processor.drain_batch == batch  # the default
    watch = TransactionWatch(h.engine)
    try:
        result = h.deliver(intent_succeeded("pi_1"))
    finally:
        watch.close()
    assert result.status == "success"
    assert watch.most == batch  # full batches, never more
    assert sorted(applied) == sorted(e["id"] for e in events)
    with h.engine.connect() as conn:
        statuses = set(
            conn.execute(
                select(webhook_events_table.c.status).where(
                    webhook_events_table.c.waiting_for == "pi_1"
                )
            ).scalars()
        )
    assert statuses == {"processed"}


def test_refunds_drained_across_batches_add_up(h: Harness) -> None:
    """Cumulative refunds split over several drain transactions post exactly the total."""
    n = 230
    events = [
        refunded("pi_1", k * 10, created=1_000_000 + k, event_id=f"evt_r{k:05d}")
        for k in range(1, n + 1)
    ]
    with h.engine.begin() as conn:
        conn.execute(insert(webhook_events_table), deferred_rows(events, "pi_1"))
    assert h.deliver(intent_succeeded("pi_1")).status == "success"
    assert h.payment("pi_1")["amount_refunded"] == n * 10
    assert h.kinds().count("refund_applied") == n
    # 2,300 of 5,000 refunded: 90% of it comes out of the mentor's 4,500.
    assert h.ledger.balance("m1", "GBP").pending == Money(4500 - 2070, "GBP")
    assert h.ledger.verify().ok


def test_apply_deferred_continues_in_bounded_transactions(h: Harness) -> None:
    """apply_deferred on a service's own key drains everything, batch by batch."""
    ready: set[str] = set()

    def handler(conn: Any, env: EventEnvelope) -> HandlerResult:
        key = env.data.object["key"]
        if key not in ready:
            return HandlerResult("deferred", waiting_for=key)
        return HandlerResult("success")

    h.processor.register("mentorpay_test.keyed", handler)
    h.processor.drain_batch = 7
    for k in range(20):
        h.deliver(make_event("mentorpay_test.keyed", {"id": f"o{k}", "key": "tr_1"}))
    watch = TransactionWatch(h.engine)
    try:
        assert h.processor.apply_deferred("tr_1") == []  # not ready: re-deferred, no loop
        ready.add("tr_1")
        h.processor.apply_deferred("tr_1")
    finally:
        watch.close()
    assert watch.most <= 7
    assert {e.status for e in h.processor.list_events(limit=100)} == {"processed"}
