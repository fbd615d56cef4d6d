"""Correctly signed events move money only for what Stripe stated about our own bookings.

Issue 8 cases 1 and 2: a test-mode or connected-account event, or a payment whose amount,
currency, mentor or booking disagrees with mentorpay's checkout row or the host's booking,
credits no mentor. A mutation property covers every combination; explicit tests pin each case.

Money assertions and the answered status names (``ignored`` for mode/origin, ``needs_review``
for a payment that disagrees with the truth) are separate tests, so each can be judged alone.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from mentorpay.app import MentorPay
from mentorpay.errors import DatabaseBusyError, WebhookProcessingError
from mentorpay.testing import (
    booking_metadata,
    make_event,
    payment_intent,
)
from mentorpay.webhooks import WebhookResult
from tests.fixtures.payment_support import (
    CANCEL_URL,
    OK_URL,
    PaidCheckout,
    balance,
    booking,
    credited_mentors,
    deliver,
    make_mp,
    paid_checkout,
    reset,
)

LIVE_KEY = "sk_live_" + "A1b2C3d4E5f6G7h8I9j0K1l2"
TEST_KEY = "sk_test_" + "A1b2C3d4E5f6G7h8I9j0K1l2"
CONNECTED = "acct_1AttackerStandard00"
PRICE, CURRENCY = 5000, "GBP"
PAYOUT = 4500  # 5000 GBP at the default 10%: the mentor's share when everything is right

Mutation = Literal[
    "livemode", "account", "amount", "currency", "mentor", "other_booking", "unknown_booking"
]
MUTATIONS: tuple[Mutation, ...] = (
    "livemode",
    "account",
    "amount",
    "currency",
    "mentor",
    "other_booking",
    "unknown_booking",
)
#: Mutations about where the event comes from: answered ``ignored``.
ORIGIN: frozenset[Mutation] = frozenset({"livemode", "account"})
Delivery = Literal["session", "intent", "session_then_intent", "intent_then_session"]

_serial = itertools.count(1)


def bookings() -> list[Any]:
    """Booking b1 (the one paid) and b2, which differs from b1 in every term."""
    return [
        booking("b1", "m1", "u1", PRICE, CURRENCY),
        booking("b2", "m2", "u2", 7000, CURRENCY),
    ]


def mutate(event: dict[str, Any], mutations: frozenset[Mutation]) -> dict[str, Any]:
    """The event with each mutation applied the way an attacker (or a misrouted event) would."""
    event = copy.deepcopy(event)
    obj = event["data"]["object"]
    session = obj["object"] == "checkout.session"
    if "livemode" in mutations:
        event["livemode"] = not event["livemode"]
        obj["livemode"] = event["livemode"]
    if "account" in mutations:
        event["account"] = CONNECTED
    if "amount" in mutations:
        # 1.00 paid for a 50.00 booking.
        if session:
            obj["amount_total"] = obj["amount_subtotal"] = 100
        else:
            obj["amount"] = obj["amount_received"] = 100
    if "currency" in mutations:
        obj["currency"] = "jpy"
    if "mentor" in mutations:
        obj["metadata"]["mentor_id"] = "999"
    if "other_booking" in mutations:
        obj["metadata"]["booking_id"] = "b2"
    if "unknown_booking" in mutations:
        obj["metadata"]["booking_id"] = "b404"
    return event


def checked_deliver(mp: MentorPay, event: dict[str, Any]) -> WebhookResult:
    """Deliver a signed event; a retry-forever (5xx) error is a test failure, not an answer."""
    try:
        return deliver(mp, event)
    except (WebhookProcessingError, DatabaseBusyError) as exc:  # pragma: no cover - the bug
        pytest.fail(f"{event['type']} answered {exc.http_status}: {exc}")


def session_events(paid: PaidCheckout, delivery: Delivery) -> list[dict[str, Any]]:
    """The paid checkout's events in the chosen delivery."""
    session, intent = paid.session_completed(), paid.intent_succeeded()
    return {
        "session": [session],
        "intent": [intent],
        "session_then_intent": [session, intent],
        "intent_then_session": [intent, session],
    }[delivery]


