"""Every field of a signed plan event is the attacker's (a leaked webhook secret, a confused
deputy): mentorpay credits only what its own purchase row says, never a second time, and never
from an event that is not its own. Each test plays Stripe's real event stream (FakeBilling) and
forges one part of it."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from mentorpay import BookingInfo, Money
from mentorpay.testing import STRIPE_API_VERSION, make_event
from tests.plan_kit import CANCEL, OLDER_API, SUCCESS, PlanWorld, plan_world

Events = list[tuple[str, dict[str, Any]]]
APIS = [STRIPE_API_VERSION, OLDER_API]


def sale(w: PlanWorld, mentee: str = "e1") -> tuple[str, Events]:
    """A monthly plan's checkout, paid at the fake Stripe; the purchase and Stripe's events
    (not yet delivered)."""
    info = w.mp.checkout.create_plan_session(
        "monthly", user_id=mentee, success_url=SUCCESS, cancel_url=CANCEL
    )
    return info.plan_purchase_id, w.billing.subscribe(info.session_id)


def objects(events: Events, event_type: str) -> list[dict[str, Any]]:
    """The objects of the events of one type (mutable: forging edits them in place)."""
    return [obj for t, obj in events if t == event_type]


def foreign_subscription(w: PlanWorld, metadata: dict[str, str]) -> Events:
    """A subscription mentorpay never sold (made straight at Stripe), renewed and paid."""
    sub = w.gateway.add_subscription(
        customer_id="cus_attacker", amount=Money(8000, "GBP"), metadata=metadata
    )
    w.clock.advance(timedelta(days=31))
    return w.billing.renew(str(sub["id"]))


@pytest.mark.parametrize("api_version", APIS)
def test_an_invoice_of_an_unknown_subscription_is_ignored(engine: Engine, api_version: str) -> None:
    """A paid invoice of a subscription mentorpay does not know credits no one."""
    w = plan_world(engine, api_version)
    # invoice_payment.paid alone is stored as half a period ("success"): it credits nothing.
    assert "needs_review" not in w.send(foreign_subscription(w, {}))
    assert [e.kind for e in w.effects] == []
    assert w.balance() == (0, 0)
    assert w.mp.plans.list_purchases(mentee_id="e1") == []
    w.assert_verified()


@pytest.mark.parametrize("api_version", APIS)
def test_metadata_naming_another_mentees_purchase_links_nothing(
    engine: Engine, api_version: str
) -> None:
    """A subscription whose metadata names e1's open purchase but mentee e2 is not linked."""
    w = plan_world(engine, api_version)
    purchase, _ = sale(w)
    meta = {"plan_purchase_id": purchase, "plan_id": "monthly", "mentor_id": "m1"}
    w.send(foreign_subscription(w, {**meta, "mentee_id": "e2"}))
    view = w.mp.plans.get(purchase)
    assert (view.subscription_id, view.status, view.periods) == (None, "checkout", ())
    assert w.balance() == (0, 0)
    w.assert_verified()


@pytest.mark.parametrize("api_version", APIS)
def test_a_subscription_naming_an_open_purchase_never_takes_it_over(
    engine: Engine, api_version: str
) -> None:
    """A Stripe-made subscription naming e1's open purchase is never linked; the real one is."""
    w = plan_world(engine, api_version)
    purchase, events = sale(w)
    meta = {"plan_purchase_id": purchase, "plan_id": "monthly", "mentor_id": "m1"}
    w.send(foreign_subscription(w, {**meta, "mentee_id": "e1"}))
    waiting = w.mp.plans.get(purchase)
    assert (waiting.subscription_id, waiting.periods) == (None, ())
    assert w.balance() == (0, 0)
    w.send(events)
    view = w.mp.plans.get(purchase)
    assert view.subscription_id == objects(events, "checkout.session.completed")[0]["subscription"]
    assert [p.credits for p in view.periods] == [4]  # (lapsed by now: the attack took a month)
    assert w.balance() == (7200, 0)
    w.assert_verified()


@pytest.mark.parametrize("api_version", APIS)
def test_an_invoice_paid_before_its_checkout_completed_waits_for_it(
    engine: Engine, api_version: str
) -> None:
    """Stripe's invoice events ahead of checkout.session.completed: recorded when it links."""
    w = plan_world(engine, api_version)
    purchase, events = sale(w)
    checkout = [e for e in events if e[0] == "checkout.session.completed"]
    assert set(w.send([e for e in events if e not in checkout])) <= {"success", "ignored"}
    assert w.balance() == (0, 0)
    assert w.send(checkout) == ["success"]
    view = w.mp.plans.get(purchase)
    assert (view.status, len(view.periods), view.credits_left) == ("active", 1, 4)
    assert w.balance() == (7200, 0)
    assert [e.kind for e in w.effects].count("plan_period_paid") == 1
    w.assert_verified()


