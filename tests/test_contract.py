"""DESIGN.md section 2, the public contract, called exactly as written there."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mentorpay import (
    BookingInfo,
    CommissionPolicy,
    CurrencyMismatchError,
    InvalidAmountError,
    MentorPay,
    MentorpayConfig,
    Money,
    Split,
    allocate,
)
from mentorpay.testing import (
    FakeGateway,
    InMemoryBookings,
    make_event,
    sign_payload,
    sqlite_engine,
)


def test_money_contract() -> None:
    """Money, parse, str, mixed currencies and floats behave as the contract says."""
    assert Money(5000, "GBP").amount == 5000
    assert Money.parse("50.00", "gbp") == Money(5000, "GBP")
    with pytest.raises(InvalidAmountError):
        Money.parse("50.001", "gbp")
    assert str(Money(5000, "GBP")) == "50.00 GBP"
    assert str(Money(1000, "JPY")) == "1000 JPY"
    with pytest.raises(CurrencyMismatchError):
        Money(1, "GBP") + Money(1, "USD")
    with pytest.raises(TypeError):
        Money(1, "GBP") + 1.5  # type: ignore[operator]
    assert allocate(Money(100, "USD"), [1, 1, 1]) == [
        Money(34, "USD"),
        Money(33, "USD"),
        Money(33, "USD"),
    ]


def test_commission_contract() -> None:
    """split() and split_refund() give the contract's numbers and add up exactly."""
    policy = CommissionPolicy(rate_bps=1000)
    s = policy.split(Money(5000, "GBP"))
    assert isinstance(s, Split)
    assert s.platform_fee == Money(500, "GBP")
    assert s.mentor_payout == Money(4500, "GBP")
    first = policy.split_refund(s, already_refunded=Money(0, "GBP"), refund=Money(2000, "GBP"))
    rest = policy.split_refund(s, already_refunded=Money(2000, "GBP"), refund=Money(3000, "GBP"))
    assert first.platform_fee + rest.platform_fee == s.platform_fee
    assert first.mentor_payout + rest.mentor_payout == s.mentor_payout


def test_facade_contract(tmp_path: Path) -> None:
    """The facade calls of the contract, end to end on SQLite with FakeGateway."""
    config = MentorpayConfig(
        webhook_secrets=["whsec_contract"],
        stripe_secret_key=None,
        commission=CommissionPolicy(rate_bps=1000),
        webhook_tolerance=300,
    )
    booking = BookingInfo(
        id="42",
        mentee_id="7",
        mentor_id="3",
        price=Money(5000, "GBP"),
        status="confirmed",
        mentor_stripe_account=None,
    )
    bookings = InMemoryBookings([booking])
    bookings.add(
        BookingInfo(
            id="43", mentee_id="7", mentor_id="3", price=Money(100, "GBP"), status="pending"
        )
    )
    gateway = FakeGateway()
    mp = MentorPay(config, sqlite_engine(tmp_path), bookings=bookings, gateway=gateway)
    mp.create_schema()

    info = mp.checkout.create_session(
        "42", user_id="7", success_url="https://x.example/ok", cancel_url="https://x.example/no"
    )
    session = gateway.complete_checkout_session(info.session_id)
    body = make_event("checkout.session.completed", session)
    raw = json.dumps(body).encode()
    result = mp.webhooks.process(raw, sign_payload(raw, "whsec_contract"))
    assert (result.status, result.event_id, result.event_type, result.http_status) == (
        "success",
        body["id"],
        "checkout.session.completed",
        200,
    )
    view = mp.ledger.balance("3", "GBP")
    assert (view.pending, view.available, view.reserved, view.withdrawn) == (
        Money(4500, "GBP"),
        Money(0, "GBP"),
        Money(0, "GBP"),
        Money(0, "GBP"),
    )
    assert view.total_earned == Money(4500, "GBP")
    assert [p.booking_id for p in mp.ledger.history("3", role="mentor", limit=50).items] == ["42"]
    assert mp.ledger.history("7", role="mentee", limit=50, cursor=None).next_cursor is None
    assert mp.ledger.release_due(datetime.now(UTC) + timedelta(days=8))
    assert mp.ledger.release("42")[0].created is False  # already released by the hold period
    payout = mp.payouts.request("3", Money(1000, "GBP"))
    mp.payouts.approve(payout.id, approver="admin")
    mp.payouts.cancel(payout.id)
    report = mp.ledger.verify()
    assert report.ok
    assert report.problems == []


def test_from_env_contract(tmp_path: Path) -> None:
    """MentorPay.from_env reads the documented variables."""
    mp = MentorPay.from_env(
        bookings=InMemoryBookings(),
        gateway=FakeGateway(),
        environ={
            "STRIPE_WEBHOOK_SECRET": "whsec_a,whsec_b",
            "MENTORPAY_DATABASE_URL": f"sqlite:///{tmp_path / 'env.db'}",
            "MENTORPAY_COMMISSION_BPS": "1200",
        },
    )
    assert len(mp.config.webhook_secrets) == 2
    assert mp.config.commission.rate_bps == 1200
    mp.engine.dispose()
