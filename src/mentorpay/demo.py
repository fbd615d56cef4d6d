"""``mentorpay demo``: the whole flow on a local SQLite file, no Stripe account needed.

Bookings -> Checkout (FakeGateway) -> signed webhooks (a duplicate, sibling events, a refund
that arrives before its payment, a dispute) -> release -> payout -> transfer webhook -> balances
and ``verify()``; then mentorship plans: a monthly plan and a package sold through Checkout,
credits spent and released, a renewal on the fake clock and the lapse of unused credits.
Everything goes through the same public API a host application uses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from mentorpay._text_tables import BALANCE_HEADERS, balance_rows, table
from mentorpay.app import MentorPay
from mentorpay.bookings import BookingInfo
from mentorpay.config import MentorpayConfig
from mentorpay.db import make_engine
from mentorpay.events import Effect
from mentorpay.money import Money
from mentorpay.plans import PlanInfo
from mentorpay.testing import (
    FakeBilling,
    FakeClock,
    FakeGateway,
    InMemoryBookings,
    InMemoryPlans,
    OutboxMailer,
    encode_event,
    make_event,
    sign_payload,
)

__all__ = ["run_demo"]

Say = Callable[[str], None]
Progress = Callable[[int, int, str], None]

DEMO_SECRET = "whsec_mentorpay_demo_only"  # noqa: S105 - a public demo value, never a real secret
MENTEE = "mentee-7"
BOOKINGS = (
    BookingInfo("42", MENTEE, "alice", Money.parse("50.00", "GBP"), "confirmed", "acct_alice"),
    BookingInfo("43", MENTEE, "alice", Money.parse("100.00", "GBP"), "confirmed", "acct_alice"),
    BookingInfo("44", MENTEE, "bob", Money.parse("150.00", "GBP"), "confirmed", "acct_bob"),
    BookingInfo("45", MENTEE, "bob", Money.parse("200.00", "GBP"), "confirmed", "acct_bob"),
    BookingInfo("46", MENTEE, "chiyo", Money.parse("5000", "JPY"), "confirmed", "acct_chiyo"),
)

#: Sold after the bookings' story, by a mentor of their own so the figures above stay apart.
PLAN_MENTOR = "dana"
PLANS = (
    PlanInfo(
        "dana-monthly",
        PLAN_MENTOR,
        "subscription",
        Money.parse("80.00", "GBP"),
        4,
        name="Monthly mentoring with dana",
    ),
    PlanInfo(
        "dana-pack5",
        PLAN_MENTOR,
        "package",
        Money.parse("200.00", "GBP"),
        5,
        name="5 sessions with dana",
        validity=timedelta(days=90),
    ),
)


def _no_progress(done: int, total: int, label: str) -> None:
    del done, total, label


class _Stripe:
    """Plays Stripe's part: the customer pays, and the webhooks Stripe would send arrive."""

    def __init__(self, mp: MentorPay, gateway: FakeGateway) -> None:
        self.mp = mp
        self.gateway = gateway
        self.statuses: Counter[str] = Counter()

    def deliver(self, event_type: str, obj: Mapping[str, Any], event_id: str | None = None) -> str:
        event = make_event(event_type, obj, event_id=event_id)
        body = encode_event(event)
        result = self.mp.webhooks.process(body, sign_payload(body, DEMO_SECRET))
        self.statuses[result.status] += 1
        return result.status


def run_demo(path: Path, say: Say, *, fresh: bool = True, progress: Progress = _no_progress) -> int:
    """Run the demo against the SQLite file at ``path``; returns the process exit code."""
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    # Real time until the plans' part moves it on a month (a renewal).
    clock = FakeClock()
    gateway = FakeGateway(
        checkout_url_template="https://checkout.example/{session_id}", clock=clock
    )
    config = MentorpayConfig(webhook_secrets=[DEMO_SECRET], payout_mode="stripe_transfer")
    bookings = InMemoryBookings(BOOKINGS)
    mp = MentorPay(
        config,
        make_engine(f"sqlite:///{path}"),
        bookings=bookings,
        gateway=gateway,
        clock=clock,
        plans=InMemoryPlans(PLANS),
    )
    try:
        code = _walk_through(mp, gateway, say, progress)
        if code == 0:
            _plans_story(mp, _Stripe(mp, gateway), bookings, clock, say)
            code = _verify(mp, say)
        return code
    finally:
        mp.engine.dispose()