@pytest.mark.parametrize("api_version", APIS)
def test_metadata_naming_an_already_linked_purchase_is_ignored(
    engine: Engine, api_version: str
) -> None:
    """A second subscription naming a purchase already linked to one adds no period."""
    w = plan_world(engine, api_version)
    purchase, events = sale(w)
    w.send(events)
    linked = w.mp.plans.get(purchase)
    meta = {"plan_purchase_id": purchase, "plan_id": "monthly", "mentor_id": "m1"}
    w.send(foreign_subscription(w, {**meta, "mentee_id": "e1"}))
    view = w.mp.plans.get(purchase)
    assert view.subscription_id == linked.subscription_id
    assert len(view.periods) == 1
    assert w.balance() == (7200, 0)
    w.assert_verified()


@pytest.mark.parametrize("api_version", APIS)
@pytest.mark.parametrize("forged", ["amount", "currency"])
def test_an_invoice_differing_from_the_plan_goes_to_review(
    engine: Engine, api_version: str, forged: str
) -> None:
    """An invoice for another amount or currency: review, no mentor credit, no credits."""
    w = plan_world(engine, api_version)
    purchase, events = sale(w)
    for obj in [*objects(events, "invoice.paid"), *objects(events, "invoice_payment.paid")]:
        for key in ("amount_paid", "amount_due", "total", "subtotal", "amount_requested"):
            if forged == "amount" and key in obj:
                obj[key] = 100
        if forged == "currency":
            obj["currency"] = "usd"
    statuses = w.send(events)
    assert "needs_review" in statuses
    view = w.mp.plans.get(purchase)
    assert view.credits_left == 0
    assert [p.status for p in view.periods] == ["needs_review"]
    assert w.balance() == (0, 0)
    assert w.mp.ledger.balance("m1", "USD").pending.amount == 0
    w.assert_verified()


@pytest.mark.parametrize("origin", ["livemode", "account"])
def test_livemode_and_connect_events_are_ignored(engine: Engine, origin: str) -> None:
    """The same stream sent as live-mode or as a connected account's events moves nothing."""
    w = plan_world(engine)
    purchase, events = sale(w)
    for event_type, obj in events:
        event = make_event(
            event_type,
            obj,
            created=int(w.clock().timestamp()),
            api_version=w.api_version,
            livemode=origin == "livemode",
            account="acct_attacker" if origin == "account" else None,
        )
        if origin == "livemode":
            event["data"]["object"]["livemode"] = True
        assert w.process(event) in ("ignored", "rejected")
    view = w.mp.plans.get(purchase)
    assert (view.status, view.subscription_id, view.periods) == ("checkout", None, ())
    assert w.balance() == (0, 0)


def test_a_package_session_that_is_not_the_purchases_goes_to_review(engine: Engine) -> None:
    """A package's checkout.session.completed with another session id: review, no credits."""
    w = plan_world(engine)
    info = w.mp.checkout.create_plan_session(
        "pack5", user_id="e1", success_url=SUCCESS, cancel_url=CANCEL
    )
    session = copy.deepcopy(w.gateway.complete_checkout_session(info.session_id))
    intent = w.gateway.payment_intent(str(session["payment_intent"]))
    session["id"] = "cs_test_forged"
    statuses = w.send(
        [("checkout.session.completed", session), ("payment_intent.succeeded", intent)]
    )
    assert "success" not in statuses
    assert "needs_review" in statuses
    assert w.mp.plans.get(info.plan_purchase_id).credits_left == 0
    assert w.balance() == (0, 0)
    w.assert_verified()


@pytest.mark.parametrize("api_version", APIS)
def test_the_same_invoice_twice_credits_once(engine: Engine, api_version: str) -> None:
    """Stripe's invoice events replayed under new event ids add no second period or credit."""
    w = plan_world(engine, api_version)
    purchase, events = sale(w)
    w.send(events)
    w.clock.advance(timedelta(hours=1))
    replay = [(t, o) for t, o in events if t in ("invoice.paid", "invoice_payment.paid")]
    w.send(replay + replay)
    assert [e.kind for e in w.effects].count("plan_period_paid") == 1
    view = w.mp.plans.get(purchase)
    assert (len(view.periods), view.credits_left) == (1, 4)
    assert w.balance() == (7200, 0)
    w.assert_verified()


