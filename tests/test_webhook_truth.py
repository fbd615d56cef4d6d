"""Money moves only on what Stripe stated about mentorpay's bookings (issue 8: cases 1, 2, 6, 8).

Each test reproduces one way a correctly signed event used to move money it should not, and shows
that it now credits nobody (ignored, or parked on the platform's suspense account for review).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from mentorpay import (
    BookingInfo,
    GatewayConnectionError,
    MentorpayConfig,
    Money,
    WebhookSignatureError,
)
from mentorpay.app import MentorPay
from mentorpay.testing import (
    FakeGateway,
    InMemoryBookings,
    booking_metadata,
    charge,
    dispute,
    encode_event,
    make_event,
    payment_intent,
    sign_payload,
)
from mentorpay.webhooks import WebhookResult

SECRET = "whsec_truth"
LIVE_KEY = "sk_live_" + "x" * 24


def booking(**changes: Any) -> BookingInfo:
    """Booking 42: mentee 7 pays mentor 3 GBP 50.00."""
    values: dict[str, Any] = {
        "id": "42",
        "mentee_id": "7",
        "mentor_id": "3",
        "price": Money(5000, "GBP"),
        "status": "confirmed",
    }
    values.update(changes)
    return BookingInfo(**values)


def make_mp(engine: Engine, *books: BookingInfo, **config: Any) -> tuple[MentorPay, FakeGateway]:
    """A MentorPay over ``books`` with a FakeGateway."""
    config.setdefault("webhook_secrets", [SECRET])
    fake = FakeGateway()
    mp = MentorPay(
        MentorpayConfig(**config),
        engine,
        bookings=InMemoryBookings(list(books) or [booking()]),
        gateway=fake,
    )
    return mp, fake


def send(mp: MentorPay, event_type: str, obj: dict[str, Any], **envelope: Any) -> WebhookResult:
    """Sign and process one event."""
    body = encode_event(make_event(event_type, obj, **envelope))
    return mp.webhooks.process(body, sign_payload(body, SECRET))


def own_intent(pi: str = "pi_1", amount: int = 5000, currency: str = "gbp", **meta: str) -> Any:
    """A payment intent of the host's own flow for booking 42 (no mentorpay checkout row)."""
    md = booking_metadata(meta.pop("booking_id", "42"), mentor_id="3", mentee_id="7")
    md.update(meta)
    return payment_intent(id=pi, amount=amount, currency=currency, metadata=md)


def mentor_money(mp: MentorPay, *mentors: str) -> int:
    """Sum of absolute balance fields of the given mentors in every currency."""
    total = 0
    for mentor in mentors:
        for view in mp.ledger.balances(mentor):
            total += sum(
                abs(getattr(view, f).amount)
                for f in ("pending", "available", "held", "reserved", "withdrawn")
            )
    return total


def paid_session(mp: MentorPay, fake: FakeGateway, **changes: Any) -> dict[str, Any]:
    """Create mentorpay's checkout session for booking 42 and complete it at the fake Stripe."""
    info = mp.checkout.create_session(
        "42", user_id="7", success_url="https://a.test/ok", cancel_url="https://a.test/no"
    )
    session = fake.complete_checkout_session(info.session_id)
    session.update(changes)
    return session


# -- case 1: mode and origin --------------------------------------------------------------------


def test_test_mode_event_under_live_config_credits_nobody(engine: Engine) -> None:
    """A signed test-mode payment under a live key is recorded, ignored, and credits nobody."""
    mp, _ = make_mp(engine, stripe_secret_key=LIVE_KEY)
    assert mp.config.livemode is True
    result = send(mp, "payment_intent.succeeded", own_intent(), livemode=False)
    assert (result.status, result.http_status) == ("ignored", 200)
    assert mentor_money(mp, "3") == 0
    (row,) = mp.webhooks.list_events()
    assert row.status == "ignored"
    assert row.last_error is not None and "livemode" in row.last_error


def test_live_event_under_test_config_credits_nobody(engine: Engine) -> None:
    """A livemode event reaching a test-mode configuration moves no money."""
    mp, _ = make_mp(engine)
    assert mp.config.livemode is False
    result = send(mp, "payment_intent.succeeded", own_intent(), livemode=True)
    assert result.status == "ignored"
    assert mentor_money(mp, "3") == 0


