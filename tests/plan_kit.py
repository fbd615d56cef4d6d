"""Shared set-up for the plan tests: a MentorPay on a fake clock selling one monthly plan,
a bigger monthly plan of the same mentor and a package, and the helpers that pay and send
Stripe's events the way Stripe would."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from mentorpay import BookingInfo, MentorPay, MentorpayConfig, Money, PlanInfo
from mentorpay.events import Effect
from mentorpay.testing import (
    STRIPE_API_VERSION,
    FakeBilling,
    FakeClock,
    FakeGateway,
    InMemoryBookings,
    InMemoryPlans,
    encode_event,
    make_event,
    sign_payload,
)

SECRET = "whsec_plans"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
OLDER_API = "2024-06-20"
MONTHLY = PlanInfo("monthly", "m1", "subscription", Money(8000, "GBP"), 4)
MONTHLY_PLUS = PlanInfo("monthly-plus", "m1", "subscription", Money(14000, "GBP"), 8)
PACKAGE = PlanInfo("pack5", "m1", "package", Money(20000, "GBP"), 5, validity=timedelta(days=90))
SUCCESS, CANCEL = "https://app.example/ok", "https://app.example/cancel"


@dataclass
class PlanWorld:
    """A MentorPay selling plans, its fake Stripe, clock and billing, and the effects seen."""

    mp: MentorPay
    gateway: FakeGateway
    clock: FakeClock
    billing: FakeBilling
    bookings: InMemoryBookings
    api_version: str
    effects: list[Effect] = field(default_factory=list)

    def send(self, events: list[tuple[str, dict[str, Any]]]) -> list[str]:
        """Sign and process Stripe's events in order; their statuses."""
        return [self.process(self.event(t, obj)) for t, obj in events]

    def event(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        """A Stripe event of ``obj`` made now (by the fake clock)."""
        created = int(self.clock().timestamp())
        return make_event(event_type, obj, created=created, api_version=self.api_version)

    def process(self, event: dict[str, Any]) -> str:
        """Sign and process one event; its status."""
        body = encode_event(event)
        return self.mp.webhooks.process(body, sign_payload(body, SECRET)).status

    def subscribe(self, plan_id: str = "monthly", mentee: str = "e1") -> str:
        """Buy a monthly plan through Checkout; the purchase id."""
        info = self.mp.checkout.create_plan_session(
            plan_id, user_id=mentee, success_url=SUCCESS, cancel_url=CANCEL
        )
        self.send(self.billing.subscribe(info.session_id))
        return info.plan_purchase_id

    def buy_package(self, mentee: str = "e1") -> str:
        """Buy the package through Checkout (card); the purchase id."""
        info = self.mp.checkout.create_plan_session(
            "pack5", user_id=mentee, success_url=SUCCESS, cancel_url=CANCEL
        )
        session = self.gateway.complete_checkout_session(info.session_id)
        intent = self.gateway.payment_intent(str(session["payment_intent"]))
        self.send([("checkout.session.completed", session), ("payment_intent.succeeded", intent)])
        return info.plan_purchase_id

    def book(self, booking_id: str, mentee: str = "e1", mentor: str = "m1") -> str:
        """A session booked with the host (paid with a credit, so no price of its own)."""
        self.bookings.add(BookingInfo(booking_id, mentee, mentor, None, "confirmed"))
        return booking_id

    def balance(self) -> tuple[int, int]:
        """Mentor m1's (pending, available) in GBP minor units."""
        view = self.mp.ledger.balance("m1", "GBP")
        return view.pending.amount, view.available.amount

    def assert_verified(self) -> None:
        """The journal and the materialized balances agree."""
        report = self.mp.ledger.verify(full=True)
        assert report.ok, report.problems


def plan_world(engine: Engine, api_version: str = STRIPE_API_VERSION) -> PlanWorld:
    """A fresh world on ``engine``, its clock at ``START``."""
    clock = FakeClock(START)
    gateway = FakeGateway(clock=clock)
    bookings = InMemoryBookings([])
    mp = MentorPay(
        MentorpayConfig(webhook_secrets=[SECRET]),
        engine,
        bookings=bookings,
        gateway=gateway,
        clock=clock,
        plans=InMemoryPlans([MONTHLY, MONTHLY_PLUS, PACKAGE]),
    )
    mp.create_schema()
    world = PlanWorld(
        mp, gateway, clock, FakeBilling(gateway, clock, api_version), bookings, api_version
    )
    for kind in ("plan_period_paid", "plan_payment_failed", "plan_canceled", "payment_succeeded"):
        mp.on(kind, world.effects.append)  # type: ignore[arg-type]
    return world
