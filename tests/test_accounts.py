"""mp.accounts: one Express account per mentor (also under concurrency and lost answers),
account.updated from the right origin only, and what it means for checkout and payouts."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from mentorpay import (
    AccountMismatchError,
    AccountNotReadyError,
    BookingInfo,
    MentorPay,
    MentorpayConfig,
    Money,
)
from mentorpay.accounts.rules import AccountObject, Requirements
from mentorpay.errors import (
    BookingNotPayableError,
    GatewayConnectionError,
    InvalidRequestError,
    MentorNotFoundError,
)
from mentorpay.gateway import GatewayAccount
from mentorpay.models import mentor_accounts_table
from mentorpay.testing import (
    FakeGateway,
    InMemoryBookings,
    encode_event,
    make_event,
    sign_payload,
    sqlite_engine,
)
from tests.conftest import DB_LEGS_WITH_POOLER, database_leg

SECRET = "whsec_accounts"
REFRESH = "https://app.test/accounts/refresh"
RETURN = "https://app.test/accounts/return"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def app(engine: Engine, gateway: FakeGateway | None = None, **config: Any) -> MentorPay:
    """A MentorPay with booking 42 (GBP 50.00, mentor 3, mentee 7) and no acct_ in it."""
    bookings = InMemoryBookings([BookingInfo("42", "7", "3", Money(5000, "GBP"), "confirmed")])
    return MentorPay(
        MentorpayConfig(webhook_secrets=[SECRET], **config),
        engine,
        bookings=bookings,
        gateway=gateway if gateway is not None else FakeGateway(),
    )


def deliver(mp: MentorPay, event: dict[str, Any]) -> Any:
    """Sign and process one event."""
    body = encode_event(event)
    return mp.webhooks.process(body, sign_payload(body, SECRET))


def account_event(obj: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """account.updated from the connected account itself, serialized by the SDK's Account."""
    sdk = stripe.Account.construct_from(obj, "sk_test_accounts")
    kwargs.setdefault("account", obj["id"])
    return make_event("account.updated", sdk.to_dict(), **kwargs)


def onboarded(mp: MentorPay, gateway: FakeGateway, mentor: str = "3") -> str:
    """Onboard the mentor and deliver the account.updated that enables everything."""
    link = mp.accounts.onboard(mentor, refresh_url=REFRESH, return_url=RETURN)
    assert deliver(mp, account_event(gateway.complete_onboarding(link.account_id))).status == (
        "success"
    )
    return link.account_id