def test_connected_account_event_credits_nobody(engine: Engine) -> None:
    """An event sent on behalf of a connected account (``account`` set) never moves money."""
    mp, _ = make_mp(engine)
    result = send(mp, "payment_intent.succeeded", own_intent(), account="acct_mentor_standard")
    assert result.status == "ignored"
    assert mentor_money(mp, "3") == 0
    (row,) = mp.webhooks.list_events()
    assert row.last_error is not None and "acct_mentor_standard" in row.last_error


def test_connected_account_refund_changes_nothing(engine: Engine) -> None:
    """A connected account's charge.refunded for a real payment leaves the ledger untouched."""
    mp, _ = make_mp(engine)
    assert send(mp, "payment_intent.succeeded", own_intent()).status == "success"
    refund = charge(payment_intent="pi_1", amount=5000, amount_refunded=5000, currency="gbp")
    assert send(mp, "charge.refunded", refund, account="acct_x").status == "ignored"
    assert mp.ledger.balance("3", "GBP").pending == Money(4500, "GBP")


# -- case 2: the payment's truth is ours --------------------------------------------------------


def test_underpayment_of_checkout_session_goes_to_review(engine: Engine) -> None:
    """1.00 paid on a 50.00 booking's session credits nobody and parks the money for review."""
    mp, fake = make_mp(engine)
    session = paid_session(mp, fake, amount_total=100, amount_subtotal=100)
    result = send(mp, "checkout.session.completed", session)
    assert (result.status, result.http_status) == ("needs_review", 200)
    assert mentor_money(mp, "3") == 0
    assert mp.ledger.suspense("GBP") == Money(100, "GBP")
    assert mp.ledger.platform_commission("GBP") == Money(0, "GBP")
    assert mp.ledger.verify().ok
    # The booking does not count as paid: the mentee can still pay it properly.
    mp.checkout.create_session(
        "42", user_id="7", success_url="https://a.test/ok", cancel_url="https://a.test/no"
    )


def test_other_currency_goes_to_review(engine: Engine) -> None:
    """A JPY payment for a GBP booking is not credited."""
    mp, fake = make_mp(engine)
    session = paid_session(mp, fake, currency="jpy")
    assert send(mp, "checkout.session.completed", session).status == "needs_review"
    assert mentor_money(mp, "3") == 0
    assert mp.ledger.suspense("JPY") == Money(5000, "JPY")


def test_metadata_naming_another_mentor_credits_nobody(engine: Engine) -> None:
    """Metadata naming mentor 999 on booking 42 never credits mentor 999 (nor mentor 3)."""
    mp, fake = make_mp(engine)
    session = paid_session(mp, fake)
    session["metadata"] = {**session["metadata"], "mentor_id": "999"}
    assert send(mp, "checkout.session.completed", session).status == "needs_review"
    assert mentor_money(mp, "999", "3") == 0


def test_intent_metadata_for_another_mentor_in_own_flow(engine: Engine) -> None:
    """Host's own PaymentIntent flow: metadata naming mentor 999 disagrees with the booking."""
    mp, _ = make_mp(engine)
    intent = own_intent()
    intent["metadata"]["mentor_id"] = "999"
    assert send(mp, "payment_intent.succeeded", intent).status == "needs_review"
    assert mentor_money(mp, "999", "3") == 0


def test_unknown_booking_goes_to_review(engine: Engine) -> None:
    """A payment naming a booking the host does not know is not credited."""
    mp, _ = make_mp(engine)
    result = send(mp, "payment_intent.succeeded", own_intent(booking_id="777"))
    assert result.status == "needs_review"
    assert mentor_money(mp, "3") == 0
    assert mp.ledger.suspense("GBP") == Money(5000, "GBP")


def test_own_flow_matching_booking_is_credited(engine: Engine) -> None:
    """Host's own PaymentIntent flow: a payment agreeing with the booking credits its mentor."""
    mp, _ = make_mp(engine)
    assert send(mp, "payment_intent.succeeded", own_intent()).status == "success"
    assert mp.ledger.balance("3", "GBP").pending == Money(4500, "GBP")


