"""`mentorpay payments review` / `resolve`: operators settle payments parked on suspense."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from mentorpay import BookingInfo, MentorpayConfig, Money
from mentorpay.app import MentorPay
from mentorpay.cli import Output, main
from mentorpay.db import make_engine
from mentorpay.migrations import upgrade
from mentorpay.testing import (
    FakeGateway,
    InMemoryBookings,
    booking_metadata,
    encode_event,
    make_event,
    payment_intent,
    sign_payload,
)

SECRET = "whsec_cli_payments"
BOOKING = BookingInfo("42", "7", "3", Money(5000, "GBP"), "confirmed")
HOST_MODULE = """
from mentorpay import BookingInfo, Money
from mentorpay.testing import InMemoryBookings

bookings = InMemoryBookings([BookingInfo("42", "7", "3", Money(5000, "GBP"), "confirmed")])
"""


def run(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=Output(out, err))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated database holding one underpaid payment (pi_1) parked for review."""
    for name in ("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "MENTORPAY_BOOKINGS"):
        monkeypatch.delenv(name, raising=False)
    db_url = f"sqlite:///{tmp_path / 'review.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    mp = MentorPay(
        MentorpayConfig(webhook_secrets=[SECRET]),
        engine,
        bookings=InMemoryBookings([BOOKING]),
        gateway=FakeGateway(),
    )
    intent = payment_intent(
        id="pi_1",
        amount=6000,
        currency="gbp",
        metadata=booking_metadata("42", mentor_id="3", mentee_id="7"),
    )
    body = encode_event(make_event("payment_intent.succeeded", intent))
    assert mp.webhooks.process(body, sign_payload(body, SECRET)).status == "needs_review"
    engine.dispose()
    (tmp_path / "host_bookings.py").write_text(HOST_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return db_url


def test_review_lists_the_parked_payment_with_its_reason(url: str) -> None:
    """The queue shows the payment intent, its booking, amount and why it was parked."""
    code, out, _ = run("payments", "review", "--url", url)
    assert code == 0
    assert "pi_1" in out and "booking 42" in out and "amount_mismatch" in out


def test_credit_without_the_hosts_bookings_is_refused(url: str) -> None:
    """Crediting needs the host's BookingSource; without one the CLI says how to give it."""
    code, _, err = run("payments", "resolve", "pi_1", "--action", "credit", "--url", url)
    assert code != 0 and "--bookings" in err


def test_credit_with_the_hosts_bookings_credits_the_mentor(url: str) -> None:
    """--bookings MODULE:ATTRIBUTE loads the host's source; the mentor gets 90% of 60.00."""
    code, out, err = run(
        "payments", "resolve", "pi_1", "--action", "credit", "--bookings",
        "host_bookings:bookings", "--url", url,
    )  # fmt: skip
    assert code == 0, err
    assert "succeeded" in out
    code, out, _ = run("balance", "3", "--url", url, "--currency", "GBP")
    assert "54.00" in out
    assert run("payments", "review", "--url", url)[1].strip() == "no payment needs review"
    sys.modules.pop("host_bookings", None)
