"""The webhook processor on SQLite and PostgreSQL: verification, parsing, every event type,
idempotency, ordering, failure and retry, callbacks and replay. Every body is signed with the
real Stripe scheme."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from mentorpay.commission import CommissionPolicy
from mentorpay.config import MentorpayConfig
from mentorpay.errors import (
    ConfigurationError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    WebhookPayloadError,
    WebhookProcessingError,
    WebhookSignatureError,
)
from mentorpay.events import Effect, EventEnvelope, HandlerResult
from mentorpay.models import CheckoutSession
from mentorpay.money import Money
from mentorpay.testing import (
    charge,
    checkout_session,
    dispute,
    encode_event,
    make_event,
    payment_intent,
    sign_payload,
    transfer,
)
from mentorpay.webhooks import HANDLED_EVENT_TYPES, WebhookProcessor, WebhookResult
from tests.fixtures.webhook_support import (
    NOW,
    SECRET,
    Harness,
    intent_succeeded,
    make_harness,
    metadata,
    session_completed,
)


@pytest.fixture
def h(engine: Engine) -> Harness:
    """A processor on a clean database (SQLite and PostgreSQL)."""
    return make_harness(engine)


def refunded(pi: str, total: int, amount: int = 5000, currency: str = "gbp") -> dict[str, Any]:
    """A charge.refunded event with cumulative ``total`` refunded."""
    return make_event(
        "charge.refunded",
        charge(
            id=f"ch_{pi}",
            payment_intent=pi,
            amount=amount,
            amount_refunded=total,
            currency=currency,
        ),
    )


def dispute_event(
    kind: str, pi: str, status: str, amount: int = 5000, dispute_id: str | None = None, **kw: Any
) -> dict[str, Any]:
    """A charge.dispute.<kind> event about ``pi``."""
    return make_event(
        f"charge.dispute.{kind}",
        dispute(
            id=dispute_id or f"dp_{pi}",
            charge=f"ch_{pi}",
            payment_intent=pi,
            amount=amount,
            status=status,
        ),
        **kw,
    )


def add_checkout_row(
    engine: Engine, session_id: str, booking: str = "b1", platform_fee: int = 500
) -> None:
    """Insert mentorpay's own checkout row, as the checkout service would."""
    with engine.begin() as conn:
        conn.execute(
            insert(CheckoutSession.__table__).values(
                id=session_id,
                booking_id=booking,
                mentee_id="u1",
                mentor_id="m1",
                currency="GBP",
                amount=5000,
                platform_fee=platform_fee,
                status="open",
                url="https://checkout.stripe.com/c/pay/x",
                idempotency_key=f"key-{session_id}",
                expires_at=NOW + timedelta(hours=1),
                created_at=NOW,
                updated_at=NOW,
            )
        )


# -- signature ------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header_is_refused_without_writes(h: Harness, header: str | None) -> None:
    """No Stripe-Signature header: WebhookSignatureError (400), nothing stored."""
    body = encode_event(intent_succeeded("pi_1"))
    with pytest.raises(WebhookSignatureError) as info:
        h.processor.process(body, header)
    assert info.value.http_status == 400
    assert info.value.details["reason"] == "missing_header"
    assert h.inbox_count() == 0 and h.ledger_counts() == (0, 0, 0, 0)


def test_wrong_secret_is_refused(h: Harness) -> None:
    """A body signed with another secret is refused as no_secret_matched, with no writes."""
    with pytest.raises(WebhookSignatureError) as info:
        h.deliver(intent_succeeded("pi_1"), secret="whsec_someone_else")
    assert info.value.details["reason"] == "no_secret_matched"
    assert h.inbox_count() == 0 and h.ledger_counts() == (0, 0, 0, 0)


def test_stale_timestamp_is_refused(h: Harness) -> None:
    """A correctly signed body older than the tolerance is refused: timestamp_outside_tolerance."""
    old = int(time.time()) - h.config.webhook_tolerance - 5
    with pytest.raises(WebhookSignatureError) as info:
        h.deliver(intent_succeeded("pi_1"), timestamp=old)
    assert info.value.details["reason"] == "timestamp_outside_tolerance"
    assert h.inbox_count() == 0


def test_timestamp_inside_tolerance_is_accepted(h: Harness) -> None:
    """A delivery signed a little in the past but inside the tolerance is accepted."""
    recent = int(time.time()) - h.config.webhook_tolerance + 30
    assert h.deliver(intent_succeeded("pi_1"), timestamp=recent).status == "success"


def test_reserialized_body_is_refused(h: Harness) -> None:
    """A body parsed and re-serialized by a framework no longer matches its signature."""
    event = intent_succeeded("pi_1")
    original = encode_event(event)
    header = sign_payload(original, SECRET)
    reserialized = json.dumps(json.loads(original), indent=2).encode()
    with pytest.raises(WebhookSignatureError) as info:
        h.processor.process(reserialized, header)
    assert info.value.details["reason"] == "no_secret_matched"
    assert h.processor.process(original, header).status == "success"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("v1=abc", "malformed_header"),
        ("t=notanumber,v1=abc", "malformed_header"),
        ("t=1700000000", "no_v1_signature"),
        ("t=1700000000,v0=abc", "no_v1_signature"),
    ],
)
def test_malformed_headers_are_refused(h: Harness, header: str, reason: str) -> None:
    """Headers without a timestamp or a v1 signature are refused, naming which part is missing."""
    with pytest.raises(WebhookSignatureError) as info:
        h.processor.process(encode_event(intent_succeeded("pi_1")), header)
    assert info.value.details["reason"] == reason