def test_reassigned_and_repriced_booking_credits_nobody(engine: Engine) -> None:
    """A booking reassigned and repriced while its session was open credits neither mentor."""
    bookings = InMemoryBookings([booking()])
    fake = FakeGateway()
    mp = MentorPay(
        MentorpayConfig(webhook_secrets=[SECRET]), engine, bookings=bookings, gateway=fake
    )
    info = mp.checkout.create_session(
        "42", user_id="7", success_url="https://a.test/ok", cancel_url="https://a.test/no"
    )
    bookings.add(booking(mentor_id="4", price=Money(6000, "GBP")))
    session = fake.complete_checkout_session(info.session_id)
    assert send(mp, "checkout.session.completed", session).status == "needs_review"
    assert mentor_money(mp, "3", "4") == 0


def test_second_payment_for_paid_booking_goes_to_review(engine: Engine) -> None:
    """A second payment for an already-paid booking credits nobody."""
    mp, _ = make_mp(engine)
    assert send(mp, "payment_intent.succeeded", own_intent("pi_1")).status == "success"
    assert send(mp, "payment_intent.succeeded", own_intent("pi_2")).status == "needs_review"
    assert mp.ledger.balance("3", "GBP").pending == Money(4500, "GBP")
    assert mp.ledger.suspense("GBP") == Money(5000, "GBP")


def test_review_effect_and_listing(engine: Engine) -> None:
    """A payment parked for review fires payment_needs_review and is listed for operators."""
    mp, _ = make_mp(engine)
    seen: list[Any] = []
    mp.on("payment_needs_review", seen.append)
    send(mp, "payment_intent.succeeded", own_intent(amount=100))
    assert [e.data["payment_intent_id"] for e in seen] == ["pi_1"]
    assert seen[0].data["reason"].startswith("amount")
    (item,) = mp.payments.review_queue()
    assert (item.payment_intent_id, item.booking_id) == ("pi_1", "42")


def test_resolve_credit_moves_suspense_to_mentor(engine: Engine) -> None:
    """An operator crediting a reviewed payment splits what was paid to the booking's mentor."""
    mp, _ = make_mp(engine)
    send(mp, "payment_intent.succeeded", own_intent(amount=6000))
    mp.payments.resolve("pi_1", action="credit")
    assert mp.ledger.balance("3", "GBP").pending == Money(5400, "GBP")
    assert mp.ledger.platform_commission("GBP") == Money(600, "GBP")
    assert mp.ledger.suspense("GBP") == Money(0, "GBP")
    assert mp.ledger.payment("pi_1").status == "succeeded"
    assert mp.ledger.verify().ok
    assert mp.payments.review_queue() == []


def test_resolve_refund_calls_stripe_once_with_a_fixed_key(engine: Engine) -> None:
    """Refunding a reviewed payment asks Stripe with a deterministic key and empties suspense."""
    mp, fake = make_mp(engine)
    send(mp, "payment_intent.succeeded", fake.add_payment_intent(own_intent(amount=100)))
    mp.payments.resolve("pi_1", action="refund")
    mp.payments.resolve("pi_1", action="refund")  # a retry repeats, never doubles
    calls = fake.calls_to("create_refund")
    assert len({c.idempotency_key for c in calls}) == 1
    assert mp.ledger.suspense("GBP") == Money(0, "GBP")
    assert mp.ledger.verify().ok
    # Stripe's charge.refunded afterwards changes nothing more.
    refunded = charge(payment_intent="pi_1", amount=100, amount_refunded=100, currency="gbp")
    send(mp, "charge.refunded", refunded)
    assert mp.ledger.suspense("GBP") == Money(0, "GBP")
    assert mp.ledger.verify().ok


def test_duplicate_payment_refunded_automatically_when_configured(engine: Engine) -> None:
    """With refund_duplicate_payments, a second payment of a paid booking is refunded."""
    mp, fake = make_mp(engine, refund_duplicate_payments=True)
    send(mp, "payment_intent.succeeded", fake.add_payment_intent(own_intent("pi_1")))
    duplicate = fake.add_payment_intent(own_intent("pi_2"))
    assert send(mp, "payment_intent.succeeded", duplicate).status == "needs_review"
    (call,) = fake.calls_to("create_refund")
    assert call.args["payment_intent_id"] == "pi_2"
    assert mp.ledger.suspense("GBP") == Money(0, "GBP")


