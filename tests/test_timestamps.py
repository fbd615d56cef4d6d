"""Timestamps are stored in one text format on SQLite, whichever path wrote them (issue 9).

Core writes through the column type's bind processor (``2026-03-01 12:00:00.000000``); a raw
driver write that let sqlite3 adapt the datetime would store ``2026-03-01 12:00:00+00:00``,
which sorts *before* the same instant in Core's format, so exact-instant comparisons go wrong.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mentorpay import BookingInfo, MentorPay, MentorpayConfig, Money, PlanInfo
from mentorpay.models import UTCDateTime, metadata
from mentorpay.testing import (
    FakeBilling,
    FakeGateway,
    InMemoryBookings,
    InMemoryPlans,
    OutboxMailer,
    charge,
    dispute,
    encode_event,
    make_event,
    sign_payload,
    sqlite_engine,
)

SECRET = "whsec_timestamps"
#: A whole second: where sqlite3's own adapter and Core's format disagree on ordering.
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
CORE_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")


def _deliver(mp: MentorPay, event_type: str, obj: dict[str, Any]) -> str:
    body = encode_event(make_event(event_type, obj))
    return mp.webhooks.process(body, sign_payload(body, SECRET)).status


def _full_flow(tmp_path: Path) -> tuple[MentorPay, Path]:
    """Checkout, payment with receipts, partial refund, dispute won, release, a paid payout,
    a mentor's connected account, a cancellation, plans and a credit spent."""
    engine = sqlite_engine(tmp_path, "stamps.db")
    bookings = InMemoryBookings(
        [
            BookingInfo("1", "u7", "m3", Money(10000, "GBP"), "confirmed"),
            BookingInfo("2", "u7", "m3", Money(5000, "GBP"), "confirmed"),
            BookingInfo(
                "3", "u7", "m3", Money(5000, "GBP"), "confirmed", starts_at=NOW + timedelta(days=1)
            ),
            BookingInfo("4", "u7", "m3", None, "confirmed"),
        ]
    )
    plans = InMemoryPlans(
        [
            PlanInfo("monthly", "m3", "subscription", Money(8000, "GBP"), 4),
            PlanInfo("pack", "m3", "package", Money(20000, "GBP"), 5),
        ]
    )
    fake = FakeGateway(clock=lambda: NOW)
    mp = MentorPay(
        MentorpayConfig(webhook_secrets=[SECRET]),
        engine,
        bookings=bookings,
        gateway=fake,
        clock=lambda: NOW,
        plans=plans,
    )
    # Receipts: the outbox and the sent-message record are written too.
    mp.send_receipts(OutboxMailer(), lambda user_id: f"{user_id}@example.test")
    pis = []
    for booking in ("1", "2"):
        info = mp.checkout.create_session(
            booking, user_id="u7", success_url="https://a.test/ok", cancel_url="https://a.test/no"
        )
        session = fake.complete_checkout_session(info.session_id)
        assert _deliver(mp, "checkout.session.completed", session) == "success"
        pis.append(str(session["payment_intent"]))
    mp.refunds.refund(pis[0], Money(2000, "GBP"))  # a refund request row
    refund = charge(payment_intent=pis[0], amount=10000, amount_refunded=2000)
    assert _deliver(mp, "charge.refunded", refund) == "success"
    opened = dispute(payment_intent=pis[1], amount=5000)
    assert _deliver(mp, "charge.dispute.created", opened) == "success"
    assert _deliver(mp, "charge.dispute.closed", {**opened, "status": "won"}) == "success"
    mp.ledger.release("1")
    mp.ledger.release_due(NOW + timedelta(days=8))
    payout = mp.payouts.request("m3", Money(1000, "GBP"), "bank")
    mp.payouts.approve(payout.id, approver="admin")
    mp.payouts.execute(payout.id)
    mp.payouts.mark_paid(payout.id, reference="wire-1")
    mp.accounts.onboard("m3", refresh_url="https://a.test/r", return_url="https://a.test/ok")
    mp.bookings.cancel("3", by="mentor")  # unpaid: a cancellation row, nothing refunded
    mp.reconcile(NOW - timedelta(days=1), NOW + timedelta(days=1))  # a reconcile run row
    # Plans: a package and a subscription bought, a credit spent and its session released.
    urls = {"success_url": "https://a.test/ok", "cancel_url": "https://a.test/no"}
    package = mp.checkout.create_plan_session("pack", user_id="u7", **urls)
    paid = fake.complete_checkout_session(package.session_id)
    assert _deliver(mp, "checkout.session.completed", paid) == "success"
    monthly = mp.checkout.create_plan_session("monthly", user_id="u7", **urls)
    for event_type, obj in FakeBilling(fake, lambda: NOW).subscribe(monthly.session_id):
        _deliver(mp, event_type, obj)
    mp.plans.consume(package.plan_purchase_id, "4")
    mp.ledger.release("4")
    mp.plans.cancel(monthly.plan_purchase_id, user_id="u7", at_period_end=False)
    assert mp.ledger.verify().ok  # a clean verify writes the ledger checkpoint
    return mp, tmp_path / "stamps.db"


def test_every_timestamp_column_is_stored_in_cores_format(tmp_path: Path) -> None:
    """After a full flow, every timestamp on SQLite reads like Core's: no +00:00 variants."""
    mp, path = _full_flow(tmp_path)
    mp.engine.dispose()
    columns = [
        (table.name, column.name)
        for table in metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, UTCDateTime)
    ]
    stored: dict[str, set[str]] = {}
    with sqlite3.connect(path) as db:
        for table, column in columns:
            for (value,) in db.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"):
                stored.setdefault(f"{table}.{column}", set()).add(value)
    # The flow really wrote every table's timestamps.
    assert {t for t, _ in columns} == {key.split(".")[0] for key in stored}
    odd = {k: v for k, v in stored.items() if not all(CORE_FORMAT.match(x) for x in v)}
    assert odd == {}


def test_a_payment_created_exactly_at_since_is_counted(tmp_path: Path) -> None:
    """stats(since=the payment's creation instant) counts it (half-open [since, until))."""
    mp, _ = _full_flow(tmp_path)
    report = mp.stats(NOW, NOW + timedelta(seconds=1))
    counts = {row.currency: row.payments for row in report.currencies}
    assert counts == {"GBP": 4}  # two bookings, a package and a subscription's first period