def host_intent(
    pi: str, booking_id: str = "b1", mentor: str = "m1", mentee: str = "u1", **fields: Any
) -> dict[str, Any]:
    """``payment_intent.succeeded`` from the host's own PaymentIntent flow (no checkout row)."""
    obj = payment_intent(
        id=pi,
        amount=fields.pop("amount", PRICE),
        currency=fields.pop("currency", CURRENCY.lower()),
        metadata=booking_metadata(booking_id, mentor_id=mentor, mentee_id=mentee),
        latest_charge=f"ch_{pi}",
        livemode=fields.get("livemode", False),
    )
    return make_event("payment_intent.succeeded", obj, event_id=f"evt_{pi}", **fields)


def expected_status(mutations: frozenset[Mutation]) -> str:
    """The target answer: origin first, then the payment's truth."""
    if mutations & ORIGIN:
        return "ignored"
    return "needs_review" if mutations else "success"


# -- mutation properties --------------------------------------------------------------------------

mutation_sets = st.frozensets(st.sampled_from(MUTATIONS))
deliveries = st.sampled_from(["session", "intent", "session_then_intent", "intent_then_session"])
PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _checkout_case(
    engine: Engine, mutations: frozenset[Mutation], delivery: Delivery
) -> tuple[MentorPay, list[WebhookResult]]:
    reset(engine)
    mp, gateway, _ = make_mp(engine, bookings())
    paid = paid_checkout(mp, gateway, bookings()[0])
    results = []
    for event in session_events(paid, delivery):
        mutated = mutate(event, mutations)
        results.append(checked_deliver(mp, mutated))
        results.append(checked_deliver(mp, mutated))  # Stripe redelivers
    return mp, results


def each_single_mutation(test: Any) -> Any:
    """Explicit examples: every mutation alone, on both sibling events (plus none at all)."""
    for m in MUTATIONS:
        test = example(mutations=frozenset({m}), delivery="session_then_intent")(test)
    return example(mutations=frozenset(), delivery="intent_then_session")(test)


@PROPERTY
@given(mutations=mutation_sets, delivery=deliveries)
@each_single_mutation
def test_mutated_checkout_payment_credits_no_mentor(
    engine: Engine, mutations: frozenset[Mutation], delivery: Delivery
) -> None:
    """A paid checkout's events credit the mentor only when no field was tampered with."""
    mp, _ = _checkout_case(engine, mutations, delivery)
    if mutations:
        assert credited_mentors(engine) == [], sorted(mutations)
    elif delivery == "intent":
        # Stripe always sends the session too; with only the intent, an implementation may
        # wait for the session whose row holds the truth. It must never credit anyone else.
        assert balance(mp, "m1", CURRENCY)["pending"] in (0, PAYOUT)
        assert [r["mentor_id"] for r in credited_mentors(engine)] in ([], ["m1"])
    else:
        assert balance(mp, "m1", CURRENCY)["pending"] == PAYOUT
        assert [r["mentor_id"] for r in credited_mentors(engine)] == ["m1"]


@PROPERTY
@given(mutations=mutation_sets, delivery=deliveries)
@each_single_mutation
def test_mutated_checkout_payment_is_answered_ignored_or_needs_review(
    engine: Engine, mutations: frozenset[Mutation], delivery: Delivery
) -> None:
    """Status names: mode/origin mismatch -> ignored, truth mismatch -> needs_review."""
    _, results = _checkout_case(engine, mutations, delivery)
    # An intent may wait ("deferred") for the session whose row holds the truth; the first
    # answer that decides anything must name the outcome.
    decided = [r.status for r in results if r.status != "deferred"]
    if delivery == "intent" and not decided and not mutations & ORIGIN:
        return  # only the intent came, and it is still waiting for its session
    assert decided[0] == expected_status(mutations), (sorted(mutations), delivery)
    assert all(r.http_status == 200 for r in results)


HOST_MUTATIONS: tuple[Mutation | Literal["second_payment"], ...] = (
    *MUTATIONS,
    "second_payment",
)


def _host_case(engine: Engine, mutations: frozenset[Any]) -> tuple[MentorPay, WebhookResult, bool]:
    reset(engine)
    mp, _, _ = make_mp(engine, bookings())
    n = next(_serial)
    paid_before = "second_payment" in mutations
    if paid_before:
        assert checked_deliver(mp, host_intent(f"pi_first_{n}")).status == "success"
    event = mutate(host_intent(f"pi_host_{n}"), frozenset(mutations) - {"second_payment"})
    result = checked_deliver(mp, event)
    checked_deliver(mp, event)
    return mp, result, paid_before