def test_secret_rotation_accepts_every_configured_secret(engine: Engine) -> None:
    """With two secrets configured (rotation), bodies signed with either verify; others fail."""
    h = make_harness(engine, webhook_secrets=["whsec_old_secret", "whsec_new_secret"])
    assert h.deliver(intent_succeeded("pi_1"), secret="whsec_old_secret").status == "success"
    assert h.deliver(intent_succeeded("pi_2"), secret="whsec_new_secret").status == "success"
    with pytest.raises(WebhookSignatureError):
        h.deliver(intent_succeeded("pi_3"), secret="whsec_retired_secret")


def test_signature_log_names_the_check_never_the_secret(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """The rejection log says which check failed and never contains the secret."""
    caplog.set_level(logging.WARNING, logger="mentorpay.webhooks")
    for kwargs in ({"secret": "whsec_wrong"}, {"timestamp": 1_000_000_000}):
        with pytest.raises(WebhookSignatureError):
            h.deliver(intent_succeeded("pi_1"), **kwargs)
    text = caplog.text
    assert "no_secret_matched" in text and "timestamp_outside_tolerance" in text
    assert SECRET not in text and "whsec_wrong" not in text


def test_config_without_a_secret_cannot_be_built() -> None:
    """No webhook secret means no config (never a processor accepting unsigned requests)."""
    with pytest.raises(ConfigurationError):
        MentorpayConfig(webhook_secrets=[])
    with pytest.raises(ConfigurationError):
        MentorpayConfig(webhook_secrets=["   "])


# -- payload --------------------------------------------------------------------------------------


def test_body_over_the_limit_is_refused_before_parsing(engine: Engine) -> None:
    """A body above max_payload_bytes is a 413 before the signature is even looked at."""
    h = make_harness(engine, max_payload_bytes=2048)
    body = b"{" + b" " * 2048 + b"}"
    with pytest.raises(PayloadTooLargeError) as info:
        h.processor.process(body, None)
    assert info.value.http_status == 413
    assert h.inbox_count() == 0
    small = encode_event(intent_succeeded("pi_1"))
    assert len(small) <= 2048
    assert h.processor.process(small, sign_payload(small, SECRET)).status == "success"


def test_default_limit_is_one_mebibyte(h: Harness) -> None:
    """The default limit is 1 MiB."""
    with pytest.raises(PayloadTooLargeError):
        h.processor.process(b" " * (1024 * 1024 + 1), "t=1,v1=x")


def test_body_that_is_not_utf8_is_refused(h: Harness) -> None:
    """Bytes that are not UTF-8 are a WebhookPayloadError (400), nothing stored."""
    body = b'{"id": "evt_\xff\xfe"}'
    with pytest.raises(WebhookPayloadError) as info:
        h.processor.process(body, "t=1,v1=x")
    assert info.value.http_status == 400
    assert h.inbox_count() == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json at all", "not valid JSON"),
        (b'{"id": "evt_1", "type": ', "not valid JSON"),
        (b"[1, 2, 3]", "not a Stripe event"),
        (b'{"hello": "world"}', "not a Stripe event"),
        (b'{"id": "evt_1", "type": "charge.refunded", "created": 1}', "not a Stripe event"),
        (b'{"id": 5, "type": "x", "created": 1, "data": {"object": {}}}', "not a Stripe event"),
        (b'{"id": "", "type": "x", "created": 1, "data": {"object": {}}}', "event id"),
    ],
)
def test_signed_bodies_that_are_not_events_are_refused(
    h: Harness, body: bytes, message: str
) -> None:
    """Signed but not JSON, or JSON but not an event: WebhookPayloadError, nothing stored."""
    with pytest.raises(WebhookPayloadError) as info:
        h.processor.process(body, sign_payload(body, SECRET))
    assert message in info.value.message
    assert h.inbox_count() == 0 and h.ledger_counts() == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("event_type", "obj"),
    [
        ("payment_intent.succeeded", {"id": "pi_x", "currency": "gbp", "metadata": metadata(1)}),
        ("charge.refunded", {"id": "ch_x", "payment_intent": "pi_x", "currency": "gbp"}),
        ("charge.dispute.created", {"id": "dp_x", "payment_intent": "pi_x", "amount": 100}),
        ("payment_intent.succeeded", {"id": "pi_x", "amount": 5.5, "currency": "gbp"}),
        (
            "payment_intent.succeeded",
            {"id": "pi_x", "amount": 500, "currency": "zzz", "metadata": metadata(1)},
        ),
        (
            "checkout.session.completed",
            {
                "id": "cs_x",
                "payment_status": "paid",
                "payment_intent": "pi_x",
                "currency": "gbp",
                "metadata": metadata(1),
            },
        ),
    ],
)
def test_event_missing_a_needed_field_is_refused_and_recorded(
    h: Harness, event_type: str, obj: dict[str, Any]
) -> None:
    """A field the handler needs is missing or unusable: rejected (200), no ledger write."""
    event = make_event(event_type, obj)
    result = h.deliver(event)
    assert (result.status, result.http_status) == ("rejected", 200)
    assert h.ledger_counts() == (0, 0, 0, 0)
    row = h.inbox(event["id"])
    assert row["status"] == "rejected" and row["attempts"] == 1
    assert "WebhookPayloadError" in row["last_error"]
    assert h.kinds() == ["event_rejected"]


