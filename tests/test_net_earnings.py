"""Net earnings: Stripe's fees read from balance transactions in Stripe's real shapes, posted on
the ``stripe_fees`` platform account exactly once (``verify`` stays exact), reconciled, and
shown by ``stats`` as gross commission, Stripe fees and net."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses
import stripe
from sqlalchemy import Engine

from mentorpay import BookingInfo, MentorpayConfig, Money
from mentorpay.app import MentorPay
from mentorpay.commission import CommissionPolicy
from mentorpay.errors import CurrencyMismatchError
from mentorpay.gateway import StripeGateway
from mentorpay.ledger import LedgerService
from mentorpay.stripe_objects import GatewayBalanceTransaction, GatewayCharge, GatewayDispute
from mentorpay.testing import FakeGateway, InMemoryBookings, encode_event, make_event, sign_payload
from mentorpay.testing._fake_stripe import DISPUTE_FEE, processing_fee

API = "https://api.stripe.com"
SECRET = "whsec_fees"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

#: A balance transaction as Stripe's API returns it (2024-2026 API versions).
TXN = {
    "id": "txn_1",
    "object": "balance_transaction",
    "amount": 5000,
    "available_on": 1765000000,
    "created": 1764590400,
    "currency": "gbp",
    "description": None,
    "exchange_rate": None,
    "fee": 95,
    "fee_details": [
        {
            "amount": 95,
            "application": None,
            "currency": "gbp",
            "description": "Stripe processing fees",
            "type": "stripe_fee",
        }
    ],
    "net": 4905,
    "reporting_category": "charge",
    "source": "ch_1",
    "status": "pending",
    "type": "charge",
}


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """Stripe's API, intercepted."""
    with responses.RequestsMock() as mock:
        yield mock


def test_fields_read_exist_on_stripes_typed_classes() -> None:
    """Every field read from balance transactions, charges and disputes is the SDK's."""
    sdk = set(stripe.BalanceTransaction.__annotations__) | {"id", "object"}
    read = {
        f.validation_alias or name for name, f in GatewayBalanceTransaction.model_fields.items()
    }
    assert read - {"raw"} <= sdk
    assert set(TXN) <= sdk
    assert "balance_transaction" in stripe.Charge.__annotations__
    assert GatewayCharge.model_fields["balance_transaction_id"].validation_alias == (
        "balance_transaction"
    )
    assert "balance_transactions" in stripe.Dispute.__annotations__
    assert "balance_transactions" in GatewayDispute.model_fields


def paid_intent(fake: FakeGateway) -> dict[str, Any]:
    """A succeeded 50.00 GBP payment intent ``pi_1`` at the fake, with its charge."""
    return fake.add_payment_intent(
        {
            "id": "pi_1",
            "amount": 5000,
            "currency": "gbp",
            "status": "succeeded",
            "metadata": {},
            "created": int(NOW.timestamp()),
        }
    )


def test_fake_balance_transactions_have_stripes_shape() -> None:
    """The fake's charges and disputes carry balance transactions with only Stripe's fields."""
    fake = FakeGateway(clock=lambda: NOW)
    pi = paid_intent(fake)
    charge = fake.retrieve_charge(pi["latest_charge"])
    assert charge.balance_transaction_id is not None
    txn = fake.retrieve_balance_transaction(charge.balance_transaction_id)
    assert set(txn.raw) <= set(stripe.BalanceTransaction.__annotations__) | {"id", "object"}
    assert (txn.fee, txn.net, txn.source_id) == (processing_fee(5000), 5000 - txn.fee, charge.id)
    dispute = GatewayDispute.from_dict(fake.open_dispute("pi_1"))
    assert [t.fee for t in dispute.balance_transactions] == [DISPUTE_FEE]