@PROPERTY
@given(mutations=st.frozensets(st.sampled_from(HOST_MUTATIONS)))
def test_host_payment_intent_disagreeing_with_the_booking_credits_no_mentor(
    engine: Engine, mutations: frozenset[Any]
) -> None:
    """Without a checkout row the booking is the truth: any disagreement credits nobody."""
    mp, _, paid_before = _host_case(engine, mutations)
    credited = credited_mentors(engine)
    if paid_before:
        # Only the first payment (unmutated) may have reached the mentor, once.
        assert [r["mentor_id"] for r in credited] == ["m1"], sorted(mutations)
        assert balance(mp, "m1", CURRENCY)["pending"] == PAYOUT, sorted(mutations)
    elif mutations:
        assert credited == [], sorted(mutations)
    else:
        assert balance(mp, "m1", CURRENCY)["pending"] == PAYOUT
        assert [r["mentor_id"] for r in credited] == ["m1"]


@PROPERTY
@given(mutations=st.frozensets(st.sampled_from(HOST_MUTATIONS)))
def test_host_payment_intent_status_names(engine: Engine, mutations: frozenset[Any]) -> None:
    """Status names without a checkout row: origin -> ignored, disagreement -> needs_review."""
    _, result, _ = _host_case(engine, mutations)
    origin = frozenset(m for m in mutations if m in ORIGIN)
    expected = "ignored" if origin else ("needs_review" if mutations else "success")
    assert result.status == expected, sorted(mutations)
    assert result.http_status == 200


# -- issue 8 case 1: mode and origin --------------------------------------------------------------


@dataclass
class Case:
    """One explicit scenario: run it, then look at balances and the answer."""

    mp: MentorPay
    results: list[WebhookResult]


def case_test_event_under_live_config(engine: Engine) -> Case:
    """A test-mode payment_intent.succeeded sent to a live configuration."""
    mp, _, _ = make_mp(engine, bookings(), stripe_secret_key=LIVE_KEY)
    return Case(mp, [checked_deliver(mp, host_intent("pi_testmode", livemode=False))])


def case_live_event_under_test_config(engine: Engine) -> Case:
    """A live-mode payment_intent.succeeded sent to a test configuration."""
    mp, _, _ = make_mp(engine, bookings(), stripe_secret_key=TEST_KEY)
    return Case(mp, [checked_deliver(mp, host_intent("pi_livemode", livemode=True))])


def case_connected_account_event(engine: Engine) -> Case:
    """A payment_intent.succeeded sent on behalf of a connected account (Connect endpoint)."""
    mp, _, _ = make_mp(engine, bookings())
    return Case(mp, [checked_deliver(mp, host_intent("pi_connect", account=CONNECTED))])


def test_test_mode_event_under_live_config_credits_nobody(engine: Engine) -> None:
    """Issue 8 case 1: a test-mode payment never credits a mentor of a live platform."""
    case_test_event_under_live_config(engine)
    assert credited_mentors(engine) == []


def test_live_event_under_test_config_credits_nobody(engine: Engine) -> None:
    """Issue 8 case 1: a live-mode event sent to a test configuration credits nobody."""
    case_live_event_under_test_config(engine)
    assert credited_mentors(engine) == []


def test_connected_account_event_credits_nobody(engine: Engine) -> None:
    """Issue 8 case 1: an event carrying ``account`` (a mentor's own account) credits nobody."""
    case_connected_account_event(engine)
    assert credited_mentors(engine) == []


# -- issue 8 case 2: the payment's truth is ours --------------------------------------------------


def case_underpayment(engine: Engine) -> Case:
    """1.00 paid for a 50.00 booking."""
    mp, _, _ = make_mp(engine, bookings())
    return Case(mp, [checked_deliver(mp, host_intent("pi_under", amount=100))])


def case_other_currency(engine: Engine) -> Case:
    """5000 JPY paid for a 50.00 GBP booking."""
    mp, _, _ = make_mp(engine, bookings())
    return Case(mp, [checked_deliver(mp, host_intent("pi_jpy", currency="jpy"))])


def case_other_mentor(engine: Engine) -> Case:
    """Metadata naming mentor 999 on booking 42 (whose mentor is 3)."""
    mp, _, _ = make_mp(engine, [booking("42", "3", "7", PRICE, CURRENCY)])
    event = host_intent("pi_m999", booking_id="42", mentor="999", mentee="7")
    return Case(mp, [checked_deliver(mp, event)])