def _walk_through(mp: MentorPay, gateway: FakeGateway, say: Say, progress: Progress) -> int:
    mp.upgrade_schema()
    stripe = _Stripe(mp, gateway)
    notifications: list[str] = []

    def notify(effect: Effect) -> None:
        notifications.append(effect.kind)

    for kind in ("payment_succeeded", "refund_applied", "dispute_opened", "dispute_closed"):
        mp.on(kind, notify)
    mp.on("payout_settled", notify)
    outbox = OutboxMailer()
    mp.send_receipts(outbox, lambda user_id: f"{user_id}@example.test")

    say(f"mentorpay demo (commission {mp.config.commission.rate_bps / 100:g}%, offline Stripe)\n")
    intents: dict[str, str] = {}
    sessions: dict[str, dict[str, Any]] = {}
    for done, booking in enumerate(BOOKINGS, start=1):
        info = mp.checkout.create_session(
            booking.id,
            user_id=MENTEE,
            success_url="https://app.example/paid?session={CHECKOUT_SESSION_ID}",
            cancel_url="https://app.example/cancelled",
        )
        sessions[booking.id] = gateway.complete_checkout_session(info.session_id)
        intents[booking.id] = str(sessions[booking.id]["payment_intent"])
        progress(done, len(BOOKINGS), "checkout")

    # Booking 45 is refunded at Stripe, and that webhook overtakes the payment's own events.
    refund_first = gateway.create_refund(
        payment_intent_id=intents["45"],
        amount=Money.parse("50.00", "GBP"),
        idempotency_key="demo-refund-45",
    )
    early_charge = gateway.charge(refund_first.charge_id or "")
    early = stripe.deliver("charge.refunded", early_charge)
    say(f"Refund webhook for booking 45 arrived before its payment: {early}")

    rows = []
    total = len(BOOKINGS)
    for done, booking in enumerate(BOOKINGS, start=1):
        session = sessions[booking.id]
        intent = gateway.payment_intent(intents[booking.id])
        first = stripe.deliver("checkout.session.completed", session, f"evt_demo_cs_{booking.id}")
        sibling = stripe.deliver("payment_intent.succeeded", intent)
        payment = mp.ledger.payment(intents[booking.id])
        rows.append(
            [
                booking.id,
                payment.mentor_id,
                str(payment.gross),
                str(payment.platform_fee),
                str(payment.mentor_payout),
                f"{first} / {sibling}",
            ]
        )
        progress(done, total, "webhooks")
    say("\nPayments (checkout.session.completed / payment_intent.succeeded):")
    say(table(["booking", "mentor", "paid", "platform fee", "mentor payout", "webhooks"], rows))

    again = stripe.deliver("checkout.session.completed", sessions["42"], "evt_demo_cs_42")
    say(f"\nStripe delivers booking 42's event again: {again}")
    say(f"Booking 45 after its early refund: {mp.ledger.payment(intents['45']).status}")

    mp.refunds.refund(intents["43"], Money.parse("30.00", "GBP"))
    charge_43 = gateway.payment_intent(intents["43"])["latest_charge"]
    stripe.deliver("charge.refunded", gateway.charge(charge_43))
    say("Booking 43 partially refunded by the platform: 30.00 GBP (fee and payout pro rata)")

    dispute = gateway.open_dispute(intents["44"])
    stripe.deliver("charge.dispute.created", dispute)
    held = mp.ledger.balance("bob", "GBP").held
    say(f"Booking 44 disputed by the cardholder: {held} of bob's earnings held")
    stripe.deliver("charge.dispute.closed", gateway.close_dispute(dispute["id"], won=True))
    say("The platform won the dispute: the hold is released")

    for booking_id in ("42", "44", "46"):
        mp.ledger.release(booking_id)
    say("Sessions 42, 44 and 46 took place: their earnings are available")

    payout = mp.payouts.request("bob", Money.parse("100.00", "GBP"), destination="acct_bob")
    mp.payouts.approve(payout.id, approver="admin-1")
    executed = mp.payouts.execute(payout.id)
    stripe.deliver("transfer.created", gateway.transfer(executed.transfer_id or ""))
    say(f"Bob withdrew 100.00 GBP: payout {payout.id} is {mp.payouts.get(payout.id).status}")

    views = [v for mentor in ("alice", "bob", "chiyo") for v in mp.ledger.balances(mentor)]
    say("\nBalances:")
    say(table(BALANCE_HEADERS, balance_rows(views)))
    for currency in ("GBP", "JPY"):
        say(f"Platform commission {currency}: {mp.ledger.platform_commission(currency)}")
    say(
        "Webhook answers: "
        + ", ".join(f"{status} x{count}" for status, count in sorted(stripe.statuses.items()))
    )
    say(f"After-commit notifications sent: {len(notifications)} ({dict(Counter(notifications))})")
    say(f"Emails in the outbox: {len(outbox.messages)}, e.g. {outbox.messages[0].subject!r}")
    report = mp.ledger.verify()
    return 0 if report.ok else _verify(mp, say)