def test_balance_transaction_fetch_over_http(http: responses.RequestsMock) -> None:
    """GET /v1/balance_transactions/txn_1 with no body and no idempotency key reads the fee."""
    http.get(f"{API}/v1/balance_transactions/txn_1", json=TXN)
    txn = StripeGateway("sk_test_123", max_network_retries=0).retrieve_balance_transaction("txn_1")
    (call,) = http.calls
    assert call.request.method == "GET"
    assert call.request.body is None
    assert "Idempotency-Key" not in call.request.headers
    assert call.request.headers["Authorization"] == "Bearer sk_test_123"
    assert (txn.fee_money, txn.type, txn.source_id) == (Money(95, "GBP"), "charge", "ch_1")


def recorded(engine: Engine) -> LedgerService:
    """A 50.00 GBP payment pi_1 (charge ch_1) split 5.00 / 45.00."""
    ledger = LedgerService(engine, clock=lambda: NOW)
    ledger.record_payment(
        payment_intent_id="pi_1",
        booking_id="42",
        mentor_id="3",
        mentee_id="7",
        gross=Money(5000, "GBP"),
        policy=CommissionPolicy(rate_bps=1000),
        charge_id="ch_1",
    )
    return ledger


def test_stripe_fee_is_a_platform_cost_posted_once(engine: Engine) -> None:
    """A fee posts clearing -> stripe_fees once per balance transaction; a return reverses it."""
    ledger = recorded(engine)
    first = ledger.record_stripe_fee("pi_1", "txn_1", Money(95, "GBP"))
    again = ledger.record_stripe_fee("pi_1", "txn_1", Money(95, "GBP"))
    assert (first.created, again.created) == (True, False)
    ledger.record_stripe_fee("pi_1", "txn_dp", Money(1500, "GBP"))
    ledger.record_stripe_fee("pi_1", "txn_dp_back", Money(-1500, "GBP"))
    assert ledger.stripe_fees("GBP") == Money(95, "GBP")
    assert ledger.platform_commission("GBP") == Money(500, "GBP")
    assert ledger.balance("3", "GBP").pending == Money(4500, "GBP")
    report = ledger.verify()
    assert report.ok, report.problems
    with pytest.raises(CurrencyMismatchError):
        ledger.record_stripe_fee("pi_1", "txn_x", Money(95, "EUR"))
    assert ledger.verify().ok


def deliver(mp: MentorPay, event_type: str, obj: dict[str, Any]) -> str:
    """A signed webhook; returns its status."""
    body = encode_event(make_event(event_type, obj))
    return mp.webhooks.process(body, sign_payload(body, SECRET)).status


def test_reconcile_posts_fees_and_stats_show_net(engine: Engine) -> None:
    """Reconcile finds the processing and dispute fees, posts them once; stats show the net."""
    fake = FakeGateway(clock=lambda: NOW)
    booking = BookingInfo("42", "7", "3", Money(5000, "GBP"), "confirmed")
    config = MentorpayConfig(webhook_secrets=[SECRET], reconcile_fees=True)
    mp = MentorPay(
        config, engine, bookings=InMemoryBookings([booking]), gateway=fake, clock=lambda: NOW
    )
    info = mp.checkout.create_session(
        "42", user_id="7", success_url="https://a.test/ok", cancel_url="https://a.test/no"
    )
    session = fake.complete_checkout_session(info.session_id)
    assert deliver(mp, "checkout.session.completed", session) == "success"
    dispute = fake.open_dispute(session["payment_intent"])
    assert deliver(mp, "charge.dispute.created", dispute) == "success"
    since, until = NOW - timedelta(hours=1), NOW + timedelta(hours=1)
    found = mp.reconcile(since, until)
    fees = found.kinds["fees"]
    assert [d.stripe_amount for d in fees.missing_in_ledger] == [
        Money(processing_fee(5000), "GBP"),
        Money(DISPUTE_FEE, "GBP"),
    ]
    applied = mp.reconcile(since, until, apply=True)
    assert [a.status for a in applied.applied] == ["success", "success"]
    assert mp.reconcile(since, until).kinds["fees"].items == []
    total = processing_fee(5000) + DISPUTE_FEE
    assert mp.ledger.stripe_fees("GBP") == Money(total, "GBP")
    assert mp.ledger.verify().ok
    (gbp,) = mp.stats(since, until).currencies
    assert (gbp.gross_commission, gbp.fees) == (Money(500, "GBP"), Money(total, "GBP"))
    assert gbp.net_earnings == Money(500 - total, "GBP")
    assert gbp.as_dict()["net_earnings"] == 500 - total