def test_unknown_fields_are_ignored(h: Harness) -> None:
    """Fields mentorpay does not read, at any level, change nothing."""
    event = intent_succeeded("pi_1")
    event["brand_new_field"] = {"nested": [1, 2]}
    event["data"]["object"]["future_field"] = "x"
    event["data"]["previous_attributes"] = {"status": "processing"}
    assert h.deliver(event).status == "success"


# -- payments -------------------------------------------------------------------------------------


def test_checkout_completed_records_the_payment(h: Harness) -> None:
    """A paid checkout.session.completed records the split, the hold and the checkout row."""
    add_checkout_row(h.engine, "cs_1", booking="bpi_1")
    result = h.deliver(session_completed("pi_1", session_id="cs_1"))
    assert result.status == "success" and result.http_status == 200
    payment = h.payment("pi_1")
    assert (payment["amount"], payment["platform_fee"], payment["mentor_payout"]) == (
        5000,
        500,
        4500,
    )
    assert payment["booking_id"] == "bpi_1" and payment["checkout_session_id"] == "cs_1"
    assert payment["release_due_at"] == NOW + h.config.hold_period
    assert h.checkout_row("cs_1")["status"] == "complete"
    assert h.ledger.balance("m1", "GBP").pending == Money(4500, "GBP")
    assert h.kinds() == ["payment_succeeded"]
    assert h.effects[0].data["booking_id"] == "bpi_1"
    assert h.ledger.verify().ok


def test_unpaid_checkout_waits_for_the_async_payment(h: Harness) -> None:
    """completed with payment_status unpaid credits nothing; async_payment_succeeded does."""
    unpaid = session_completed("pi_1", payment_status="unpaid")
    assert h.deliver(unpaid).status == "success"
    assert not h.has_payment("pi_1") and h.ledger_counts() == (0, 0, 0, 0)
    obj = dict(unpaid["data"]["object"], payment_status="paid")
    assert h.deliver(make_event("checkout.session.async_payment_succeeded", obj)).status == (
        "success"
    )
    assert h.ledger.balance("m1", "GBP").pending == Money(4500, "GBP")
    assert h.kinds() == ["payment_succeeded"]


def test_payment_intent_succeeded_records_the_payment_and_charge(h: Harness) -> None:
    """payment_intent.succeeded records the amount received and the latest charge id."""
    event = make_event(
        "payment_intent.succeeded",
        payment_intent(
            id="pi_1", amount=1000, currency="jpy", metadata=metadata(1), latest_charge="ch_1"
        ),
    )
    assert h.deliver(event).status == "success"
    payment = h.payment("pi_1")
    assert payment["charge_id"] == "ch_1"
    assert (payment["currency"], payment["amount"], payment["platform_fee"]) == ("JPY", 1000, 100)


@pytest.mark.parametrize("first", ["checkout", "intent"])
def test_sibling_events_record_one_payment(h: Harness, first: str) -> None:
    """Whichever sibling arrives first records; the other answers payment_already_processed."""
    events = [session_completed("pi_1"), intent_succeeded("pi_1")]
    if first == "intent":
        events.reverse()
    assert [h.deliver(e).status for e in events] == ["success", "payment_already_processed"]
    async_paid = make_event("checkout.session.async_payment_succeeded", events[0]["data"]["object"])
    if first == "checkout":
        assert h.deliver(async_paid).status == "payment_already_processed"
    assert h.ledger_counts()[:2] == (1, 1)
    assert h.kinds() == ["payment_succeeded"]


def test_commission_comes_from_the_mentors_policy(engine: Engine) -> None:
    """The per-mentor policy in force when the payment is recorded is stored with it."""
    special = CommissionPolicy(rate_bps=2500)
    h = make_harness(engine, commission_resolver=lambda m: special if m == "vip" else None)
    h.deliver(intent_succeeded("pi_1", mentor="vip"))
    h.deliver(intent_succeeded("pi_2", mentor="m1"))
    assert (h.payment("pi_1")["rate_bps"], h.payment("pi_1")["platform_fee"]) == (2500, 1250)
    assert h.payment("pi_2")["rate_bps"] == 1000


def test_payment_without_booking_metadata_is_ignored(h: Harness) -> None:
    """A payment not made through mentorpay is recorded in the inbox as ignored, not credited."""
    event = make_event("payment_intent.succeeded", payment_intent(id="pi_other", metadata={}))
    result = h.deliver(event)
    assert result.status == "ignored"
    assert h.ledger_counts() == (0, 0, 0, 0)
    assert h.inbox(event["id"])["status"] == "ignored"
    assert h.effects == []


def test_deferred_events_for_a_foreign_payment_are_settled(h: Harness) -> None:
    """Refunds waiting for a payment that turns out not to be mentorpay's become ignored."""
    refund = refunded("pi_other", 1000)
    assert h.deliver(refund).status == "deferred"
    h.deliver(make_event("payment_intent.succeeded", payment_intent(id="pi_other")))
    row = h.inbox(refund["id"])
    assert row["status"] == "ignored" and "pi_other" in row["last_error"]


def test_destination_charge_from_transfer_data_is_withdrawn_at_capture(h: Harness) -> None:
    """A payment intent with transfer_data.destination credits withdrawn, never pending."""
    intent = payment_intent(
        id="pi_1",
        metadata=metadata(1),
        application_fee_amount=500,
        transfer_data={"destination": "acct_m1"},
    )
    assert h.deliver(make_event("payment_intent.succeeded", intent)).status == "success"
    view = h.ledger.balance("m1", "GBP")
    assert (view.pending.amount, view.available.amount, view.withdrawn.amount) == (0, 0, 4500)
    assert h.ledger.verify().ok


