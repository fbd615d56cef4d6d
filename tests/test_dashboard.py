"""The operator dashboard's data: per-day series per currency, inbox health, payout queue and
the last reconciliation, with exact sums and idle days present as zero."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from mentorpay import BookingInfo, InvalidRequestError, MentorPay, MentorpayConfig, Money
from mentorpay.testing import FakeGateway, InMemoryBookings, encode_event, make_event, sign_payload

SECRET = "whsec_dashboard"
DAY1 = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # late in the day: the bucket is the UTC day


class Clock:
    """A settable clock for mentorpay, so postings land on chosen days."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def deliver(mp: MentorPay, event_type: str, obj: dict[str, Any]) -> str:
    """A signed webhook, as Stripe sends it."""
    body = encode_event(make_event(event_type, obj))
    return mp.webhooks.process(body, sign_payload(body, SECRET)).status


def build(engine: Engine, clock: Clock) -> tuple[MentorPay, FakeGateway]:
    """Three GBP bookings of mentor m3 and one JPY booking of mentor m4."""
    bookings = [
        BookingInfo("1", "u7", "m3", Money.parse("50.00", "GBP"), "confirmed"),
        BookingInfo("2", "u7", "m3", Money.parse("100.00", "GBP"), "confirmed"),
        BookingInfo("3", "u7", "m3", Money.parse("150.00", "GBP"), "confirmed"),
        BookingInfo("5", "u7", "m4", Money.parse("3000", "JPY"), "confirmed"),
    ]
    fake = FakeGateway(clock=clock)
    mp = MentorPay(
        MentorpayConfig(webhook_secrets=[SECRET]),
        engine,
        bookings=InMemoryBookings(bookings),
        gateway=fake,
        clock=clock,
    )
    return mp, fake


def pay(mp: MentorPay, fake: FakeGateway, booking_id: str) -> str:
    """Checkout and pay one booking; returns its payment intent."""
    info = mp.checkout.create_session(
        booking_id, user_id="u7", success_url="https://a.test/ok", cancel_url="https://a.test/no"
    )
    session = fake.complete_checkout_session(info.session_id)
    assert deliver(mp, "checkout.session.completed", session) == "success"
    return str(session["payment_intent"])


def gbp(*amounts: int) -> list[Money]:
    """GBP values, one per day."""
    return [Money(a, "GBP") for a in amounts]


def test_series_are_exact_per_day_and_currency_with_idle_days_zero(engine: Engine) -> None:
    """Volume, commission, refunds and disputes land on their UTC day; an idle day is zero."""
    clock = Clock(DAY1)
    mp, fake = build(engine, clock)
    pi1, pi2 = pay(mp, fake, "1"), pay(mp, fake, "2")
    pay(mp, fake, "5")
    clock.now = DAY1 + timedelta(hours=1)  # 00:30 on day 2
    pi3 = pay(mp, fake, "3")
    clock.now = DAY1 + timedelta(days=2)  # 23:30 on March 4; March 5 and 6 stay idle
    mp.refunds.refund(pi2, Money.parse("40.00", "GBP"))
    deliver(mp, "charge.refunded", fake.charge(fake.payment_intent(pi2)["latest_charge"]))
    opened = fake.open_dispute(pi3)
    deliver(mp, "charge.dispute.created", opened)
    deliver(mp, "charge.dispute.closed", fake.close_dispute(opened["id"], won=False))
    deliver(mp, "charge.dispute.created", fake.open_dispute(pi1))

    since = datetime(2026, 3, 2, tzinfo=UTC)
    view = mp.dashboard.overview(since, since + timedelta(days=5))
    gbp_series, jpy_series = view.currencies
    assert gbp_series.days == [date(2026, 3, d) for d in range(2, 7)]
    assert gbp_series.volume == gbp(15000, 15000, 0, 0, 0)
    # 10% commission; the 40.00 refund takes back 4.00, the lost 150.00 dispute 15.00.
    assert gbp_series.commission == gbp(1500, 1500, -400 - 1500, 0, 0)
    assert gbp_series.refunded == gbp(0, 0, 4000, 0, 0)
    assert gbp_series.disputed == gbp(0, 0, 15000 + 5000, 0, 0)
    assert gbp_series.disputes_opened == [0, 0, 2, 0, 0]
    assert gbp_series.total("commission") == mp.ledger.platform_commission("GBP")
    assert gbp_series.extra == {}
    assert jpy_series.currency == "JPY"
    assert jpy_series.volume == [Money(3000, "JPY")] + [Money(0, "JPY")] * 4
    assert jpy_series.commission[0] == Money(300, "JPY")
    assert mp.ledger.verify().ok
    data = view.as_dict()
    assert data["currencies"][0]["totals"]["volume"] == 30000
    assert data["last_reconciliation"] is None and data["accounts_needing_attention"] == []