def test_reconcile_reports_a_fee_that_differs_from_stripes(engine: Engine) -> None:
    """A fee posted with another amount than Stripe's balance transaction is a mismatch."""
    fake = FakeGateway(clock=lambda: NOW)
    pi = paid_intent(fake)
    charge = fake.retrieve_charge(pi["latest_charge"])
    ledger = LedgerService(engine, clock=lambda: NOW)
    ledger.record_payment(
        payment_intent_id="pi_1",
        booking_id="42",
        mentor_id="3",
        mentee_id="7",
        gross=Money(5000, "GBP"),
        policy=CommissionPolicy(rate_bps=1000),
        charge_id=charge.id,
    )
    assert charge.balance_transaction_id is not None
    ledger.record_stripe_fee("pi_1", charge.balance_transaction_id, Money(80, "GBP"))
    config = MentorpayConfig(webhook_secrets=[SECRET], reconcile_fees=True)
    mp = MentorPay(config, engine, bookings=InMemoryBookings([]), gateway=fake, clock=lambda: NOW)
    report = mp.reconcile(NOW - timedelta(hours=1), NOW + timedelta(hours=1), apply=True)
    (mismatch,) = report.kinds["fees"].amount_mismatches
    assert (mismatch.stripe_amount, mismatch.ledger_amount) == (
        Money(processing_fee(5000), "GBP"),
        Money(80, "GBP"),
    )
    assert [a for a in report.applied if a.event_type == "stripe_fee"] == []
    assert "fees: 1 checked" in report.render()


def test_reconcile_fetches_fees_over_http(engine: Engine, http: responses.RequestsMock) -> None:
    """Over HTTP: the period's charges are listed once, each fee fetched by its txn id."""
    recorded(engine)
    empty = {"object": "list", "data": [], "has_more": False, "url": "/v1/x"}
    for what in ("payment_intents", "refunds", "disputes", "transfers"):
        http.get(f"{API}/v1/{what}", json={**empty, "url": f"/v1/{what}"})
    charge = {
        "id": "ch_1",
        "object": "charge",
        "amount": 5000,
        "amount_refunded": 0,
        "currency": "gbp",
        "payment_intent": "pi_1",
        "balance_transaction": "txn_1",
        "status": "succeeded",
        "created": int(NOW.timestamp()),
        "metadata": {},
    }
    http.get(
        f"{API}/v1/charges",
        json={"object": "list", "data": [charge], "has_more": False, "url": "/v1/charges"},
    )
    http.get(f"{API}/v1/balance_transactions/txn_1", json=TXN)
    # The recorded payment is missing from the (empty) listing, so reconcile asks for it.
    http.get(
        f"{API}/v1/payment_intents/pi_1",
        json={
            "id": "pi_1",
            "object": "payment_intent",
            "amount": 5000,
            "amount_received": 5000,
            "currency": "gbp",
            "status": "succeeded",
            "latest_charge": "ch_1",
            "created": int(NOW.timestamp()),
            "metadata": {},
        },
    )
    config = MentorpayConfig(webhook_secrets=[SECRET], reconcile_fees=True)
    gateway = StripeGateway("sk_test_123", max_network_retries=0)
    mp = MentorPay(
        config, engine, bookings=InMemoryBookings([]), gateway=gateway, clock=lambda: NOW
    )
    report = mp.reconcile(NOW - timedelta(hours=1), NOW + timedelta(hours=1), apply=True)
    fee_calls = [c for c in http.calls if "/v1/balance_transactions/" in c.request.url]
    assert len(fee_calls) == 1
    assert [a.status for a in report.applied if a.event_type == "stripe_fee"] == ["success"]
    assert mp.ledger.stripe_fees("GBP") == Money(95, "GBP")
