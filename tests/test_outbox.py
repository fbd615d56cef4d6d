"""The outbox: effects stored with the ledger change, delivered at least once after commit,
with stable ids; a process killed between commit and callback loses nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text, update

from mentorpay import BookingInfo, MentorPay, MentorpayConfig, Money
from mentorpay._clock import utcnow
from mentorpay.cli import Output, main
from mentorpay.commission import CommissionPolicy
from mentorpay.events import Effect
from mentorpay.models import outbox_table
from mentorpay.notifications import EmailMessage
from mentorpay.outbox import Outbox, with_ids
from mentorpay.testing import (
    FakeGateway,
    InMemoryBookings,
    OutboxMailer,
    charge,
    encode_event,
    make_event,
    payment_intent,
    sign_payload,
)
from tests.conftest import POSTGRES_URL
from tests.fixtures.webhook_support import intent_succeeded, make_harness

SECRET = "whsec_outbox"
ADDRESSES = {"u7": "mentee@example.test", "m3": "m@example.test"}
ROOT = Path(__file__).resolve().parent.parent


def facade(engine: Engine, *, later: timedelta = timedelta(0)) -> MentorPay:
    """A MentorPay with booking 42 (u7 pays m3 50.00 GBP), its clock ``later`` ahead."""
    booking = BookingInfo("42", "u7", "m3", Money(5000, "GBP"), "confirmed")
    return MentorPay(
        MentorpayConfig(webhook_secrets=[SECRET]),
        engine,
        bookings=InMemoryBookings([booking]),
        gateway=FakeGateway(),
        clock=lambda: utcnow() + later,
    )


def paid_event(event_id: str = "evt_paid_42") -> dict[str, Any]:
    """payment_intent.succeeded for booking 42."""
    meta = {"booking_id": "42", "mentor_id": "m3", "mentee_id": "u7"}
    return make_event(
        "payment_intent.succeeded",
        payment_intent(id="pi_42", amount=5000, metadata=meta),
        event_id=event_id,
    )


def deliver(mp: MentorPay, event: dict[str, Any]) -> str:
    """Sign and process ``event``."""
    body = encode_event(event)
    return mp.webhooks.process(body, sign_payload(body, SECRET)).status


def outbox_rows(engine: Engine) -> list[dict[str, Any]]:
    """Every outbox row, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(outbox_table).order_by(outbox_table.c.id)).all()
    return [dict(r._mapping) for r in rows]


def subjects(mailer: OutboxMailer) -> list[str]:
    """Subjects of the messages sent, sorted."""
    return sorted(m.subject for m in mailer.messages)


# -- stored with the change, marked after delivery ----------------------------------------------


def test_effect_is_stored_in_the_event_transaction_and_marked_delivered(engine: Engine) -> None:
    """A payment's effect has a stable id, is stored with the payment and marked delivered."""
    h = make_harness(engine)
    event = intent_succeeded("pi_1")
    result = h.deliver(event)
    assert [e.id for e in result.effects] == [f"{event['id']}:payment_succeeded:0"]
    assert [e.id for e in h.effects] == [f"{event['id']}:payment_succeeded:0"]
    (row,) = outbox_rows(engine)
    assert (row["effect_id"], row["kind"], row["status"]) == (
        f"{event['id']}:payment_succeeded:0",
        "payment_succeeded",
        "delivered",
    )
    assert row["delivered_at"] is not None and row["attempts"] == 1


def test_drained_effects_carry_the_deferred_events_ids(engine: Engine) -> None:
    """A refund applied with its payment gets an id from the refund's own event."""
    h = make_harness(engine)
    refund = make_event(
        "charge.refunded", charge(id="ch_pi_1", payment_intent="pi_1", amount_refunded=1000)
    )
    assert h.deliver(refund).status == "deferred"
    paid = intent_succeeded("pi_1")
    h.deliver(paid)
    assert sorted(r["effect_id"] for r in outbox_rows(engine)) == sorted(
        [f"{paid['id']}:payment_succeeded:0", f"{refund['id']}:refund_applied:0"]
    )


def test_with_ids_is_deterministic_and_keeps_given_ids() -> None:
    """Ids count per kind within an event; an effect that has an id keeps it."""
    effects = [
        Effect("dispute_opened", {}),
        Effect("dispute_closed", {}),
        Effect("payout_settled", {}, id="payout:7:paid"),
        Effect("dispute_closed", {}),
    ]
    assert [e.id for e in with_ids("evt_1", effects)] == [
        "evt_1:dispute_opened:0",
        "evt_1:dispute_closed:0",
        "payout:7:paid",
        "evt_1:dispute_closed:1",
    ]
    assert with_ids("evt_1", effects) == with_ids("evt_1", effects)
    assert len(with_ids("e" * 300, effects)[0].id) <= 255


