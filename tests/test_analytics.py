"""Payment metrics: volume, commission, refunds, disputes and checkout conversion per period."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from mentorpay import BookingInfo, InvalidRequestError, MentorPay, MentorpayConfig, Money
from mentorpay.cli import Output, main
from mentorpay.testing import (
    FakeGateway,
    InMemoryBookings,
    encode_event,
    make_event,
    sign_payload,
)

SECRET = "whsec_stats"


def deliver(mp: MentorPay, event_type: str, obj: dict[str, Any]) -> str:
    """A signed webhook, as Stripe sends it."""
    body = encode_event(make_event(event_type, obj))
    return mp.webhooks.process(body, sign_payload(body, SECRET)).status


def build(engine: Engine) -> tuple[MentorPay, FakeGateway]:
    """A facade with four GBP bookings, one JPY booking and a fake Stripe."""
    prices = {"1": "50.00", "2": "100.00", "3": "150.00", "4": "20.00"}
    bookings = [
        BookingInfo(b, "u7", "m3", Money.parse(p, "GBP"), "confirmed") for b, p in prices.items()
    ]
    bookings.append(BookingInfo("5", "u7", "m4", Money.parse("3000", "JPY"), "confirmed"))
    fake = FakeGateway()
    mp = MentorPay(
        MentorpayConfig(webhook_secrets=[SECRET]),
        engine,
        bookings=InMemoryBookings(bookings),
        gateway=fake,
    )
    return mp, fake


def pay(mp: MentorPay, fake: FakeGateway, booking_id: str) -> str:
    """Checkout and pay one booking; returns its payment intent."""
    info = mp.checkout.create_session(
        booking_id, user_id="u7", success_url="https://a.test/ok", cancel_url="https://a.test/no"
    )
    session = fake.complete_checkout_session(info.session_id)
    assert deliver(mp, "checkout.session.completed", session) == "success"
    return str(session["payment_intent"])


def test_summary_counts_volume_refunds_disputes_and_conversion(engine: Engine) -> None:
    """Per-currency volume, net commission, refunds, disputes and checkout conversion add up."""
    mp, fake = build(engine)
    start = datetime.now(UTC) - timedelta(minutes=1)
    pi1, pi2, pi3 = (pay(mp, fake, b) for b in ("1", "2", "3"))
    pay(mp, fake, "5")
    unpaid = mp.checkout.create_session(
        "4", user_id="u7", success_url="https://a.test/ok", cancel_url="https://a.test/no"
    )
    assert deliver(mp, "checkout.session.expired", fake.session(unpaid.session_id)) == "success"
    mp.refunds.refund(pi2, Money.parse("40.00", "GBP"))
    deliver(mp, "charge.refunded", fake.charge(fake.payment_intent(pi2)["latest_charge"]))
    opened = fake.open_dispute(pi3)
    deliver(mp, "charge.dispute.created", opened)
    deliver(mp, "charge.dispute.closed", fake.close_dispute(opened["id"], won=False))
    deliver(mp, "charge.dispute.created", fake.open_dispute(pi1))

    report = mp.stats(start)
    gbp, jpy = report.currencies
    assert (gbp.currency, gbp.payments, gbp.gross) == ("GBP", 3, Money(30000, "GBP"))
    assert gbp.platform_fee == Money(3000, "GBP")
    assert gbp.refunded == Money(4000 + 15000, "GBP")
    assert gbp.net_commission == Money(3000 - 400 - 1500, "GBP")
    assert gbp.mentor_earnings == Money(27000 - 3600 - 13500, "GBP")
    assert (gbp.payments_refunded, gbp.disputes_open, gbp.disputes_lost) == (1, 1, 1)
    assert gbp.refund_rate_bps == 6333
    assert (jpy.currency, jpy.payments, jpy.gross) == ("JPY", 1, Money(3000, "JPY"))
    assert (report.checkout.created, report.checkout.completed) == (5, 4)
    assert (report.checkout.expired, report.checkout.conversion_bps) == (1, 8000)
    assert mp.stats(start + timedelta(days=1), start + timedelta(days=2)).currencies == []


def test_summary_refuses_naive_or_reversed_periods(engine: Engine) -> None:
    """A naive datetime or an empty period is an InvalidRequestError (400)."""
    mp, _ = build(engine)
    now = datetime.now(UTC)
    with pytest.raises(InvalidRequestError):
        mp.stats(datetime(2026, 1, 1))  # naive on purpose
    with pytest.raises(InvalidRequestError):
        mp.stats(now, now - timedelta(days=1))


def test_stats_command_prints_table_and_json(tmp_path: Path) -> None:
    """`mentorpay stats` prints per-currency figures and the checkout funnel, or JSON."""
    db = tmp_path / "demo.db"
    out, err = io.StringIO(), io.StringIO()
    assert main(["demo", "--database", str(db)], out=Output(out, err)) == 0
    out = io.StringIO()
    url = f"sqlite:///{db}"
    assert main(["stats", "--since", "2000-01-01", "--url", url], out=Output(out, err)) == 0
    text = out.getvalue()
    assert "GBP" in text
    assert "checkout: 5 sessions, 5 paid" in text
    out = io.StringIO()
    assert main(["stats", "--since", "2000-01-01", "--json", "--url", url], out=Output(out)) == 0
    data = json.loads(out.getvalue())
    assert {c["currency"] for c in data["currencies"]} == {"GBP", "JPY"}
