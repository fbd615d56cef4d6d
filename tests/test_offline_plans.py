"""The offline checkout sells plans: its page shows the plan (name, sessions, price, per month),
paying a package works like a booking, paying a monthly plan subscribes through FakeBilling,
and advancing the clock delivers the renewals that fell due."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from mentorpay import InvalidRequestError
from mentorpay.testing import InMemoryPlans, OfflineCheckout, SignedEvent
from tests.plan_kit import (
    CANCEL,
    MONTHLY,
    MONTHLY_PLUS,
    PACKAGE,
    SECRET,
    START,
    SUCCESS,
    plan_world,
)

URL = "http://127.0.0.1:9/payments/webhook"


class Offline:
    """A plan world with the offline checkout on its gateway and clock; webhooks go straight
    to mentorpay's processor."""

    def __init__(self, engine: Engine) -> None:
        self.w = plan_world(engine)
        plans = InMemoryPlans([MONTHLY, MONTHLY_PLUS, PACKAGE])
        self.offline = OfflineCheckout(self.w.gateway, SECRET, clock=self.w.clock, plans=plans)
        self.statuses: list[tuple[str, str]] = []

    def deliver(self, url: str, event: SignedEvent) -> int:
        """The app's webhook route."""
        result = self.w.mp.webhooks.process(event.body, event.signature)
        self.statuses.append((event.event_type, result.status))
        return result.http_status

    def session(self, plan_id: str) -> tuple[str, str]:
        """A checkout of ``plan_id`` for mentee e1: (session id, purchase id)."""
        info = self.w.mp.checkout.create_plan_session(
            plan_id, user_id="e1", success_url=SUCCESS, cancel_url=CANCEL
        )
        return info.session_id, info.plan_purchase_id


def test_the_page_shows_a_monthly_plan_and_offers_the_card_only(engine: Engine) -> None:
    """A subscription session's page names the plan, its sessions and the price per month."""
    o = Offline(engine)
    session_id, _ = o.session("monthly")
    page = o.offline.page_html(session_id, "/pay")
    assert "id='plan'>4 mentoring sessions per month</b>" in page
    assert "id='plan-sessions'>4<" in page
    assert "80.00 GBP per month" in page or "£80.00 per month" in page
    assert 'id="pay"' in page and "pay-card_declined" not in page
    assert "Booking" not in page


def test_the_page_shows_a_package_with_every_scenario(engine: Engine) -> None:
    """A package session's page shows its sessions and price, not per month."""
    o = Offline(engine)
    session_id, _ = o.session("pack5")
    page = o.offline.page_html(session_id, "/pay")
    assert "id='plan-sessions'>5<" in page and "per month" not in page
    assert "pay-bank_debit" in page


def test_paying_a_monthly_plan_subscribes_and_grants_credits(engine: Engine) -> None:
    """The card scenario subscribes: every event is accepted and the mentee has 4 credits."""
    o = Offline(engine)
    session_id, purchase = o.session("monthly")
    paid = o.offline.pay_and_deliver(session_id, URL, o.deliver)
    assert paid.outcome == "paid" and paid.success_url == SUCCESS
    assert paid.payment_intent_id.startswith("pi_")
    assert {status for _, status in o.statuses} <= {"success", "ignored"}
    view = o.w.mp.plans.get(purchase)
    assert (view.status, view.credits_left) == ("active", 4)
    o.w.assert_verified()


def test_a_subscription_refuses_other_scenarios(engine: Engine) -> None:
    """A declined card or a bank debit on a subscription is a clear 400; the session stays open."""
    o = Offline(engine)
    session_id, _ = o.session("monthly")
    with pytest.raises(InvalidRequestError, match="working card only") as err:
        o.offline.pay_and_deliver(session_id, URL, o.deliver, scenario="bank_debit")
    assert err.value.http_status == 400
    assert o.w.gateway.session(session_id)["status"] == "open"


def test_paying_a_package_works_like_a_booking(engine: Engine) -> None:
    """A package is paid by card like a booking and grants its 5 credits."""
    o = Offline(engine)
    session_id, purchase = o.session("pack5")
    o.offline.pay_and_deliver(session_id, URL, o.deliver)
    assert o.w.mp.plans.get(purchase).credits_left == 5
    assert o.w.balance() == (18000, 0)
    o.w.assert_verified()


def test_advance_delivers_the_renewals_that_fell_due(engine: Engine) -> None:
    """Advancing past the period's end renews the subscription: a second paid period."""
    o = Offline(engine)
    session_id, purchase = o.session("monthly")
    o.offline.pay_and_deliver(session_id, URL, o.deliver)
    assert o.offline.advance(timedelta(days=10), URL, o.deliver) == []
    sent = o.offline.advance(timedelta(days=21), URL, o.deliver)
    assert "invoice.paid" in [e.event_type for e in sent]
    assert len(o.w.mp.plans.get(purchase).periods) == 2
    assert o.w.mp.plans.expire_due() == 1
    assert o.w.mp.plans.get(purchase).credits_left == 4
    assert o.w.balance() == (7200, 7200)
    o.w.assert_verified()


def test_a_refused_renewal_is_delivered_again(engine: Engine) -> None:
    """A renewal the app refused is retried at the next advance, with the same events."""
    o = Offline(engine)
    session_id, purchase = o.session("monthly")
    o.offline.pay_and_deliver(session_id, URL, o.deliver)
    refused: list[str] = []

    def down(url: str, event: SignedEvent) -> int:
        refused.append(event.event_type)
        return 503

    with pytest.raises(Exception, match="HTTP 503"):
        o.offline.advance(timedelta(days=31), URL, down)
    assert len(o.w.mp.plans.get(purchase).periods) == 1
    o.offline.advance(timedelta(seconds=1), URL, o.deliver)
    assert len(o.w.mp.plans.get(purchase).periods) == 2
    o.w.assert_verified()


def test_upcoming_lists_the_next_renewal(engine: Engine) -> None:
    """The page's list of what Stripe does next shows the subscription's renewal date."""
    o = Offline(engine)
    assert o.offline.upcoming() == []
    session_id, purchase = o.session("monthly")
    o.offline.pay_and_deliver(session_id, URL, o.deliver)
    sub_id = o.w.mp.plans.get(purchase).subscription_id
    assert o.offline.upcoming() == [(START + timedelta(days=30), f"subscription {sub_id} renews")]