def test_kinds_nobody_listens_to_are_not_stored(engine: Engine) -> None:
    """Without callbacks the hot path writes no outbox rows."""
    mp = facade(engine)
    assert deliver(mp, paid_event()) == "success"
    assert outbox_rows(engine) == []


# -- crash and retry ----------------------------------------------------------------------------


def _database_of(engine: Engine) -> tuple[str, str]:
    """The URL and (PostgreSQL) schema a subprocess needs to reach the test database."""
    if engine.dialect.name == "sqlite":
        return engine.url.render_as_string(hide_password=False), ""
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    assert POSTGRES_URL is not None
    return POSTGRES_URL, str(schema)


def test_process_killed_between_commit_and_callback_sends_the_receipt_once(
    engine: Engine, tmp_path: Path
) -> None:
    """SIGKILL inside the callback: the payment is kept, and a new process mails it once."""
    body_file = tmp_path / "event.json"
    body_file.write_bytes(encode_event(paid_event()))
    url, schema = _database_of(engine)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fixtures.outbox_crash", url, schema, str(body_file), SECRET],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (row,) = outbox_rows(engine)
    assert (row["status"], row["kind"]) == ("pending", "payment_succeeded")

    # The next process: within the dead writer's claim it leaves the row alone...
    mailer = OutboxMailer()
    now = facade(engine)
    now.send_receipts(mailer, ADDRESSES.get)
    assert now.outbox.deliver_pending().delivered == 0
    assert mailer.messages == []
    # ...and once the claim ran out, it delivers it: both messages, once.
    later = facade(engine, later=timedelta(minutes=5))
    later.send_receipts(mailer, ADDRESSES.get)
    report = later.outbox.deliver_pending()
    assert (report.delivered, report.failed, report.pending) == (1, 0, 0)
    assert subjects(mailer) == [
        "Receipt: 50.00 GBP for booking 42",
        "You earned 45.00 GBP from booking 42",
    ]
    assert all(m.message_id for m in mailer.messages)
    assert later.outbox.deliver_pending().delivered == 0
    assert deliver(later, paid_event()) == "already_processed"
    assert len(mailer.messages) == 2
    assert later.ledger.balance("m3", "GBP").pending == Money(4500, "GBP")


class FlakyMailer:
    """Fails for the addresses in ``down``; otherwise keeps messages."""

    def __init__(self, *down: str) -> None:
        self.down = set(down)
        self.messages: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> None:
        if message.to in self.down:
            raise ConnectionError(f"smtp refused {message.to}")
        self.messages.append(message)


def test_raising_callback_leaves_the_effect_pending_and_a_later_run_delivers_it(
    engine: Engine,
) -> None:
    """The mentor's note fails: the effect stays pending; the retry sends only that note."""
    mailer = FlakyMailer("m@example.test")
    mp = facade(engine)
    mp.send_receipts(mailer, ADDRESSES.get)
    assert deliver(mp, paid_event()) == "success"
    (row,) = outbox_rows(engine)
    assert row["status"] == "pending" and "smtp refused" in row["last_error"]
    assert [m.to for m in mailer.messages] == ["mentee@example.test"]

    mailer.down.clear()
    report = mp.outbox.deliver_pending()
    assert (report.delivered, report.failed, report.pending) == (1, 0, 0)
    # The receipt went out once; the retry sent only the note that had failed.
    assert sorted(m.to for m in mailer.messages) == ["m@example.test", "mentee@example.test"]
    (row,) = outbox_rows(engine)
    assert row["status"] == "delivered" and row["attempts"] == 2


def test_redelivery_in_a_new_process_skips_messages_already_sent(engine: Engine) -> None:
    """The sent-message record is in the database: another process does not resend."""
    first = FlakyMailer()
    mp = facade(engine)
    mp.send_receipts(first, ADDRESSES.get)
    deliver(mp, paid_event())
    # Pretend the marking was lost (a crash right after the callbacks ran).
    with engine.begin() as conn:
        conn.execute(update(outbox_table).values(status="pending", claimed_until=None))
    second = OutboxMailer()
    other = facade(engine)
    other.send_receipts(second, ADDRESSES.get)
    assert other.outbox.deliver_pending().delivered == 1
    assert len(first.messages) == 2 and second.messages == []