# -- case 6: inquiries and several disputes -----------------------------------------------------


def _usd_payment(mp: MentorPay, amount: int) -> None:
    intent = own_intent(amount=amount, currency="usd")
    assert send(mp, "payment_intent.succeeded", intent).status == "success"


@pytest.mark.parametrize(
    ("refunded", "pending", "available"), [(1099, 0, 0), (329, 0, 693)], ids=["full", "partial"]
)
def test_inquiry_refund_close_then_release_leaves_nothing_pending(
    engine: Engine, refunded: int, pending: int, available: int
) -> None:
    """Inquiry, refund, inquiry closed, release: pending is empty and available is exact."""
    mp, _ = make_mp(engine, booking(price=Money(1099, "USD")))
    _usd_payment(mp, 1099)
    inquiry = dispute(
        id="dp_1",
        payment_intent="pi_1",
        amount=1000,
        currency="usd",
        status="warning_needs_response",
    )
    send(mp, "charge.dispute.created", inquiry)
    send(
        mp,
        "charge.refunded",
        charge(payment_intent="pi_1", amount=1099, amount_refunded=refunded, currency="usd"),
    )
    send(mp, "charge.dispute.closed", {**inquiry, "status": "warning_closed"})
    mp.ledger.release("42")
    view = mp.ledger.balance("3", "USD")
    assert (view.pending.amount, view.available.amount, view.held.amount) == (
        pending,
        available,
        0,
    )
    assert mp.ledger.verify().ok


def test_two_disputes_each_hold_their_own_share(engine: Engine) -> None:
    """Losing a second dispute reverses its own amount; the first one's hold is kept apart."""
    mp, _ = make_mp(engine, booking(price=Money(1000, "USD")))
    _usd_payment(mp, 1000)  # fee 100, mentor 900
    first = dispute(id="dp_a", payment_intent="pi_1", amount=400, currency="usd")
    second = dispute(id="dp_b", payment_intent="pi_1", amount=300, currency="usd")
    send(mp, "charge.dispute.created", first)
    send(mp, "charge.dispute.created", second)
    assert mp.ledger.balance("3", "USD").held == Money(630, "USD")
    send(mp, "charge.dispute.closed", {**second, "status": "lost"})
    assert mp.ledger.balance("3", "USD").held == Money(360, "USD")
    send(mp, "charge.dispute.closed", {**first, "status": "won"})
    view = mp.ledger.balance("3", "USD")
    assert (view.pending.amount, view.held.amount) == (630, 0)
    assert mp.ledger.platform_commission("USD") == Money(70, "USD")
    assert mp.ledger.verify().ok


# -- case 8: permanent errors are rejected, not retried forever ---------------------------------


def test_refund_in_another_currency_is_rejected_not_retried(engine: Engine) -> None:
    """An event that can never apply is recorded rejected, answered 200, and alerts the host."""
    mp, _ = make_mp(engine)
    send(mp, "payment_intent.succeeded", own_intent())
    alerts: list[Any] = []
    mp.on("event_rejected", alerts.append)
    bad = charge(payment_intent="pi_1", amount=5000, amount_refunded=1000, currency="usd")
    result = send(mp, "charge.refunded", bad)
    assert (result.status, result.http_status) == ("rejected", 200)
    assert [a.data["event_type"] for a in alerts] == ["charge.refunded"]
    (row,) = mp.webhooks.list_events(status="rejected")
    assert row.last_error is not None and "currency" in row.last_error.lower()
    assert mp.ledger.balance("3", "GBP").pending == Money(4500, "GBP")


@pytest.mark.parametrize(
    "header",
    ["t=1,v1=\u00e9\u00e9\u00e9", "t=1,v1=abc\udcff", "t=\u0661\u0662,v1=00"],
    ids=["latin1", "surrogate", "arabic-digits"],
)
def test_non_ascii_signature_header_is_a_400(engine: Engine, header: str) -> None:
    """A Stripe-Signature with non-ASCII bytes is a WebhookSignatureError, never a crash."""
    mp, _ = make_mp(engine)
    body = encode_event(make_event("payment_intent.succeeded", own_intent()))
    with pytest.raises(WebhookSignatureError) as info:
        mp.webhooks.process(body, header)
    assert info.value.http_status == 400