def test_a_period_without_activity_has_no_currencies(engine: Engine) -> None:
    """A period after all activity lists no currency at all."""
    clock = Clock(DAY1)
    mp, fake = build(engine, clock)
    pay(mp, fake, "1")
    later = DAY1 + timedelta(days=10)
    assert mp.dashboard.overview(later, later + timedelta(days=3)).currencies == []


def test_inbox_health_counts_deferred_and_review_with_ids(engine: Engine) -> None:
    """A deferred event and a payment needing review show up with their ids; the rest is 0."""
    clock = Clock(DAY1)
    mp, fake = build(engine, clock)
    pi = pay(mp, fake, "1")
    # A refund for a payment mentorpay never recorded waits as deferred.
    other = fake.add_payment_intent(
        {**fake.payment_intent(pi), "id": "pi_unknown", "latest_charge": "ch_unknown"}
    )
    assert other["id"] == "pi_unknown"
    charge = {**fake.charge(fake.payment_intent(pi)["latest_charge"]), "id": "ch_unknown"}
    charge.update(payment_intent="pi_unknown", amount_refunded=100, refunded=False)
    assert deliver(mp, "charge.refunded", charge) == "deferred"
    # A second payment of the same booking is money nobody may be credited with: review.
    again = dict(fake.payment_intent(pi), id="pi_twice", latest_charge="ch_twice")
    assert deliver(mp, "payment_intent.succeeded", again) == "needs_review"

    health = mp.dashboard.overview(DAY1 - timedelta(days=1), DAY1 + timedelta(days=1)).inbox
    assert (health.failed, health.deferred, health.rejected) == (0, 1, 0)
    assert health.needs_review == 1
    assert [r.payment_intent_id for r in health.review] == ["pi_twice"]
    assert [e.type for e in health.newest["deferred"]] == ["charge.refunded"]
    assert not health.healthy


def test_payout_queue_and_last_reconciliation(engine: Engine) -> None:
    """Requested and approved payouts are listed with their ids; a reconcile run is recorded."""
    clock = Clock(DAY1)
    mp, fake = build(engine, clock)
    pay(mp, fake, "1")
    pay(mp, fake, "2")
    mp.ledger.release_due(DAY1 + timedelta(days=365))
    first = mp.payouts.request("m3", Money(1000, "GBP"))
    second = mp.payouts.request("m3", Money(2000, "GBP"))
    mp.payouts.approve(second.id, approver="ops")
    assert mp.dashboard.overview().last_reconciliation is None

    mp.reconcile(DAY1 - timedelta(days=1), DAY1 + timedelta(days=1))
    view = mp.dashboard.overview(DAY1 - timedelta(days=1), DAY1 + timedelta(days=1))
    assert [p.id for p in view.payouts.requested] == [first.id]
    assert [p.id for p in view.payouts.approved] == [second.id]
    run = view.last_reconciliation
    assert run is not None and run.ok and run.discrepancies == 0 and not run.applied
    assert run.by_kind == {"disputes": 0, "fees": 0, "payments": 0, "refunds": 0, "transfers": 0}
    assert run.since == DAY1 - timedelta(days=1)