def test_payout_settlement_is_stored_in_its_own_transaction(engine: Engine) -> None:
    """A manual payout marked paid stores payout:<id>:paid; a failed callback is retried."""
    mp = facade(engine)
    mp.ledger.record_payment(
        payment_intent_id="pi_p",
        booking_id="b-p",
        mentor_id="m3",
        mentee_id="u7",
        gross=Money(10000, "GBP"),
        policy=CommissionPolicy(rate_bps=1000),
    )
    mp.ledger.release_payment("pi_p")
    seen: list[str] = []
    broken = {"on": True}

    def notify(effect: Effect) -> None:
        if broken["on"]:
            raise RuntimeError("queue down")
        seen.append(effect.id)

    mp.on("payout_settled", notify)
    view = mp.payouts.request("m3", Money(5000, "GBP"))
    mp.payouts.approve(view.id, approver="admin")
    mp.payouts.execute(view.id)
    mp.payouts.mark_paid(view.id, reference="BANK-1")
    (row,) = outbox_rows(engine)
    assert (row["effect_id"], row["status"]) == (f"payout:{view.id}:paid", "pending")
    broken["on"] = False
    assert mp.outbox.deliver_pending().delivered == 1
    assert seen == [f"payout:{view.id}:paid"]


def test_concurrent_deliverers_do_not_double_deliver(engine: Engine) -> None:
    """Two processes' deliver_pending at once: every effect delivered exactly once."""
    n = 120
    seen: list[str] = []
    lock = threading.Lock()

    def record(effect: Effect) -> None:
        time.sleep(0.002)  # long enough for the two deliverers to overlap
        with lock:
            seen.append(effect.id)

    writer = Outbox(engine)
    writer.on("payment_failed", record)
    with engine.begin() as conn:
        writer.stage(conn, with_ids("evt_seed", [Effect("payment_failed", {})] * n))
        conn.execute(update(outbox_table).values(claimed_until=None))  # as after a crash

    deliverers = [Outbox(engine), Outbox(engine)]
    for d in deliverers:
        d.on("payment_failed", record)
    reports: list[Any] = []
    threads = [
        threading.Thread(target=lambda d=d: reports.append(d.deliver_pending(batch=10)))
        for d in deliverers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == n and len(set(seen)) == n
    assert sum(r.delivered for r in reports) == n
    assert all(r["status"] == "delivered" for r in outbox_rows(engine))


# -- the command --------------------------------------------------------------------------------


def test_outbox_run_delivers_through_the_hosts_app(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mentorpay outbox run` reports pending effects, and delivers them given --app."""
    import io

    mailer = FlakyMailer("mentee@example.test", "m@example.test")
    mp = facade(engine)
    mp.send_receipts(mailer, ADDRESSES.get)
    deliver(mp, paid_event())
    assert outbox_rows(engine)[0]["status"] == "pending"

    url, schema = _database_of(engine)
    if schema:
        pytest.skip("the command builds its own engine; the schema-confined one is SQLite-only")
    out, err = io.StringIO(), io.StringIO()
    code = main(["outbox", "run", "--url", url], out=Output(out, err))
    assert code == 2 and "1 effect(s) pending (payment_succeeded 1)" in out.getvalue()
    assert "--app" in err.getvalue()

    module = tmp_path / "hostapp_outbox.py"
    module.write_text("MP = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import hostapp_outbox  # type: ignore[import-not-found]

    mailer.down.clear()
    hostapp_outbox.MP = mp
    out = io.StringIO()
    code = main(["outbox", "run", "--app", "hostapp_outbox:MP"], out=Output(out, err))
    assert code == 0, err.getvalue()
    assert "delivered 1 effect(s), 0 failed; 0 pending" in out.getvalue()
    assert len(mailer.messages) == 2


def test_marking_leaves_sqlite_connections_fully_synchronous(tmp_path: Path) -> None:
    """The non-durable mark commit restores synchronous=FULL before the connection is reused."""
    from sqlalchemy import event

    from mentorpay.testing import sqlite_engine

    engine = sqlite_engine(tmp_path)
    levels: list[int] = []

    def on_checkin(dbapi_connection: Any, record: Any) -> None:
        levels.append(int(dbapi_connection.execute("PRAGMA synchronous").fetchone()[0]))

    event.listen(engine, "checkin", on_checkin)
    try:
        mp = facade(engine)
        mp.send_receipts(OutboxMailer(), ADDRESSES.get)
        assert deliver(mp, paid_event()) == "success"
        assert outbox_rows(engine)[0]["status"] == "delivered"
    finally:
        event.remove(engine, "checkin", on_checkin)
        engine.dispose()
    assert levels and set(levels) == {2}  # 2 = FULL