def test_destination_charge_records_the_fee_stripe_kept(h: Harness) -> None:
    """The application fee on the payment wins over today's policy (it may have changed)."""
    intent = payment_intent(
        id="pi_1",
        metadata=metadata(1),
        application_fee_amount=750,
        transfer_data={"destination": "acct_m1"},
    )
    assert h.deliver(make_event("payment_intent.succeeded", intent)).status == "success"
    assert h.payment("pi_1")["platform_fee"] == 750
    assert h.ledger.balance("m1", "GBP").withdrawn.amount == 4250
    assert h.ledger.verify().ok


def test_destination_session_records_the_fee_checkout_asked_for(engine: Engine) -> None:
    """A destination charge's session event takes its fee from mentorpay's checkout row."""
    h = make_harness(engine, connect_destination_charges=True)
    add_checkout_row(engine, "cs_2", booking="b2", platform_fee=600)
    session = checkout_session(
        id="cs_2",
        payment_intent="pi_2",
        amount_total=5000,
        metadata={**metadata(2), "mentor_account": "acct_m1", "platform_fee": "9"},
    )
    assert h.deliver(make_event("checkout.session.completed", session)).status == "success"
    assert h.payment("pi_2")["platform_fee"] == 600
    assert h.ledger.balance("m1", "GBP").withdrawn.amount == 4400
    assert h.ledger.verify().ok


def test_a_fee_above_the_payment_is_a_payload_error(h: Harness) -> None:
    """An application fee larger than the payment is rejected as an unusable event."""
    intent = payment_intent(
        id="pi_1",
        metadata=metadata(1),
        application_fee_amount=9999,
        transfer_data={"destination": "acct_m1"},
    )
    assert h.deliver(make_event("payment_intent.succeeded", intent)).status == "rejected"
    assert h.ledger_counts() == (0, 0, 0, 0)


def test_later_events_about_a_foreign_payment_are_ignored(h: Harness) -> None:
    """A refund or dispute arriving after a non-mentorpay payment is ignored, never deferred."""
    h.deliver(make_event("payment_intent.succeeded", payment_intent(id="pi_other", metadata={})))
    assert h.deliver(refunded("pi_other", 1000)).status == "ignored"
    assert h.deliver(dispute_event("created", "pi_other", "needs_response")).status == "ignored"
    assert h.processor.list_events(status="deferred") == []
    assert h.ledger_counts() == (0, 0, 0, 0)


def test_payment_failures_notify_without_touching_the_ledger(h: Harness) -> None:
    """payment_intent.payment_failed and async_payment_failed: a payment_failed effect only."""
    failed = make_event(
        "payment_intent.payment_failed",
        payment_intent(
            id="pi_1",
            status="requires_payment_method",
            metadata=metadata(1),
            last_payment_error={"code": "card_declined", "message": "Your card was declined."},
        ),
    )
    async_failed = make_event(
        "checkout.session.async_payment_failed",
        checkout_session(payment_intent="pi_1", payment_status="unpaid", metadata=metadata(1)),
    )
    assert h.deliver(failed).status == "success"
    assert h.deliver(async_failed).status == "success"
    assert h.ledger_counts() == (0, 0, 0, 0)
    assert h.kinds() == ["payment_failed", "payment_failed"]
    assert h.effects[0].data["reason"] == "Your card was declined."
    assert h.effects[1].data["booking_id"] == "b1"


def test_checkout_expired_marks_the_row_and_notifies(h: Harness) -> None:
    """checkout.session.expired marks mentorpay's row expired and emits checkout_expired."""
    add_checkout_row(h.engine, "cs_1", booking="b9")
    event = make_event(
        "checkout.session.expired",
        checkout_session(id="cs_1", status="expired", payment_status="unpaid", payment_intent=None),
    )
    assert h.deliver(event).status == "success"
    assert h.checkout_row("cs_1")["status"] == "expired"
    assert h.kinds() == ["checkout_expired"]
    assert h.effects[0].data["booking_id"] == "b9"
    foreign = make_event("checkout.session.expired", checkout_session(id="cs_foreign"))
    assert h.deliver(foreign).status == "ignored"


# -- refunds and disputes -------------------------------------------------------------------------


def test_refunds_use_the_cumulative_amount(h: Harness) -> None:
    """Partial then full refund post the differences; a duplicate and a late older one nothing."""
    h.deliver(intent_succeeded("pi_1"))
    partial, full = refunded("pi_1", 2000), refunded("pi_1", 5000)
    assert h.deliver(partial).status == "success"
    assert h.ledger.balance("m1", "GBP").pending == Money(2700, "GBP")
    assert h.deliver(full).status == "success"
    again_same_total = refunded("pi_1", 5000)  # another event id, same cumulative state
    late_older = refunded("pi_1", 2000)
    assert h.deliver(again_same_total).status == "success"
    assert h.deliver(late_older).status == "success"
    payment = h.payment("pi_1")
    assert payment["amount_refunded"] == 5000
    assert (payment["fee_reversed"], payment["payout_reversed"]) == (500, 4500)
    assert h.ledger.balance("m1", "GBP").pending == Money(0, "GBP")
    refunds = [e.data["amount"] for e in h.effects if e.kind == "refund_applied"]
    assert refunds == [2000, 3000]
    assert h.ledger.verify().ok