def case_unknown_booking(engine: Engine) -> Case:
    """A payment for a booking the host does not know."""
    mp, _, _ = make_mp(engine, bookings())
    return Case(mp, [checked_deliver(mp, host_intent("pi_unknown", booking_id="b404"))])


def case_reassigned_booking(engine: Engine) -> Case:
    """Booking 42 reassigned to mentor 4 and repriced while mentor 3's session was open."""
    mp, gateway, source = make_mp(engine, [booking("42", "3", "7", PRICE, CURRENCY)])
    info = mp.checkout.create_session("42", user_id="7", success_url=OK_URL, cancel_url=CANCEL_URL)
    source.add(booking("42", "4", "7", 6000, CURRENCY))
    session = gateway.complete_checkout_session(info.session_id)
    pi = str(session["payment_intent"])
    paid = PaidCheckout(
        booking=source.get_booking("42"),  # type: ignore[arg-type]
        session_id=info.session_id,
        payment_intent_id=pi,
        charge_id=str(gateway.payment_intent(pi)["latest_charge"]),
        metadata=dict(session["metadata"]),
        currency=str(session["currency"]),
        amount=int(session["amount_total"]),
    )
    results = [checked_deliver(mp, paid.session_completed())]
    results.append(checked_deliver(mp, paid.intent_succeeded()))
    return Case(mp, results)


def test_underpayment_credits_nobody(engine: Engine) -> None:
    """Issue 8 case 2: 1.00 paid for a 50.00 booking credits no mentor."""
    case_underpayment(engine)
    assert credited_mentors(engine) == []


def test_underpaid_booking_does_not_count_as_paid(engine: Engine) -> None:
    """Issue 8 case 2: after a 1.00 payment the 50.00 booking can still be paid in full."""
    c = case_underpayment(engine)
    info = c.mp.checkout.create_session(
        "b1", user_id="u1", success_url=OK_URL, cancel_url=CANCEL_URL
    )
    assert info.amount.amount == PRICE


def test_other_currency_credits_nobody(engine: Engine) -> None:
    """Issue 8 case 2: a JPY payment for a GBP booking credits no mentor."""
    case_other_currency(engine)
    assert credited_mentors(engine) == []


def test_metadata_naming_another_mentor_credits_nobody(engine: Engine) -> None:
    """Issue 8 case 2: metadata naming mentor 999 on booking 42 credits neither 999 nor 3."""
    case_other_mentor(engine)
    assert credited_mentors(engine) == []


def test_unknown_booking_credits_nobody(engine: Engine) -> None:
    """Issue 8 case 2: a payment for a booking the host does not know credits no mentor."""
    case_unknown_booking(engine)
    assert credited_mentors(engine) == []


def test_booking_reassigned_during_checkout_credits_nobody(engine: Engine) -> None:
    """Issue 8 case 2: the old session of a reassigned, repriced booking credits no mentor."""
    case_reassigned_booking(engine)
    assert credited_mentors(engine) == []


def test_booking_reassigned_during_checkout_can_be_paid_on_new_terms(engine: Engine) -> None:
    """Issue 8 case 2: after the stale session's payment, the new terms can still be paid."""
    c = case_reassigned_booking(engine)
    info = c.mp.checkout.create_session(
        "42", user_id="7", success_url=OK_URL, cancel_url=CANCEL_URL
    )
    assert info.amount.amount == 6000


CASES: dict[str, tuple[Callable[[Engine], Case], str]] = {
    "test_event_under_live_config": (case_test_event_under_live_config, "ignored"),
    "live_event_under_test_config": (case_live_event_under_test_config, "ignored"),
    "connected_account_event": (case_connected_account_event, "ignored"),
    "underpayment": (case_underpayment, "needs_review"),
    "other_currency": (case_other_currency, "needs_review"),
    "other_mentor": (case_other_mentor, "needs_review"),
    "unknown_booking": (case_unknown_booking, "needs_review"),
    "reassigned_booking": (case_reassigned_booking, "needs_review"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_issue_cases_are_answered_with_the_target_status(engine: Engine, name: str) -> None:
    """Status names of cases 1-2: origin -> ignored (200), disagreement -> needs_review (200)."""
    run, expected = CASES[name]
    c = run(engine)
    assert c.results[0].status == expected
    assert all(r.http_status == 200 for r in c.results)