@pytest.mark.parametrize("api_version", APIS)
def test_an_invoice_naming_a_bookings_payment_intent_credits_nothing(
    engine: Engine, api_version: str
) -> None:
    """An invoice whose payment intent paid a booking: no plan credit, the booking unchanged."""
    w = plan_world(engine, api_version)
    w.bookings.add(BookingInfo("bk1", "e1", "m1", Money(5000, "GBP"), "confirmed"))
    booking = w.mp.checkout.create_session("bk1", user_id="e1", success_url=SUCCESS,
                                           cancel_url=CANCEL)  # fmt: skip
    session = w.gateway.complete_checkout_session(booking.session_id)
    pi = str(session["payment_intent"])
    w.send([("checkout.session.completed", session),
            ("payment_intent.succeeded", w.gateway.payment_intent(pi))])  # fmt: skip
    assert w.balance() == (4500, 0)
    purchase, events = sale(w)
    for obj in objects(events, "invoice_payment.paid"):
        obj["payment"]["payment_intent"] = pi
    for obj in objects(events, "invoice.paid"):
        if obj.get("payment_intent"):
            obj["payment_intent"] = pi
    w.send(events)
    view = w.mp.plans.get(purchase)
    assert view.credits_left == 0
    assert all(p.mentor_payout.amount == 0 for p in view.periods)
    assert w.balance() == (4500, 0)
    w.assert_verified()


@pytest.mark.parametrize("api_version", APIS)
def test_an_older_forged_subscription_update_does_not_revert(
    engine: Engine, api_version: str
) -> None:
    """A customer.subscription.updated created before the latest state applied changes nothing."""
    w = plan_world(engine, api_version)
    purchase, events = sale(w)
    w.clock.advance(timedelta(hours=2))
    w.send(events)
    sub = dict(objects(events, "customer.subscription.created")[0], status="incomplete_expired")
    older = int(w.clock().timestamp()) - 3600
    event = make_event("customer.subscription.updated", sub, created=older, api_version=api_version)
    w.process(event)
    assert w.mp.plans.get(purchase).status == "active"


@pytest.mark.parametrize("api_version", APIS)
def test_a_deleted_subscription_stays_canceled(engine: Engine, api_version: str) -> None:
    """After customer.subscription.deleted, a newer update saying active does not revive it."""
    w = plan_world(engine, api_version)
    purchase, events = sale(w)
    w.send(events)
    sub = objects(events, "customer.subscription.created")[0]
    w.clock.advance(timedelta(hours=1))
    w.send([("customer.subscription.deleted", dict(sub, status="canceled"))])
    w.clock.advance(timedelta(hours=1))
    w.send([("customer.subscription.updated", dict(sub, status="active"))])
    view = w.mp.plans.get(purchase)
    assert view.status == "canceled"
    # A mentee may buy the plan again: the open key was freed.
    again, _ = sale(w)
    assert again != purchase


@pytest.mark.parametrize("forged", ["invoice.paid", "invoice_payment.paid"])
@pytest.mark.parametrize("payment_first", [False, True])
def test_an_invoices_halves_that_disagree_go_to_review_in_either_order(
    engine: Engine, forged: str, payment_first: bool
) -> None:
    """An invoice's two halves naming different amounts go to review in either order."""
    w = plan_world(engine, STRIPE_API_VERSION)
    purchase, events = sale(w)
    for obj in objects(events, forged):
        obj["amount_paid"] = 100
    halves = [(t, o) for t, o in events if t in ("invoice.paid", "invoice_payment.paid")]
    rest = [(t, o) for t, o in events if (t, o) not in halves]
    statuses = w.send(rest + (halves[::-1] if payment_first else halves))
    assert statuses[-1] == "needs_review"
    view = w.mp.plans.get(purchase)
    assert (view.credits_left, [p.status for p in view.periods]) == (0, ["needs_review"])
    assert w.balance() == (0, 0)
    w.assert_verified()


@pytest.mark.parametrize("api_version", APIS)
def test_an_invoice_naming_another_periods_payment_intent_is_refused(
    engine: Engine, api_version: str
) -> None:
    """A renewal forged to name the first period's intent: ignored, no error, no credit."""
    w = plan_world(engine, api_version)
    purchase = w.subscribe()
    first_pi = w.mp.plans.get(purchase).periods[0].payment_intent_id
    w.clock.advance(timedelta(days=31))
    events = w.billing.renew_due()
    forged = copy.deepcopy(events)
    for event_type, obj in forged:
        if event_type == "invoice_payment.paid":
            obj["payment"]["payment_intent"] = first_pi
        if event_type == "invoice.paid" and obj.get("payment_intent"):
            obj["payment_intent"] = first_pi
    statuses = w.send(forged)
    assert "needs_review" not in statuses
    assert w.balance() == (7200, 0)
    assert [e.kind for e in w.effects].count("plan_period_paid") == 1
    w.send(events)
    view = w.mp.plans.get(purchase)
    assert [(p.status, p.credits) for p in view.periods] == [("paid", 4), ("paid", 4)]
    assert w.balance() == (14400, 0)
    w.assert_verified()
