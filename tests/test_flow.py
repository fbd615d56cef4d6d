"""The whole money path through the facade: booking -> checkout -> signed webhooks -> release ->
payout -> transfer webhook, with balances and the ledger checked at every step."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from mentorpay import (
    BookingInfo,
    ConfigurationError,
    InsufficientBalanceError,
    MentorpayConfig,
    Money,
)
from mentorpay.app import MentorPay
from mentorpay.testing import FakeGateway, InMemoryBookings, encode_event, make_event, sign_payload

SECRET = "whsec_flow"


def deliver(mp: MentorPay, event_type: str, obj: dict[str, Any]) -> str:
    """Send a signed webhook for ``obj`` the way Stripe would; returns the result status."""
    body = encode_event(make_event(event_type, obj))
    return mp.webhooks.process(body, sign_payload(body, SECRET)).status


def test_booking_to_payout_end_to_end(engine: Engine) -> None:
    """Booking to withdrawn payout (separate charges and transfers): every step, duplicates."""
    config = MentorpayConfig(
        webhook_secrets=[SECRET],
        payout_mode="stripe_transfer",
        min_payout={"GBP": 1000},
    )
    bookings = InMemoryBookings(
        [
            BookingInfo(
                id="42",
                mentee_id="7",
                mentor_id="3",
                price=Money(5000, "GBP"),
                status="confirmed",
                mentor_stripe_account="acct_mentor3",
            )
        ]
    )
    fake = FakeGateway(checkout_url_template="http://127.0.0.1:8000/fake-checkout/{session_id}")
    mp = MentorPay(config, engine, bookings=bookings, gateway=fake)
    settled: list[Any] = []
    mp.on("payout_settled", settled.append)

    # Checkout: the platform collects the whole price; the mentor is paid by a later transfer.
    info = mp.checkout.create_session(
        "42", user_id="7", success_url="https://app.test/ok", cancel_url="https://app.test/no"
    )
    assert info.url == f"http://127.0.0.1:8000/fake-checkout/{info.session_id}"
    (call,) = fake.calls_to("create_checkout_session")
    assert call.args["params"].application_fee is None
    assert call.args["params"].destination is None

    # The mentee pays; Stripe sends the session and its payment intent, in any order, twice.
    session = fake.complete_checkout_session(info.session_id)
    intent = fake.payment_intent(session["payment_intent"])
    assert deliver(mp, "checkout.session.completed", session) == "success"
    assert deliver(mp, "payment_intent.succeeded", intent) == "payment_already_processed"
    assert deliver(mp, "checkout.session.completed", session) == "payment_already_processed"
    balance = mp.ledger.balance("3", "GBP")
    assert (balance.pending, balance.available) == (Money(4500, "GBP"), Money(0, "GBP"))
    assert mp.ledger.platform_commission("GBP") == Money(500, "GBP")

    # The session took place: the share becomes withdrawable.
    mp.ledger.release("42")
    assert mp.ledger.balance("3", "GBP").available == Money(4500, "GBP")

    # Payout: request, approve, execute (Stripe transfer), then Stripe's webhook settles it.
    payout = mp.payouts.request("3", Money(4500, "GBP"), destination="acct_mentor3")
    mp.payouts.approve(payout.id, approver="admin-1")
    executed = mp.payouts.execute(payout.id)
    assert executed.status == "processing"
    assert executed.transfer_id is not None
    balance = mp.ledger.balance("3", "GBP")
    assert (balance.available, balance.reserved) == (Money(0, "GBP"), Money(4500, "GBP"))
    sent = fake.transfer(executed.transfer_id)
    assert deliver(mp, "transfer.created", sent) == "success"
    assert deliver(mp, "transfer.created", sent) == "payment_already_processed"

    final = mp.ledger.balance("3", "GBP")
    assert final.withdrawn == Money(4500, "GBP")
    assert (final.pending, final.available, final.reserved) == (Money(0, "GBP"),) * 3
    assert final.total_earned == Money(4500, "GBP")
    assert mp.payouts.get(payout.id).status == "paid"
    assert [e.data["status"] for e in settled] == ["paid"]
    report = mp.ledger.verify()
    assert report.ok, report.problems

    # Nothing is left for reconciliation to find.
    assert mp.reconcile(info.expires_at.replace(year=2000)).ok


def test_destination_charge_is_never_paid_out_twice(engine: Engine) -> None:
    """Connect destination charges: the share is withdrawn at capture, refunds take it back."""
    config = MentorpayConfig(
        webhook_secrets=[SECRET], connect_destination_charges=True, payout_mode="stripe_transfer"
    )
    bookings = InMemoryBookings(
        [
            BookingInfo(
                id="42",
                mentee_id="7",
                mentor_id="3",
                price=Money(5000, "GBP"),
                status="confirmed",
                mentor_stripe_account="acct_mentor3",
            )
        ]
    )
    fake = FakeGateway()
    mp = MentorPay(config, engine, bookings=bookings, gateway=fake)
    info = mp.checkout.create_session(
        "42", user_id="7", success_url="https://app.test/ok", cancel_url="https://app.test/no"
    )
    (call,) = fake.calls_to("create_checkout_session")
    assert call.args["params"].application_fee == Money(500, "GBP")
    assert call.args["params"].destination == "acct_mentor3"
    session = fake.complete_checkout_session(info.session_id)
    assert deliver(mp, "checkout.session.completed", session) == "success"

    # Stripe moved the mentor's 45.00 to acct_mentor3 with the charge: nothing to pay out.
    balance = mp.ledger.balance("3", "GBP")
    assert (balance.pending, balance.available) == (Money(0, "GBP"), Money(0, "GBP"))
    assert balance.withdrawn == Money(4500, "GBP")
    assert mp.ledger.release("42")[0].created is False
    with pytest.raises(InsufficientBalanceError):
        mp.payouts.request("3", Money(1000, "GBP"), destination="acct_mentor3")

    # A partial refund reverses the transfer pro rata (reverse_transfer) and the fee.
    mp.refunds.refund(session["payment_intent"], Money(2000, "GBP"))
    intent = fake.payment_intent(session["payment_intent"])
    assert deliver(mp, "charge.refunded", fake.charge(intent["latest_charge"])) == "success"
    balance = mp.ledger.balance("3", "GBP")
    assert balance.withdrawn == Money(2700, "GBP")
    assert mp.ledger.platform_commission("GBP") == Money(300, "GBP")
    assert mp.ledger.verify().ok


def test_destination_charges_require_reverse_transfer_refunds() -> None:
    """A config that would leave refunded mentor shares with the mentor is refused."""
    with pytest.raises(ConfigurationError, match="refund_reverse_transfer"):
        MentorpayConfig(
            webhook_secrets=[SECRET],
            connect_destination_charges=True,
            refund_reverse_transfer=False,
        )