def rows(engine: Engine) -> int:
    """How many mentor account rows exist."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(mentor_accounts_table)).one()[0])


# -- shapes ---------------------------------------------------------------------------------------


def test_fields_read_from_account_updated_are_stripes() -> None:
    """Every field mentorpay reads of an Account (and its requirements) is on the SDK class."""
    assert set(AccountObject.model_fields) <= set(stripe.Account.__annotations__) | {"id"}
    sdk_requirements = set(stripe.Account.Requirements.__annotations__)
    assert set(Requirements.model_fields) <= sdk_requirements
    gateway_fields = set(GatewayAccount.model_fields) - {"raw"}
    assert gateway_fields <= set(stripe.Account.__annotations__) | {"id"}


def test_fake_accounts_have_stripes_shape() -> None:
    """FakeGateway's Account has only fields the SDK's Account defines, and the SDK reads it."""
    gateway = FakeGateway()
    obj = gateway.account(gateway.create_account(mentor_id="3", idempotency_key="k").id)
    assert set(obj) <= set(stripe.Account.__annotations__) | {"id", "object"}
    assert set(obj["requirements"]) <= set(stripe.Account.Requirements.__annotations__)
    sdk = stripe.Account.construct_from(obj, "sk_test_accounts")
    assert sdk.requirements is not None and sdk.requirements.currently_due


# -- onboarding -----------------------------------------------------------------------------------


def test_onboard_creates_one_account_however_often_called(engine: Engine) -> None:
    """Three onboardings: one Stripe account, one row, each call a fresh onboarding link."""
    gateway = FakeGateway()
    mp = app(engine, gateway)
    links = [mp.accounts.onboard("3", refresh_url=REFRESH, return_url=RETURN) for _ in range(3)]
    assert len({link.account_id for link in links}) == 1
    assert len(gateway.accounts) == 1 and rows(engine) == 1
    assert [c.idempotency_key for c in gateway.calls_to("create_account")] == [
        "mentorpay:account:3"
    ]
    assert len(gateway.calls_to("create_account_link")) == 3
    assert gateway.account(links[0].account_id)["metadata"] == {"mentor_id": "3"}
    status = mp.accounts.status("3")
    assert status is not None and status.state == "onboarding"
    assert "external_account" in status.currently_due


def test_a_lost_create_answer_is_retried_into_the_same_account(engine: Engine) -> None:
    """Stripe created the account but the answer was lost: the retry gets that account."""
    gateway = FakeGateway()
    mp = app(engine, gateway)
    gateway.fail_next(GatewayConnectionError("lost"), method="create_account", performed=True)
    with pytest.raises(GatewayConnectionError):
        mp.accounts.onboard("3", refresh_url=REFRESH, return_url=RETURN)
    status = mp.accounts.status("3")
    assert status is not None and status.state == "creating"
    link = mp.accounts.onboard("3", refresh_url=REFRESH, return_url=RETURN)
    assert [a["id"] for a in gateway.accounts] == [link.account_id]


@pytest.fixture(params=DB_LEGS_WITH_POOLER)
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """SQLite, PostgreSQL, and PostgreSQL behind PgBouncer in transaction mode."""
    yield from database_leg(request, tmp_path)


@pytest.mark.parametrize("threads", [8])
def test_concurrent_onboarding_makes_one_account(any_engine: Engine, threads: int) -> None:
    """Threads onboarding one mentor at once (SQLite, PostgreSQL, PgBouncer) share one account."""
    engine = any_engine
    gateway = FakeGateway(latency=0.02)
    mp = app(engine, gateway)
    barrier = threading.Barrier(threads)
    found: list[str] = []
    errors: list[BaseException] = []

    def onboard() -> None:
        barrier.wait()
        try:
            found.append(
                mp.accounts.onboard("3", refresh_url=REFRESH, return_url=RETURN).account_id
            )
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=onboard) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert len(found) == threads and len(set(found)) == 1
    assert len(gateway.accounts) == 1 and rows(engine) == 1
    keys = {c.idempotency_key for c in gateway.calls_to("create_account")}
    assert keys == {"mentorpay:account:3"}


def test_onboard_refuses_bad_input_and_changes_nothing(engine: Engine) -> None:
    """A relative URL or an empty mentor id is a 400 and creates nothing anywhere."""
    gateway = FakeGateway()
    mp = app(engine, gateway)
    with pytest.raises(InvalidRequestError):
        mp.accounts.onboard("3", refresh_url="/refresh", return_url=RETURN)
    with pytest.raises(InvalidRequestError):
        mp.accounts.onboard("", refresh_url=REFRESH, return_url=RETURN)
    assert gateway.calls == [] and rows(engine) == 0


def test_dashboard_link_needs_an_onboarded_account(engine: Engine) -> None:
    """No account: 404; onboarding unfinished: 409 saying what is due; onboarded: a link."""
    gateway = FakeGateway()
    mp = app(engine, gateway)
    with pytest.raises(MentorNotFoundError):
        mp.accounts.dashboard_link("3")
    link = mp.accounts.onboard("3", refresh_url=REFRESH, return_url=RETURN)
    with pytest.raises(AccountNotReadyError) as refused:
        mp.accounts.dashboard_link("3")
    assert refused.value.http_status == 409
    assert "external_account" in refused.value.details["currently_due"]
    deliver(mp, account_event(gateway.complete_onboarding(link.account_id)))
    dashboard = mp.accounts.dashboard_link("3")
    assert dashboard.account_id == link.account_id
    [call] = gateway.calls_to("create_login_link")
    assert call.idempotency_key is not None
    assert call.idempotency_key.startswith(f"mentorpay:login-link:{link.account_id}:")


# -- account.updated ------------------------------------------------------------------------------


def test_account_updated_stores_flags_and_what_is_due(engine: Engine) -> None:
    """The connected account's own event stores charges/payouts/details and requirements."""
    gateway = FakeGateway()
    mp = app(engine, gateway)
    acct = mp.accounts.onboard("3", refresh_url=REFRESH, return_url=RETURN).account_id
    obj = gateway.update_account(
        acct,
        details_submitted=True,
        charges_enabled=True,
        currently_due=["individual.verification.document"],
        past_due=["external_account"],
        disabled_reason="requirements.past_due",
    )
    assert deliver(mp, account_event(obj)).status == "success"
    status = mp.accounts.status("3")
    assert status is not None
    assert (status.charges_enabled, status.payouts_enabled, status.details_submitted) == (
        True,
        False,
        True,
    )
    assert status.currently_due == ("individual.verification.document",)
    assert status.past_due == ("external_account",)
    assert status.disabled_reason == "requirements.past_due"
    assert status.state == "restricted"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("platform", "platform account"),
        ("other_mode", "livemode=true"),
        ("other_sender", "delivered by connected account"),
        ("unknown", "not created by mentorpay"),
        ("stale", "stale"),
    ],
)
def test_account_updated_from_elsewhere_changes_nothing(
    engine: Engine, case: str, reason: str
) -> None:
    """From the platform, the other mode, another account, an unknown account or stale: ignored."""
    gateway = FakeGateway()
    mp = app(engine, gateway)
    acct = mp.accounts.onboard("3", refresh_url=REFRESH, return_url=RETURN).account_id
    created = int(NOW.timestamp())
    assert deliver(mp, account_event(gateway.account(acct), created=created)).status == "success"
    before = mp.accounts.status("3")
    enabled = gateway.complete_onboarding(acct)
    event = {
        "platform": lambda: account_event(enabled, account=None, created=created + 1),
        "other_mode": lambda: account_event(enabled, livemode=True, created=created + 1),
        "other_sender": lambda: account_event(enabled, account="acct_evil", created=created + 1),
        "unknown": lambda: account_event(
            {**enabled, "id": "acct_stranger"}, account="acct_stranger", created=created + 1
        ),
        "stale": lambda: account_event(enabled, created=created - 1),
    }[case]()
    result = deliver(mp, event)
    assert result.status == "ignored" and result.http_status == 200
    assert reason in (mp.webhooks.list_events(limit=1)[0].last_error or "")
    assert mp.accounts.status("3") == before