def _verify(mp: MentorPay, say: Say) -> int:
    report = mp.ledger.verify()
    outcome = "OK" if report.ok else "PROBLEMS: " + "; ".join(report.problems)
    say(f"Ledger verify: {outcome} ({report.transactions} journal transactions)")
    return 0 if report.ok else 2


def _plan_rows(mp: MentorPay) -> list[list[object]]:
    return [
        [v.plan_id, v.kind, v.status, len(v.periods), v.credits_left]
        for v in mp.plans.list_purchases(mentee_id=MENTEE)
    ]


def _plans_story(
    mp: MentorPay, stripe: _Stripe, bookings: InMemoryBookings, clock: FakeClock, say: Say
) -> None:
    """A monthly plan and a package of dana's: bought, a credit spent on a session that takes
    place, one renewal a month later, and the first month's unused credits lapsing."""
    billing = FakeBilling(stripe.gateway, clock)
    urls = {"success_url": "https://app.example/plans", "cancel_url": "https://app.example/"}
    monthly = mp.checkout.create_plan_session("dana-monthly", user_id=MENTEE, **urls)
    for event_type, obj in billing.subscribe(monthly.session_id):
        stripe.deliver(event_type, obj)
    package = mp.checkout.create_plan_session("dana-pack5", user_id=MENTEE, **urls)
    session = stripe.gateway.complete_checkout_session(package.session_id)
    stripe.deliver("checkout.session.completed", session)
    stripe.deliver(
        "payment_intent.succeeded", stripe.gateway.payment_intent(session["payment_intent"])
    )
    say(f"\nPlans: {MENTEE} subscribes to dana's monthly plan and buys her 5-session package")
    for purchase, booking_id in ((monthly, "p1"), (package, "p2")):
        bookings.add(BookingInfo(booking_id, MENTEE, PLAN_MENTOR, None, "confirmed"))
        credit = mp.plans.consume(purchase.plan_purchase_id, booking_id)
        mp.ledger.release(booking_id)
        say(f"Session {booking_id} paid with a {purchase.plan_id} credit took place: "
            f"{credit.share} released to dana")  # fmt: skip
    say(table(["plan", "kind", "status", "periods", "credits left"], _plan_rows(mp)))
    clock.advance(timedelta(days=31))
    for event_type, obj in billing.renew_due():
        stripe.deliver(event_type, obj)
    lapsed = mp.plans.expire_due()
    say(f"A month later the plan renews; {lapsed} period's unused credits lapse (their share "
        "goes to dana):")  # fmt: skip
    say(table(["plan", "kind", "status", "periods", "credits left"], _plan_rows(mp)))
    earned = [
        [
            v.plan_id,
            len(v.periods),
            str(sum((p.mentor_payout for p in v.periods), Money.zero("GBP"))),
        ]
        for v in mp.plans.list_purchases(mentor_id=PLAN_MENTOR)
    ]
    say("Dana's plan earnings (in her balance like any payment):")
    say(table(["plan", "paid periods", "mentor share"], earned))
    say(table(BALANCE_HEADERS, balance_rows(mp.ledger.balances(PLAN_MENTOR))))