def test_overview_refuses_naive_reversed_or_too_long_periods(engine: Engine) -> None:
    """A naive datetime, an empty period or more than a year is an InvalidRequestError (400)."""
    mp, _ = build(engine, Clock(DAY1))
    with pytest.raises(InvalidRequestError):
        mp.dashboard.overview(datetime(2026, 1, 1), DAY1)  # naive on purpose
    with pytest.raises(InvalidRequestError):
        mp.dashboard.overview(DAY1, DAY1)
    with pytest.raises(InvalidRequestError):
        mp.dashboard.overview(DAY1 - timedelta(days=400), DAY1)


def test_mentor_earnings_per_day_net_of_refunds_and_lost_disputes(engine: Engine) -> None:
    """A mentor's earnings per day net refunds and lost disputes (an open inquiry is no loss)."""
    clock = Clock(DAY1)
    mp, fake = build(engine, clock)
    pi1, pi2 = pay(mp, fake, "1"), pay(mp, fake, "2")
    pay(mp, fake, "5")
    clock.now = DAY1 + timedelta(hours=1)
    pi3 = pay(mp, fake, "3")
    clock.now = DAY1 + timedelta(days=2)  # March 4
    mp.refunds.refund(pi2, Money.parse("40.00", "GBP"))
    deliver(mp, "charge.refunded", fake.charge(fake.payment_intent(pi2)["latest_charge"]))
    opened = fake.open_dispute(pi3)
    deliver(mp, "charge.dispute.created", opened)
    deliver(mp, "charge.dispute.closed", fake.close_dispute(opened["id"], won=False))
    deliver(mp, "charge.dispute.created", fake.open_dispute(pi1, inquiry=True))
    mp.ledger.release_due(DAY1 + timedelta(days=365))
    payout = mp.payouts.request("m3", Money(1000, "GBP"))

    since = datetime(2026, 3, 2, tzinfo=UTC)
    page = mp.dashboard.earnings("m3", since, since + timedelta(days=4))
    assert page.earned == {"GBP": gbp(4500 + 9000, 13500, -3600 - 13500, 0)}
    assert [b.currency for b in page.balances] == ["GBP"]
    assert [p.id for p in page.payouts] == [payout.id]
    assert mp.dashboard.earnings("m4", since, since + timedelta(days=1)).earned == {
        "JPY": [Money(2700, "JPY")]
    }
    assert mp.dashboard.earnings("nobody").earned == {}


def test_stripe_fees_and_net_commission_appear_once_posted(engine: Engine) -> None:
    """A posted Stripe fee shows per day beside the commission, and net is commission - fee."""
    clock = Clock(DAY1)
    mp, fake = build(engine, clock)
    pi = pay(mp, fake, "1")  # 50.00 GBP: 5.00 commission
    period = (DAY1 - timedelta(hours=1), DAY1 + timedelta(hours=1))
    assert mp.dashboard.overview(*period).currencies[0].extra == {}
    mp.ledger.record_stripe_fee(pi, "txn_1", Money(95, "GBP"))
    (series,) = mp.dashboard.overview(*period).currencies
    assert series.extra["stripe_fees"] == gbp(95, 0)  # the period spans two UTC days
    assert series.extra["net_commission"] == gbp(500 - 95, 0)
    assert series.total("commission") == Money(500, "GBP")


def test_mentors_whose_accounts_cannot_take_money_need_attention(engine: Engine) -> None:
    """An onboarding mentor is listed with what Stripe still needs; an enabled one is not."""
    mp, fake = build(engine, Clock(DAY1))
    urls = {"refresh_url": "https://a.test/r", "return_url": "https://a.test/ok"}
    mp.accounts.onboard("m3", **urls)
    mp.accounts.onboard("m4", **urls)
    account = mp.accounts.status("m4")
    assert account is not None and account.account_id is not None
    fake.complete_onboarding(account.account_id)
    mp.accounts.refresh("m4")
    attention = mp.dashboard.overview().accounts_needing_attention
    assert [(a["mentor_id"], a["state"]) for a in attention] == [("m3", "onboarding")]
    assert attention[0]["reason"]