def test_a_newer_event_wins_whatever_the_delivery_order(engine: Engine) -> None:
    """Delivered newest first, the older event is ignored: state follows ``created``."""
    gateway = FakeGateway()
    mp = app(engine, gateway)
    acct = mp.accounts.onboard("3", refresh_url=REFRESH, return_url=RETURN).account_id
    created = int(NOW.timestamp())
    newer = account_event(gateway.complete_onboarding(acct), created=created + 10)
    older = account_event(gateway.update_account(acct, payouts_enabled=False), created=created)
    assert deliver(mp, newer).status == "success"
    assert deliver(mp, older).status == "ignored"
    status = mp.accounts.status("3")
    assert status is not None and status.payouts_enabled is True


# -- checkout and payouts -------------------------------------------------------------------------


def test_account_updated_toggles_destination_checkout(engine: Engine) -> None:
    """Destination-charge checkout pays mentorpay's account once charges are enabled."""
    gateway = FakeGateway()
    mp = app(engine, gateway, connect_destination_charges=True, refund_reverse_transfer=True)
    pay = {"user_id": "7", "success_url": RETURN, "cancel_url": REFRESH}
    with pytest.raises(BookingNotPayableError, match="no connected Stripe account"):
        mp.checkout.create_session("42", **pay)
    acct = mp.accounts.onboard("3", refresh_url=REFRESH, return_url=RETURN).account_id
    with pytest.raises(AccountNotReadyError) as refused:
        mp.checkout.create_session("42", **pay)
    assert refused.value.details["needs"] == "charges_enabled"
    assert "external_account" in refused.value.details["currently_due"]
    deliver(mp, account_event(gateway.complete_onboarding(acct)))
    info = mp.checkout.create_session("42", **pay)
    assert gateway.session(info.session_id)["metadata"]["mentor_account"] == acct
    [call] = gateway.calls_to("create_checkout_session")
    assert call.args["params"].destination == acct


def test_a_booking_naming_another_account_is_refused(engine: Engine) -> None:
    """The host's booking names acct_other, mentorpay onboarded acct_X: refused, 409."""
    gateway = FakeGateway()
    bookings = InMemoryBookings(
        [BookingInfo("42", "7", "3", Money(5000, "GBP"), "confirmed", "acct_other")]
    )
    config = MentorpayConfig(
        webhook_secrets=[SECRET], connect_destination_charges=True, refund_reverse_transfer=True
    )
    mp = MentorPay(config, engine, bookings=bookings, gateway=gateway)
    onboarded(mp, gateway)
    with pytest.raises(AccountMismatchError) as refused:
        mp.checkout.create_session("42", user_id="7", success_url=RETURN, cancel_url=REFRESH)
    assert refused.value.http_status == 409
    assert gateway.calls_to("create_checkout_session") == []


def fund(mp: MentorPay, gateway: FakeGateway) -> None:
    """Pay booking 42 through checkout and release it: 45.00 GBP available for mentor 3."""
    info = mp.checkout.create_session("42", user_id="7", success_url=RETURN, cancel_url=REFRESH)
    session = gateway.complete_checkout_session(info.session_id)
    assert deliver(mp, make_event("checkout.session.completed", session)).status == "success"
    mp.ledger.release("42")


