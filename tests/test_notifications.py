"""Receipts and notices: sent once per committed business effect, through the host's mailer."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import Engine

from mentorpay import BookingInfo, MentorPay, MentorpayConfig, Money
from mentorpay.notifications import EmailMessage, Mailer
from mentorpay.testing import (
    FakeGateway,
    InMemoryBookings,
    OutboxMailer,
    encode_event,
    make_event,
    sign_payload,
)

SECRET = "whsec_mail"
ADDRESSES = {"u7": "mentee@example.test", "m3": "mentor@example.test"}


class Setup:
    """A facade with one booking, a fake Stripe and an outbox."""

    def __init__(
        self, engine: Engine, mailer: Mailer | None = None, contacts: Any = ADDRESSES.get
    ) -> None:
        self.fake = FakeGateway()
        booking = BookingInfo("42", "u7", "m3", Money(5000, "GBP"), "confirmed")
        self.mp = MentorPay(
            MentorpayConfig(webhook_secrets=[SECRET]),
            engine,
            bookings=InMemoryBookings([booking]),
            gateway=self.fake,
        )
        self.outbox = OutboxMailer()
        self.mp.send_receipts(mailer or self.outbox, contacts)

    def deliver(self, event_type: str, obj: dict[str, Any], event_id: str | None = None) -> str:
        """A signed webhook, as Stripe sends it."""
        body = encode_event(make_event(event_type, obj, event_id=event_id))
        return self.mp.webhooks.process(body, sign_payload(body, SECRET)).status

    def pay(self) -> dict[str, Any]:
        """Checkout and pay booking 42; returns the completed session."""
        info = self.mp.checkout.create_session(
            "42", user_id="u7", success_url="https://a.test/ok", cancel_url="https://a.test/no"
        )
        session = self.fake.complete_checkout_session(info.session_id)
        assert self.deliver("checkout.session.completed", session, "evt_paid") == "success"
        return session


def test_payment_sends_one_receipt_and_one_earnings_note(engine: Engine) -> None:
    """A payment mails the mentee a receipt and the mentor their earnings, once."""
    s = Setup(engine)
    session = s.pay()
    assert s.deliver("checkout.session.completed", session, "evt_paid") == "already_processed"
    intent = s.fake.payment_intent(session["payment_intent"])
    assert s.deliver("payment_intent.succeeded", intent) == "payment_already_processed"
    (receipt,) = s.outbox.to("mentee@example.test")
    (note,) = s.outbox.to("mentor@example.test")
    assert receipt.subject == "Receipt: 50.00 GBP for booking 42"
    assert "your earnings 45.00 GBP" in note.body
    assert "platform commission 5.00 GBP" in note.body


def test_refund_and_dispute_notices(engine: Engine) -> None:
    """A refund notifies the mentee; a dispute opening and closing notifies the mentor."""
    s = Setup(engine)
    pi = str(s.pay()["payment_intent"])
    s.mp.refunds.refund(pi, Money(1000, "GBP"))
    s.deliver("charge.refunded", s.fake.charge(s.fake.payment_intent(pi)["latest_charge"]))
    opened = s.fake.open_dispute(pi)
    s.deliver("charge.dispute.created", opened)
    s.deliver("charge.dispute.closed", s.fake.close_dispute(opened["id"], won=True))
    subjects = [m.subject for m in s.outbox.messages]
    assert "Refund of 10.00 GBP for booking 42" in subjects
    assert "Payment for booking 42 is disputed" in subjects
    mentor = [m.body for m in s.outbox.to("mentor@example.test")]
    assert any("won: your earnings are released" in b for b in mentor)


def test_manual_payout_settlement_notifies_the_mentor(engine: Engine) -> None:
    """Marking a manual payout paid reaches the callbacks too, not only webhook settlements."""
    s = Setup(engine)
    s.pay()
    s.mp.ledger.release("42")
    payout = s.mp.payouts.request("m3", Money(4500, "GBP"))
    s.mp.payouts.approve(payout.id, approver="ops")
    s.mp.payouts.mark_paid(payout.id, reference="BANK-7")
    assert s.outbox.to("mentor@example.test")[-1].subject == "Payout of 45.00 GBP: paid"


def test_missing_address_is_skipped(engine: Engine) -> None:
    """A user without an address gets nothing; the others still do."""
    s = Setup(engine, contacts={"m3": "mentor@example.test"}.get)
    s.pay()
    assert [m.to for m in s.outbox.messages] == ["mentor@example.test"]


def test_a_failing_mailer_never_undoes_the_payment(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A mailer that raises is logged; the payment stays recorded and the webhook succeeds."""

    class Broken:
        def send(self, message: EmailMessage) -> None:
            raise ConnectionError("smtp down")

    s = Setup(engine, mailer=Broken())
    with caplog.at_level(logging.ERROR):
        s.pay()
    assert s.mp.ledger.balance("m3", "GBP").pending == Money(4500, "GBP")
    assert "smtp down" in caplog.text