def test_failed_automatic_duplicate_refund_is_retried_by_the_outbox(engine: Engine) -> None:
    """A duplicate's automatic refund that fails stays pending and is retried with its key."""
    mp, fake = make_mp(engine, refund_duplicate_payments=True)
    send(mp, "payment_intent.succeeded", fake.add_payment_intent(own_intent("pi_1")))
    duplicate = fake.add_payment_intent(own_intent("pi_2"))
    fake.fail_next(GatewayConnectionError("lost"), method="create_refund", performed=True)
    assert send(mp, "payment_intent.succeeded", duplicate).status == "needs_review"
    assert mp.ledger.suspense("GBP") == Money(5000, "GBP")
    report = mp.outbox.deliver_pending()
    assert report.delivered == 1
    keys = {c.idempotency_key for c in fake.calls_to("create_refund")}
    assert len(keys) == 1
    assert mp.ledger.suspense("GBP") == Money(0, "GBP")


# -- faults the mutation runner found in the truth path -----------------------------------------


def connect_booking() -> BookingInfo:
    """Booking 42 with mentor 3's connected account, for destination charges."""
    return booking(mentor_stripe_account="acct_mentor3")


def test_destination_other_than_the_mentors_account_goes_to_review(engine: Engine) -> None:
    """Kills the destination check (`or` -> `and`, the reason dropped): a diverted share."""
    mp, _ = make_mp(engine, connect_booking(), connect_destination_charges=True)
    intent = own_intent()
    intent["transfer_data"] = {"destination": "acct_someone_else"}
    intent["application_fee_amount"] = 500
    result = send(mp, "payment_intent.succeeded", intent)
    assert result.status == "needs_review"
    assert "destination_mismatch" in (mp.ledger.payment("pi_1").review_reason or "")
    assert mentor_money(mp, "3") == 0


def test_the_fee_stripe_kept_wins_over_the_checkout_rows(engine: Engine) -> None:
    """Kills `platform_fee is None and row` -> `or`: Stripe's application fee is recorded."""
    mp, fake = make_mp(engine, connect_booking(), connect_destination_charges=True)
    session = paid_session(mp, fake)
    intent = fake.payment_intent(session["payment_intent"])
    intent["application_fee_amount"] = 700  # the row asked for 500; Stripe kept 700
    assert send(mp, "payment_intent.succeeded", intent).status == "success"
    record = mp.ledger.payment(intent["id"])
    assert (record.platform_fee, record.mentor_payout) == (Money(700, "GBP"), Money(4300, "GBP"))


def test_a_reviewed_payment_keeps_the_bookings_mentor_when_known(engine: Engine) -> None:
    """Kills `review is None or booking is not None` -> `and`: who to credit, if resolved."""
    mp, _ = make_mp(engine)
    send(mp, "payment_intent.succeeded", own_intent("pi_1", amount=100))
    send(mp, "payment_intent.succeeded", own_intent("pi_2", booking_id="777"))
    assert mp.ledger.payment("pi_1").mentor_id == "3"
    assert mp.ledger.payment("pi_2").mentor_id == ""  # unknown booking: nobody yet


def test_payment_succeeded_effect_carries_the_split(engine: Engine) -> None:
    """Kills the dropped `data.update(platform_fee=..., ...)`: hosts get the split it made."""
    mp, _ = make_mp(engine)
    seen: list[Any] = []
    mp.on("payment_succeeded", seen.append)
    send(mp, "payment_intent.succeeded", own_intent())
    (effect,) = seen
    assert (effect.data["platform_fee"], effect.data["mentor_payout"]) == (500, 4500)
    assert effect.data["rate_bps"] == 1000


def test_metadata_naming_only_a_booking_is_not_mentorpays(engine: Engine) -> None:
    """Kills `all(values)` -> `any(values)`: without mentor and mentee ids it is not ours."""
    mp, _ = make_mp(engine)
    intent = payment_intent(id="pi_1", amount=5000, currency="gbp", metadata={"booking_id": "42"})
    assert send(mp, "payment_intent.succeeded", intent).status == "ignored"
    assert mentor_money(mp, "3") == 0