def test_a_payout_waits_for_the_account_and_then_executes(engine: Engine) -> None:
    """Requested while payouts are off: approved, refused 409 on execute (kept), paid once on."""
    gateway = FakeGateway()
    mp = app(engine, gateway, payout_mode="stripe_transfer")
    fund(mp, gateway)
    acct = mp.accounts.onboard("3", refresh_url=REFRESH, return_url=RETURN).account_id
    payout = mp.payouts.request("3", Money(4000, "GBP"))  # no destination: mentorpay's account
    assert payout.destination == acct
    mp.payouts.approve(payout.id, approver="ops")
    with pytest.raises(AccountNotReadyError) as refused:
        mp.payouts.execute(payout.id)
    assert refused.value.details["needs"] == "payouts_enabled"
    assert "external_account" in refused.value.details["currently_due"]
    assert mp.payouts.get(payout.id).status == "approved"
    assert gateway.calls_to("create_transfer") == []
    assert mp.ledger.balance("3", "GBP").reserved == Money(4000, "GBP")

    deliver(mp, account_event(gateway.complete_onboarding(acct)))
    done = mp.payouts.execute(payout.id)
    assert done.status in ("processing", "paid") and done.transfer_id is not None
    [transfer] = gateway.transfers
    assert transfer["destination"] == acct and transfer["amount"] == 4000

    # And account.updated turning payouts off again stops the next one.
    later = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
    off = gateway.update_account(acct, payouts_enabled=False, currently_due=["external_account"])
    deliver(mp, account_event(off, created=later))
    second = mp.payouts.request("3", Money(500, "GBP"))
    mp.payouts.approve(second.id, approver="ops")
    with pytest.raises(AccountNotReadyError):
        mp.payouts.execute(second.id)
    assert mp.ledger.verify().ok


def test_a_payout_naming_another_account_is_refused(engine: Engine) -> None:
    """A payout request naming an account other than mentorpay's is refused and reserves nothing."""
    gateway = FakeGateway()
    mp = app(engine, gateway, payout_mode="stripe_transfer")
    fund(mp, gateway)
    onboarded(mp, gateway)
    with pytest.raises(AccountMismatchError):
        mp.payouts.request("3", Money(4000, "GBP"), destination="acct_other")
    assert mp.ledger.balance("3", "GBP").reserved == Money(0, "GBP")


def test_hosts_own_accounts_keep_working(engine: Engine) -> None:
    """A mentor mentorpay never onboarded: the host's named account is used as before."""
    gateway = FakeGateway()
    mp = app(engine, gateway, payout_mode="stripe_transfer")
    fund(mp, gateway)
    payout = mp.payouts.request("3", Money(4000, "GBP"), destination="acct_host_managed")
    mp.payouts.approve(payout.id, approver="ops")
    assert mp.payouts.execute(payout.id).transfer_id is not None


def test_list_and_status(engine: Engine) -> None:
    """list() shows every onboarded mentor; status() is None for one never onboarded."""
    gateway = FakeGateway()
    mp = app(engine, gateway)
    onboarded(mp, gateway, "3")
    mp.accounts.onboard("5", refresh_url=REFRESH, return_url=RETURN)
    assert [(s.mentor_id, s.state) for s in mp.accounts.list()] == [
        ("3", "enabled"),
        ("5", "onboarding"),
    ]
    assert mp.accounts.status("9") is None
    assert mp.accounts.list()[0].as_dict()["state"] == "enabled"


def test_refresh_reads_the_account_from_stripe(engine: Engine) -> None:
    """A missed account.updated: refresh() asks Stripe and stores what it says now."""
    gateway = FakeGateway()
    mp = app(engine, gateway)
    acct = mp.accounts.onboard("3", refresh_url=REFRESH, return_url=RETURN).account_id
    gateway.complete_onboarding(acct)  # no event delivered
    status = mp.accounts.refresh("3")
    assert status.state == "enabled" and status.currently_due == ()
    assert [c.method for c in gateway.calls][-1] == "retrieve_account"
    with pytest.raises(MentorNotFoundError):
        mp.accounts.refresh("9")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(order=st.permutations(range(4)), flags=st.lists(st.booleans(), min_size=8, max_size=8))
def test_the_newest_account_updated_wins_in_any_delivery_order(
    tmp_path: Path, order: list[int], flags: list[bool]
) -> None:
    """In any delivery order, the stored flags are those of the event with the highest created."""
    engine = sqlite_engine(tmp_path, f"{uuid.uuid4().hex}.db")
    try:
        gateway = FakeGateway()
        mp = app(engine, gateway)
        acct = mp.accounts.onboard("3", refresh_url=REFRESH, return_url=RETURN).account_id
        base = int(NOW.timestamp())
        events = []
        for i in range(4):
            obj = gateway.update_account(
                acct, charges_enabled=flags[2 * i], payouts_enabled=flags[2 * i + 1]
            )
            events.append(account_event(obj, created=base + i))
        for i in order:
            deliver(mp, events[i])
        status = mp.accounts.status("3")
        assert status is not None
        assert (status.charges_enabled, status.payouts_enabled) == (flags[6], flags[7])
    finally:
        engine.dispose()