def test_refund_links_by_charge_when_the_intent_is_absent(h: Harness) -> None:
    """A charge without payment_intent is linked through the recorded charge id."""
    h.deliver(
        make_event(
            "payment_intent.succeeded",
            payment_intent(id="pi_1", metadata=metadata(1), latest_charge="ch_known"),
        )
    )
    event = make_event(
        "charge.refunded", charge(id="ch_known", payment_intent=None, amount_refunded=1000)
    )
    assert h.deliver(event).status == "success"
    assert h.payment("pi_1")["amount_refunded"] == 1000
    unknown = make_event("charge.refunded", charge(id="ch_unknown", payment_intent=None))
    assert h.deliver(unknown).status == "ignored"


def test_dispute_won_holds_then_releases(h: Harness) -> None:
    """dispute.created holds the mentor's share; closed as won gives it back."""
    h.deliver(intent_succeeded("pi_1"))
    assert h.deliver(dispute_event("created", "pi_1", "needs_response")).status == "success"
    bal = h.ledger.balance("m1", "GBP")
    assert (bal.pending, bal.held) == (Money(0, "GBP"), Money(4500, "GBP"))
    assert h.deliver(dispute_event("closed", "pi_1", "won")).status == "success"
    bal = h.ledger.balance("m1", "GBP")
    assert (bal.pending, bal.held) == (Money(4500, "GBP"), Money(0, "GBP"))
    assert h.kinds() == ["payment_succeeded", "dispute_opened", "dispute_closed"]
    assert h.effects[-1].data["won"] is True
    assert h.ledger.verify().ok


def test_dispute_lost_reverses_like_a_refund(h: Harness) -> None:
    """Closed as lost, the disputed amount is reversed from the mentor and the commission."""
    h.deliver(intent_succeeded("pi_1"))
    h.deliver(dispute_event("created", "pi_1", "needs_response"))
    h.deliver(dispute_event("closed", "pi_1", "lost"))
    bal = h.ledger.balance("m1", "GBP")
    assert bal.total_earned == Money(0, "GBP")
    payment = h.payment("pi_1")
    assert (payment["fee_reversed"], payment["status"]) == (
        500,
        "dispute_lost",
    )
    assert h.effects[-1].data["won"] is False
    assert h.ledger.verify().ok


@pytest.mark.parametrize("status", ["warning_closed", "prevented"])
def test_inquiry_closed_or_prevented_releases_the_hold(h: Harness, status: str) -> None:
    """An inquiry closed without a chargeback, or a prevented dispute, releases like a win."""
    h.deliver(intent_succeeded("pi_1"))
    h.deliver(dispute_event("created", "pi_1", "warning_needs_response"))
    h.deliver(dispute_event("closed", "pi_1", status))
    bal = h.ledger.balance("m1", "GBP")
    assert (bal.pending, bal.held) == (Money(4500, "GBP"), Money(0, "GBP"))


def test_closed_before_created_nets_out(h: Harness) -> None:
    """A dispute.closed overtaking its dispute.created applies both; the late created is a no-op."""
    h.deliver(intent_succeeded("pi_1"))
    h.deliver(dispute_event("closed", "pi_1", "lost"))
    assert h.deliver(dispute_event("created", "pi_1", "needs_response")).status == "success"
    assert h.ledger.balance("m1", "GBP").total_earned == Money(0, "GBP")
    assert h.kinds() == ["payment_succeeded", "dispute_opened", "dispute_closed"]
    assert h.ledger.verify().ok


def test_closed_with_an_unexpected_status_is_ignored(h: Harness) -> None:
    """A closed dispute whose status is not a final one changes nothing."""
    h.deliver(intent_succeeded("pi_1"))
    assert h.deliver(dispute_event("closed", "pi_1", "under_review")).status == "ignored"
    assert h.ledger.balance("m1", "GBP").held == Money(0, "GBP")


# -- ordering, duplicates, ignored types ---------------------------------------------------------


def test_refund_before_payment_is_deferred_then_applied(h: Harness) -> None:
    """A refund for an unrecorded payment is deferred (200), then applied with the payment."""
    refund = refunded("pi_1", 2000)
    result = h.deliver(refund)
    assert (result.status, result.http_status, result.waiting_for) == ("deferred", 200, "pi_1")
    row = h.inbox(refund["id"])
    assert (row["status"], row["waiting_for"]) == ("deferred", "pi_1")
    assert h.ledger_counts() == (0, 0, 0, 0) and h.effects == []
    paid = h.deliver(intent_succeeded("pi_1"))
    assert paid.status == "success"
    assert [e.kind for e in paid.effects] == ["payment_succeeded", "refund_applied"]
    assert h.inbox(refund["id"])["status"] == "processed"
    assert h.ledger.balance("m1", "GBP").pending == Money(2700, "GBP")
    assert h.kinds() == ["payment_succeeded", "refund_applied"]
    assert h.ledger.verify().ok


def test_deferred_dispute_events_apply_in_stripe_order(h: Harness) -> None:
    """closed (created later by Stripe) delivered before created: applied in created order."""
    created = dispute_event("created", "pi_1", "needs_response", created=1000)
    closed = dispute_event("closed", "pi_1", "won", created=2000)
    assert h.deliver(closed).status == "deferred"
    assert h.deliver(created).status == "deferred"
    h.deliver(intent_succeeded("pi_1"))
    assert h.kinds() == ["payment_succeeded", "dispute_opened", "dispute_closed"]
    bal = h.ledger.balance("m1", "GBP")
    assert (bal.pending, bal.held) == (Money(4500, "GBP"), Money(0, "GBP"))
    assert all(h.inbox(e["id"])["status"] == "processed" for e in (created, closed))


def test_duplicate_event_is_answered_already_processed(h: Harness) -> None:
    """The same event id again: already_processed, no new rows, no second effect."""
    event = intent_succeeded("pi_1")
    assert h.deliver(event).status == "success"
    counts = h.ledger_counts()
    for _ in range(3):
        again = h.deliver(event)
        assert (again.status, again.event_id, again.http_status) == (
            "already_processed",
            event["id"],
            200,
        )
    assert h.ledger_counts() == counts
    assert h.kinds() == ["payment_succeeded"]
    assert h.inbox(event["id"])["attempts"] == 1


def test_duplicate_past_the_peek_loses_on_the_unique_claim(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the cheap read, the inbox's unique event id alone still stops the duplicate."""
    event = intent_succeeded("pi_1")
    assert h.deliver(event).status == "success"
    monkeypatch.setattr(h.processor, "_peek", lambda event_id: None)
    assert h.deliver(event).status == "already_processed"
    assert h.kinds() == ["payment_succeeded"]


def test_first_delivery_is_seen_as_new(h: Harness) -> None:
    """The claim detects a new event on every backend (psycopg's -1 rowcount trap)."""
    for i in range(3):
        assert h.deliver(intent_succeeded(f"pi_{i}")).status == "success"
    assert h.ledger_counts()[0] == 3


def test_unhandled_event_types_are_recorded_and_ignored(h: Harness) -> None:
    """Any other event type is stored as ignored and answered ignored, ledger untouched."""
    for event_type in ("customer.created", "invoice.paid", "charge.dispute.funds_withdrawn"):
        event = make_event(event_type, {"id": "obj_1", "object": "whatever"})
        result = h.deliver(event)
        assert (result.status, result.event_type) == ("ignored", event_type)
        assert h.inbox(event["id"])["status"] == "ignored"
        assert h.deliver(event).status == "already_processed"
    assert h.ledger_counts() == (0, 0, 0, 0)


def test_inbox_keeps_the_raw_payload(h: Harness) -> None:
    """The stored payload is the exact verified body."""
    event = intent_succeeded("pi_1")
    h.deliver(event)
    row = h.inbox(event["id"])
    assert row["payload"] == encode_event(event).decode()
    assert (row["type"], row["status"], row["attempts"]) == (
        "payment_intent.succeeded",
        "processed",
        1,
    )
    assert row["created_at"] == NOW and row["processed_at"] == NOW


# -- failure and retry ----------------------------------------------------------------------------


def test_handler_failure_rolls_back_and_the_retry_applies_once(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the payment was written rolls everything back; Stripe's retry applies it."""
    real = h.processor._drain
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        # Fails once, right after the payment and its journal were written.
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(h.processor, "_drain", flaky)
    refund = refunded("pi_1", 1000)
    h.deliver(refund)  # deferred: must survive the rolled-back attempt and apply on retry
    event = intent_succeeded("pi_1")
    with pytest.raises(WebhookProcessingError) as info:
        h.deliver(event)
    assert info.value.http_status == 500
    assert h.ledger_counts() == (0, 0, 0, 0)
    assert h.effects == []
    row = h.inbox(event["id"])
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert "RuntimeError: disk on fire" in row["last_error"]
    assert h.inbox(refund["id"])["status"] == "deferred"
    retry = h.deliver(event)
    assert retry.status == "success"
    assert h.inbox(event["id"])["attempts"] == 2
    assert h.deliver(event).status == "already_processed"
    assert h.ledger_counts()[:2] == (1, 2)
    assert h.kinds() == ["payment_succeeded", "refund_applied"]
    assert h.ledger.verify().ok


def test_a_failing_retry_counts_its_attempts(h: Harness) -> None:
    """Each failed attempt increments attempts and keeps the latest error."""
    boom = {"n": 0}

    def handler(conn: Any, env: EventEnvelope) -> HandlerResult:
        boom["n"] += 1
        raise ValueError(f"attempt {boom['n']}")

    h.processor.register("transfer.created", handler)
    event = make_event("transfer.created", transfer())
    for _ in range(3):
        with pytest.raises(WebhookProcessingError):
            h.deliver(event)
    row = h.inbox(event["id"])
    assert (row["status"], row["attempts"]) == ("failed", 3)
    assert "attempt 3" in row["last_error"]
    assert [e.event_id for e in h.processor.list_events(status="failed")] == [event["id"]]


def test_failed_deferred_event_does_not_block_its_payment(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deferred event that fails when applied is marked failed; the payment still records."""
    refund = refunded("pi_1", 1000)
    h.deliver(refund)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("refund bug")

    monkeypatch.setattr(h.ledger, "apply_refund_total", broken)
    assert h.deliver(intent_succeeded("pi_1")).status == "success"
    row = h.inbox(refund["id"])
    assert row["status"] == "failed" and "refund bug" in row["last_error"]
    monkeypatch.undo()
    assert h.processor.replay(refund["id"]).status == "success"
    assert h.payment("pi_1")["amount_refunded"] == 1000
    assert h.ledger.verify().ok


# -- callbacks ------------------------------------------------------------------------------------


def test_callbacks_run_after_commit_once_per_effect(h: Harness) -> None:
    """A callback sees the payment committed (from another connection), once, not for dupes."""
    seen: list[tuple[str, bool]] = []

    def check(effect: Effect) -> None:
        pi = effect.data["payment_intent_id"]
        seen.append((pi, h.has_payment(pi)))  # a separate connection: committed?

    h.processor.on("payment_succeeded", check)
    event = intent_succeeded("pi_1")
    h.deliver(event)
    h.deliver(event)
    h.deliver(session_completed("pi_1"))
    assert seen == [("pi_1", True)]


def test_no_callback_for_a_rolled_back_attempt(h: Harness) -> None:
    """Effects of a failed transaction are never delivered."""

    def handler(conn: Any, env: EventEnvelope) -> HandlerResult:
        raise RuntimeError("after the effect was computed")

    h.processor.register("transfer.paid", handler)
    with pytest.raises(WebhookProcessingError):
        h.deliver(make_event("transfer.paid", transfer()))
    assert h.effects == []


def test_raising_callback_is_logged_and_changes_nothing(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback that raises is logged; the payment stays and the answer is still success."""

    def angry(effect: Effect) -> None:
        raise RuntimeError("smtp down")

    h.processor.on("payment_succeeded", angry)
    caplog.set_level(logging.ERROR, logger="mentorpay.webhooks")
    result = h.deliver(intent_succeeded("pi_1"))
    assert result.status == "success"
    assert h.has_payment("pi_1")
    assert "smtp down" in caplog.text
    assert h.kinds() == ["payment_succeeded"]  # callbacks registered after it still ran


def test_on_refuses_unknown_effect_kinds(h: Harness) -> None:
    """Registering a callback for an effect kind that does not exist is a configuration error."""
    with pytest.raises(ConfigurationError):
        h.processor.on("payment_exploded", lambda e: None)  # type: ignore[arg-type]


# -- extension: registered handlers ---------------------------------------------------------------


def test_registered_handler_runs_in_the_event_transaction(h: Harness) -> None:
    """A service's handler (payouts) runs for its type and its effect reaches the callbacks."""
    got: list[str] = []

    def on_transfer(conn: Any, env: EventEnvelope) -> HandlerResult:
        got.append(env.data.object["id"])
        return HandlerResult("success", [Effect("payout_settled", {"transfer": env.id})])

    h.processor.register("transfer.created", on_transfer)
    event = make_event("transfer.created", transfer(id="tr_1"))
    assert h.deliver(event).status == "success"
    assert h.deliver(event).status == "already_processed"
    assert got == ["tr_1"] and h.kinds() == ["payout_settled"]


def test_register_refuses_to_silently_replace_a_handler(h: Harness) -> None:
    """A second handler for a type needs replace=True; built-ins are protected the same way."""

    def noop(conn: Any, env: EventEnvelope) -> HandlerResult:
        return HandlerResult("ignored")

    with pytest.raises(ConfigurationError):
        h.processor.register("payment_intent.succeeded", noop)
    h.processor.register("transfer.reversed", noop)
    with pytest.raises(ConfigurationError):
        h.processor.register("transfer.reversed", noop)
    h.processor.register("transfer.reversed", noop, replace=True)
    assert "payment_intent.succeeded" in HANDLED_EVENT_TYPES


def test_registered_handler_can_defer_and_be_applied_later(h: Harness) -> None:
    """A handler deferring on its own key is applied by apply_deferred, callbacks included."""
    ready: set[str] = set()

    def on_paid(conn: Any, env: EventEnvelope) -> HandlerResult:
        tr = env.data.object["id"]
        if tr not in ready:
            return HandlerResult("deferred", waiting_for=tr)
        return HandlerResult("success", [Effect("payout_settled", {"transfer": tr})])

    h.processor.register("transfer.paid", on_paid)
    assert h.deliver(make_event("transfer.paid", transfer(id="tr_9"))).status == "deferred"
    ready.add("tr_9")
    effects = h.processor.apply_deferred("tr_9")
    assert [e.kind for e in effects] == ["payout_settled"] == h.kinds()


# -- replay, listing, results ---------------------------------------------------------------------


def test_replay_runs_stored_events_through_the_same_path(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed event is applied by replay(); a processed one answers already_processed."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("ledger down")

    with monkeypatch.context() as m:
        m.setattr(h.ledger, "record_payment", broken)
        events = [intent_succeeded(f"pi_{i}") for i in range(3)]
        for event in events:
            with pytest.raises(WebhookProcessingError):
                h.deliver(event)
    assert len(h.processor.list_events(status="failed")) == 3
    first = h.processor.replay(events[0]["id"])
    assert (first.status, first.event_id) == ("success", events[0]["id"])
    results = h.processor.replay_failed()
    assert sorted(str(r.event_id) for r in results) == sorted(e["id"] for e in events[1:])
    assert h.processor.list_events(status="failed") == []
    assert h.processor.replay(events[0]["id"]).status == "already_processed"
    assert h.kinds() == ["payment_succeeded"] * 3
    with pytest.raises(NotFoundError):
        h.processor.replay("evt_never_seen")


def test_replay_failed_keeps_going_past_events_that_fail_again(h: Harness) -> None:
    """replay_failed skips events still failing (left failed) and applies the rest."""

    def handler(conn: Any, env: EventEnvelope) -> HandlerResult:
        raise RuntimeError("still broken")

    h.processor.register("transfer.created", handler)
    bad = make_event("transfer.created", transfer())
    with pytest.raises(WebhookProcessingError):
        h.deliver(bad)
    assert h.processor.replay_failed() == []
    assert h.inbox(bad["id"])["attempts"] == 2


def test_replay_can_include_deferred_events(h: Harness) -> None:
    """replay_failed(include_deferred=True) re-tries deferred events (still waiting: deferred)."""
    refund = refunded("pi_1", 1000)
    h.deliver(refund)
    results = h.processor.replay_failed(include_deferred=True)
    assert [r.status for r in results] == ["deferred"]


def test_process_trusted_accepts_mappings_and_json(h: Harness) -> None:
    """Reconciliation passes Stripe-shaped mappings; replay passes stored JSON; no signature."""
    assert h.processor.process_trusted(intent_succeeded("pi_1")).status == "success"
    assert h.processor.process_trusted(encode_event(intent_succeeded("pi_2"))).status == "success"
    with pytest.raises(WebhookPayloadError):
        h.processor.process_trusted({"not": "an event"})


def test_expanded_references_from_api_objects_are_understood(h: Harness) -> None:
    """An expanded payment_intent object (as the API returns with expand=) is read by its id."""
    obj = checkout_session(payment_intent="pi_1", metadata=metadata(1))
    obj["payment_intent"] = payment_intent(id="pi_1", metadata=metadata(1))
    result = h.processor.process_trusted(make_event("checkout.session.completed", obj))
    assert result.status == "success" and h.has_payment("pi_1")


def test_list_events_filters_and_validates(h: Harness) -> None:
    """list_events is newest first, filters by status and refuses bad arguments."""
    h.deliver(intent_succeeded("pi_1"))
    h.deliver(make_event("customer.created", {"id": "cus_1"}))
    h.deliver(refunded("pi_2", 100))
    events = h.processor.list_events()
    assert [e.status for e in events] == ["deferred", "ignored", "processed"]
    assert [e.type for e in h.processor.list_events(status="ignored")] == ["customer.created"]
    assert len(h.processor.list_events(limit=1)) == 1
    assert events[0].as_dict()["waiting_for"] == "pi_2"
    with pytest.raises(InvalidRequestError):
        h.processor.list_events(status="weird")
    with pytest.raises(InvalidRequestError):
        h.processor.list_events(limit=0)


def test_result_renders_for_adapters(h: Harness) -> None:
    """WebhookResult.as_dict is the JSON body; every status is HTTP 200."""
    event = intent_succeeded("pi_1")
    result = h.deliver(event)
    assert result.as_dict() == {
        "status": "success",
        "event_id": event["id"],
        "event_type": "payment_intent.succeeded",
    }
    assert json.dumps(result.as_dict())
    assert WebhookResult("ignored", None, None).http_status == 200


def test_processor_refuses_an_unsupported_database(tmp_path: Any) -> None:
    """Only SQLite and PostgreSQL(-compatible) engines are accepted."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import Engine as SAEngine

    class FakeDialect:
        name = "mysql"

    engine = create_engine(f"sqlite:///{tmp_path}/x.db")
    fake: Any = type("E", (), {"dialect": FakeDialect()})()
    assert isinstance(engine, SAEngine)
    config = MentorpayConfig(webhook_secrets=[SECRET])
    with pytest.raises(ConfigurationError):
        WebhookProcessor(config, fake, None)  # type: ignore[arg-type]


# -- database trouble -----------------------------------------------------------------------------


class _SerializationFailure(Exception):
    """Stands in for a driver error carrying SQLSTATE 40001."""

    sqlstate = "40001"


def _serialization_error() -> Exception:
    from sqlalchemy.exc import OperationalError

    return OperationalError("UPDATE ...", {}, _SerializationFailure("could not serialize"))


def test_serialization_failure_is_retried_with_effects_once(h: Harness) -> None:
    """A 40001 inside the transaction reruns it; only the committed attempt's effect is sent."""
    calls = {"n": 0}

    def handler(conn: Any, env: EventEnvelope) -> HandlerResult:
        calls["n"] += 1
        if calls["n"] == 1:
            raise _serialization_error()
        return HandlerResult("success", [Effect("payout_settled", {"n": calls["n"]})])

    h.processor.register("transfer.created", handler)
    event = make_event("transfer.created", transfer())
    assert h.deliver(event).status == "success"
    assert calls["n"] == 2
    assert [e.data for e in h.effects] == [{"n": 2}]
    assert h.inbox(event["id"])["attempts"] == 1


def test_retries_exhausted_is_a_503_and_recorded(engine: Engine) -> None:
    """When serialization failures persist, DatabaseBusyError (503) and a failed inbox row."""
    from mentorpay.errors import DatabaseBusyError

    h = make_harness(engine, db_retries=1)

    def handler(conn: Any, env: EventEnvelope) -> HandlerResult:
        raise _serialization_error()

    h.processor.register("transfer.created", handler)
    event = make_event("transfer.created", transfer())
    with pytest.raises(DatabaseBusyError) as info:
        h.deliver(event)
    assert info.value.http_status == 503
    assert h.inbox(event["id"])["status"] == "failed"


def test_driver_errors_on_the_raw_path_are_sqlalchemy_errors(h: Harness) -> None:
    """Errors from statements run on the bare driver surface as SQLAlchemy's (so retries work)."""
    from sqlalchemy.exc import DBAPIError

    from mentorpay.db import driver_execute

    with h.engine.begin() as conn, pytest.raises(DBAPIError):
        driver_execute(conn, "SELEC nothing", ())


def test_a_failing_duplicate_peek_falls_back_to_the_claim(h: Harness) -> None:
    """If the cheap read fails, the delivery is still processed (and deduplicated) correctly."""
    event = intent_succeeded("pi_1")
    assert h.deliver(event).status == "success"
    h.processor._peek_sql = "SELECT no_such_column FROM mentorpay_webhook_events WHERE 1 = ?"
    if h.engine.dialect.name == "postgresql":
        h.processor._peek_sql = h.processor._peek_sql.replace("?", "%s")
    assert h.deliver(event).status == "already_processed"
    assert h.deliver(intent_succeeded("pi_2")).status == "success"
