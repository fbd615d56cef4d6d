"""PayoutService: request limits, the state machine, authorization, Stripe transfers (exact
HTTP, failures, retries), manual payouts, settlement webhooks, and concurrent requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
import responses
from sqlalchemy import Engine, func, select

from mentorpay.commission import CommissionPolicy
from mentorpay.config import MentorpayConfig
from mentorpay.errors import (
    GatewayConnectionError,
    GatewayInvalidRequestError,
    GatewayRateLimitError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidAmountError,
    InvalidRequestError,
    MentorNotFoundError,
    NotAuthorizedError,
    PayoutNotFoundError,
    PayoutStateError,
)
from mentorpay.events import Effect
from mentorpay.gateway import PaymentGateway, StripeGateway
from mentorpay.ledger import LedgerService
from mentorpay.models import PayoutRequest
from mentorpay.money import Money
from mentorpay.payouts import PAYOUT_STATUSES, TRANSITIONS, PayoutService, can_transition
from mentorpay.testing import FakeGateway, make_event, transfer
from tests.conftest import DB_LEGS_WITH_POOLER, database_leg
from tests.fixtures.declared_bookings import RigProcessor

API = "https://api.stripe.com"
ACCT = "acct_mentor3"
GBP_100 = Money(10000, "GBP")


def make_config(**overrides: Any) -> MentorpayConfig:
    """A config with a webhook secret and the given overrides."""
    return MentorpayConfig(webhook_secrets=["whsec_test"], **overrides)


class Setup:
    """A PayoutService with a funded mentor (90.00 GBP available) and a webhook processor."""

    def __init__(
        self,
        engine: Engine,
        gateway: PaymentGateway | None = None,
        *,
        mode: str = "manual",
        **config: Any,
    ) -> None:
        self.engine = engine
        self.config = make_config(payout_mode=mode, **config)
        self.ledger = LedgerService(engine)
        self.gateway = gateway if gateway is not None else FakeGateway()
        self.service = PayoutService(self.config, engine, self.ledger, self.gateway)
        self.webhooks = RigProcessor(self.config, engine, self.ledger)
        for event_type, handler in self.service.webhook_handlers().items():
            self.webhooks.register(event_type, handler)
        self.effects: list[Effect] = []
        self.webhooks.on("payout_settled", self.effects.append)

    def fund(self, mentor: str = "3", gross: Money = GBP_100, pi: str = "pi_1") -> None:
        """Record and release a payment: 90% of ``gross`` becomes available."""
        self.ledger.record_payment(
            payment_intent_id=pi,
            booking_id=f"b-{pi}",
            mentor_id=mentor,
            mentee_id="7",
            gross=gross,
            policy=CommissionPolicy(rate_bps=1000),
        )
        self.ledger.release_payment(pi)

    def balance(self, mentor: str = "3", currency: str = "GBP") -> tuple[int, int, int]:
        """(available, reserved, withdrawn)."""
        b = self.ledger.balance(mentor, currency)
        return b.available.amount, b.reserved.amount, b.withdrawn.amount

    def request(self, amount: int = 5000, **kwargs: Any) -> Any:
        if self.config.payout_mode == "stripe_transfer":
            kwargs.setdefault("destination", ACCT)
        return self.service.request("3", Money(amount, "GBP"), **kwargs)

    def deliver(self, event_type: str, obj: dict[str, Any]) -> str:
        """Apply a webhook through the real processor; returns its status."""
        return self.webhooks.process_trusted(make_event(event_type, obj)).status


def payout_rows(engine: Engine) -> int:
    """Payout requests stored."""
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(PayoutRequest.__table__)).scalar_one()
        )


@pytest.fixture(params=DB_LEGS_WITH_POOLER)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A clean database: SQLite, PostgreSQL, and PostgreSQL through PgBouncer (transaction mode)."""
    yield from database_leg(request, tmp_path)


@pytest.fixture
def manual(engine: Engine) -> Setup:
    """Manual payouts, mentor 3 funded with 90.00 GBP available."""
    setup = Setup(engine)
    setup.fund()
    return setup


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """Stripe's API, intercepted."""
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def stripe_mode(engine: Engine) -> Setup:
    """Stripe-transfer payouts over the real StripeGateway (HTTP intercepted)."""
    setup = Setup(
        engine, StripeGateway("sk_test_123", max_network_retries=0), mode="stripe_transfer"
    )
    setup.fund()
    return setup


def transfer_json(payout_id: int, amount: int = 5000, **extra: Any) -> dict[str, Any]:
    """The transfer Stripe answers with for a payout."""
    return transfer(
        id="tr_1",
        amount=amount,
        destination=ACCT,
        metadata={"payout_request_id": str(payout_id), "mentor_id": "3"},
        **extra,
    )


# -- requesting ----------------------------------------------------------------------------------


def test_request_reserves_available_atomically(manual: Setup) -> None:
    """A request moves the amount from available to reserved, in the same transaction."""
    view = manual.request(5000)
    assert (view.status, view.method, view.amount) == ("requested", "manual", Money(5000, "GBP"))
    assert manual.balance() == (4000, 5000, 0)
    assert manual.ledger.verify().ok


@pytest.mark.parametrize(
    ("amount", "currency", "error", "rule"),
    [
        (0, "GBP", InvalidAmountError, "positive"),
        (-100, "GBP", InvalidAmountError, "positive"),
        (999, "GBP", InvalidAmountError, "below_minimum"),
        (9001, "GBP", InsufficientBalanceError, None),
        (1050, "HUF", InvalidAmountError, "divisible_by_100"),
        (1005, "KWD", InvalidAmountError, "three_decimal_last_digit_zero"),
        (1000, "EUR", MentorNotFoundError, None),
    ],
    ids=["zero", "negative", "below-minimum", "above-available", "huf-100", "kwd-10", "no-eur"],
)
def test_invalid_requests_are_refused_and_write_nothing(
    engine: Engine, amount: int, currency: str, error: type, rule: str | None
) -> None:
    """Non-positive, below minimum, currency rules, over available, unknown balance: refused."""
    setup = Setup(engine, min_payout={"GBP": 1000})
    setup.fund()
    setup.fund(gross=Money(100000, "HUF"), pi="pi_huf")
    setup.fund(gross=Money(100000, "KWD"), pi="pi_kwd")
    with pytest.raises(error) as caught:
        setup.service.request("3", Money(amount, currency))
    if rule is not None:
        assert caught.value.details["rule"] == rule
    assert payout_rows(engine) == 0
    assert setup.balance() == (9000, 0, 0)


def test_huf_payout_in_whole_forints_is_accepted(engine: Engine) -> None:
    """HUF payouts divisible by 100 pass the rule that refused 1050."""
    setup = Setup(engine)
    setup.fund(gross=Money(100000, "HUF"), pi="pi_huf")
    assert setup.service.request("3", Money(1000, "HUF")).status == "requested"


def test_negative_available_refuses_any_payout(manual: Setup) -> None:
    """A mentor who owes the platform (available < 0) cannot request a payout."""
    manual.request(5000)
    manual.ledger.apply_refund_total("pi_1", Money(10000, "GBP"))  # takes 90.00 from available
    assert manual.balance()[0] < 0
    with pytest.raises(InsufficientBalanceError, match="owes the platform"):
        manual.request(100)


def test_transfer_mode_needs_a_connected_account(engine: Engine) -> None:
    """In stripe_transfer mode the destination must be an acct_ id."""
    setup = Setup(engine, mode="stripe_transfer")
    setup.fund()
    for destination in (None, "GB29NWBK60161331926819"):
        with pytest.raises(InvalidRequestError, match="connected account"):
            setup.service.request("3", Money(5000, "GBP"), destination=destination)
    assert payout_rows(engine) == 0


# -- the state machine ---------------------------------------------------------------------------


def test_transition_table_is_the_documented_machine() -> None:
    """Exactly the documented transitions are legal; terminal states lead nowhere."""
    legal = {(s, t) for s in PAYOUT_STATUSES for t in PAYOUT_STATUSES if can_transition(s, t)}
    assert legal == {
        ("requested", "approved"),
        ("requested", "cancelled"),
        ("approved", "processing"),
        ("approved", "paid"),
        ("approved", "cancelled"),
        ("processing", "paid"),
        ("processing", "failed"),
        ("paid", "reversed"),
    }
    assert set(TRANSITIONS) == set(PAYOUT_STATUSES)


def test_illegal_transitions_raise_payout_state_error(manual: Setup) -> None:
    """Executing unapproved, approving twice, cancelling paid or failing approved all refuse."""
    view = manual.request(5000)
    with pytest.raises(PayoutStateError):
        manual.service.execute(view.id)
    approved = manual.service.approve(view.id, approver="admin")
    assert approved.approved_by == "admin"
    with pytest.raises(PayoutStateError):
        manual.service.approve(view.id, approver="admin")
    with pytest.raises(PayoutStateError):
        manual.service.mark_failed(view.id, reason="x")
    manual.service.mark_paid(view.id, reference="BANK-1")
    for action in (
        lambda: manual.service.cancel(view.id),
        lambda: manual.service.execute(view.id),
        lambda: manual.service.mark_paid(view.id, reference="BANK-2"),
    ):
        with pytest.raises(PayoutStateError) as caught:
            action()
        assert caught.value.http_status == 409
    assert manual.balance() == (4000, 0, 5000)
    assert manual.ledger.verify().ok


def test_unknown_payout(manual: Setup) -> None:
    """An unknown id is PayoutNotFoundError for every operation."""
    for action in (
        lambda: manual.service.get(999),
        lambda: manual.service.approve(999, approver="admin"),
        lambda: manual.service.cancel(999),
        lambda: manual.service.execute(999),
    ):
        with pytest.raises(PayoutNotFoundError):
            action()


# -- authorization -------------------------------------------------------------------------------


def test_mentor_cannot_approve_own_payout(manual: Setup) -> None:
    """Self-approval is NotAuthorizedError (403) and changes nothing."""
    view = manual.request(5000)
    with pytest.raises(NotAuthorizedError):
        manual.service.approve(view.id, approver="3")
    assert manual.service.get(view.id).status == "requested"


def test_other_mentors_cannot_see_or_cancel(manual: Setup) -> None:
    """Scoped to a mentor, get and cancel refuse another mentor's payout; list filters."""
    view = manual.request(5000)
    with pytest.raises(NotAuthorizedError):
        manual.service.get(view.id, mentor_id="4")
    with pytest.raises(NotAuthorizedError):
        manual.service.cancel(view.id, mentor_id="4")
    assert manual.service.get(view.id, mentor_id="3").status == "requested"
    assert manual.service.list(mentor_id="4") == []
    assert [p.id for p in manual.service.list(mentor_id="3", status="requested")] == [view.id]
    with pytest.raises(InvalidRequestError):
        manual.service.list(status="lost")


def test_mentor_cancels_own_request_and_money_returns(manual: Setup) -> None:
    """Cancelling a requested payout returns the reserved money to available."""
    view = manual.request(5000)
    assert manual.service.cancel(view.id, mentor_id="3").status == "cancelled"
    assert manual.balance() == (9000, 0, 0)
    assert manual.ledger.verify().ok


# -- manual payouts ------------------------------------------------------------------------------


def test_manual_flow_to_paid(manual: Setup) -> None:
    """request -> approve -> execute -> mark_paid moves reserved to withdrawn."""
    view = manual.request(5000)
    approved = manual.service.approve(view.id, approver="admin")
    assert approved.approved_at is not None
    assert manual.service.execute(view.id).status == "processing"
    assert manual.service.execute(view.id).status == "processing"  # idempotent
    paid = manual.service.mark_paid(view.id, reference="BANK-2026-001")
    assert (paid.status, paid.reference, paid.transfer_id) == ("paid", "BANK-2026-001", None)
    assert paid.settled_at is not None
    assert manual.balance() == (4000, 0, 5000)
    assert manual.ledger.verify().ok


def test_manual_reference_is_unique_and_failure_returns_money(manual: Setup) -> None:
    """A bank reference records one payout only; a failed bank transfer returns the money."""
    first, second = manual.request(3000), manual.request(3000)
    for view in (first, second):
        manual.service.approve(view.id, approver="admin")
        manual.service.execute(view.id)
    manual.service.mark_paid(first.id, reference="BANK-1")
    with pytest.raises(InvalidRequestError, match="already records"):
        manual.service.mark_paid(second.id, reference="BANK-1")
    failed = manual.service.mark_failed(second.id, reason="account closed")
    assert (failed.status, failed.failure_reason) == ("failed", "account closed")
    assert manual.balance() == (6000, 0, 3000)


def test_manual_reversal(manual: Setup) -> None:
    """A manual payout the bank returned goes paid -> reversed, money back to available."""
    view = manual.request(5000)
    manual.service.approve(view.id, approver="admin")
    manual.service.mark_paid(view.id, reference="BANK-9")
    assert manual.service.reverse(view.id, reason="returned").status == "reversed"
    assert manual.balance() == (9000, 0, 0)
    assert manual.ledger.verify().ok


# -- Stripe transfers ----------------------------------------------------------------------------


def approved(setup: Setup, amount: int = 5000) -> int:
    """A requested and approved payout's id."""
    view = setup.request(amount)
    setup.service.approve(view.id, approver="admin")
    return int(view.id)


def test_execute_sends_the_transfer_and_webhook_settles(
    stripe_mode: Setup, http: responses.RequestsMock
) -> None:
    """execute POSTs the exact transfer under the payout's key; transfer.created pays it once."""
    payout_id = approved(stripe_mode)
    http.post(f"{API}/v1/transfers", json=transfer_json(payout_id))
    view = stripe_mode.service.execute(payout_id)
    request = http.calls[0].request
    assert dict(parse_qsl(request.body)) == {
        "amount": "5000",
        "currency": "gbp",
        "destination": ACCT,
        "metadata[payout_request_id]": str(payout_id),
        "metadata[mentor_id]": "3",
        "transfer_group": f"mentorpay-payout-{payout_id}",
        "description": f"mentorpay payout {payout_id}",
    }
    assert request.headers["Idempotency-Key"] == f"mentorpay:payout:{payout_id}:transfer"
    assert "Stripe-Account" not in request.headers
    assert (view.status, view.transfer_id) == ("processing", "tr_1")
    assert stripe_mode.balance() == (4000, 5000, 0)
    assert stripe_mode.deliver("transfer.created", transfer_json(payout_id)) == "success"
    assert stripe_mode.deliver("transfer.updated", transfer_json(payout_id)) == (
        "payment_already_processed"
    )
    assert stripe_mode.service.get(payout_id).status == "paid"
    assert stripe_mode.balance() == (4000, 0, 5000)
    (effect,) = stripe_mode.effects
    assert effect.data == {
        "payout_id": payout_id,
        "mentor_id": "3",
        "amount": 5000,
        "currency": "GBP",
        "status": "paid",
        "transfer_id": "tr_1",
    }
    assert stripe_mode.ledger.verify().ok


def test_refused_transfer_fails_the_payout_and_returns_money(
    stripe_mode: Setup, http: responses.RequestsMock
) -> None:
    """A definitive refusal fails the payout and unreserves the money; nothing is half-applied."""
    payout_id = approved(stripe_mode)
    http.post(
        f"{API}/v1/transfers",
        status=400,
        json={
            "error": {
                "type": "invalid_request_error",
                "code": "balance_insufficient",
                "message": "Insufficient funds in Stripe account",
            }
        },
    )
    with pytest.raises(GatewayInvalidRequestError):
        stripe_mode.service.execute(payout_id)
    view = stripe_mode.service.get(payout_id)
    assert (view.status, view.transfer_id) == ("failed", None)
    assert "Insufficient funds" in (view.failure_reason or "")
    assert stripe_mode.balance() == (9000, 0, 0)
    assert stripe_mode.ledger.verify().ok


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        ({"body": requests.ConnectionError("reset")}, GatewayConnectionError),
        (
            {"status": 429, "json": {"error": {"type": "rate_limit", "message": "slow"}}},
            GatewayRateLimitError,
        ),
    ],
    ids=["connection-lost", "rate-limited"],
)
def test_unknown_outcome_stays_processing_and_retry_replays_the_key(
    stripe_mode: Setup, http: responses.RequestsMock, failure: dict[str, Any], error: type
) -> None:
    """Unknown outcome or rate limit: stays processing; execute() again replays the key."""
    payout_id = approved(stripe_mode)
    http.post(f"{API}/v1/transfers", **failure)
    with pytest.raises(error):
        stripe_mode.service.execute(payout_id)
    view = stripe_mode.service.get(payout_id)
    assert (view.status, view.transfer_id) == ("processing", None)
    assert stripe_mode.balance() == (4000, 5000, 0)
    with pytest.raises(PayoutStateError):
        stripe_mode.service.cancel(payout_id)
    http.post(f"{API}/v1/transfers", json=transfer_json(payout_id))
    assert stripe_mode.service.execute(payout_id).transfer_id == "tr_1"
    first, second = (c.request for c in http.calls)
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert first.body == second.body


def test_webhook_before_execute_records_settles_by_metadata(engine: Engine) -> None:
    """If Stripe acted but the answer was lost, transfer.created finds the payout by metadata."""
    fake = FakeGateway()
    setup = Setup(engine, fake, mode="stripe_transfer")
    setup.fund()
    payout_id = approved(setup)
    fake.fail_next(GatewayConnectionError("lost"), performed=True)
    with pytest.raises(GatewayConnectionError):
        setup.service.execute(payout_id)
    (sent,) = fake.transfers
    assert setup.deliver("transfer.created", sent) == "success"
    view = setup.service.get(payout_id)
    assert (view.status, view.transfer_id) == ("paid", sent["id"])
    assert setup.balance() == (4000, 0, 5000)
    assert len(fake.calls_to("create_transfer")) == 1


def test_transfer_reversed_after_paid_returns_money(engine: Engine) -> None:
    """reverse() asks Stripe; transfer.reversed then makes the payout reversed, once."""
    fake = FakeGateway()
    setup = Setup(engine, fake, mode="stripe_transfer")
    setup.fund()
    payout_id = approved(setup)
    view = setup.service.execute(payout_id)
    assert view.transfer_id is not None
    setup.deliver("transfer.created", fake.transfer(view.transfer_id))
    assert setup.service.reverse(payout_id).status == "paid"  # until Stripe says so
    (call,) = fake.calls_to("create_transfer_reversal")
    assert call.idempotency_key == f"mentorpay:payout:{payout_id}:reversal"
    reversed_transfer = fake.transfer(view.transfer_id)
    assert setup.deliver("transfer.reversed", reversed_transfer) == "success"
    assert setup.deliver("transfer.reversed", reversed_transfer) == "payment_already_processed"
    assert setup.service.get(payout_id).status == "reversed"
    assert setup.balance() == (9000, 0, 0)
    assert [e.data["status"] for e in setup.effects] == ["paid", "reversed"]
    assert setup.ledger.verify().ok


def test_transfer_reversed_before_it_settled_fails_the_payout(engine: Engine) -> None:
    """A reversal of a transfer never counted as paid fails the payout (reserved -> available)."""
    setup = Setup(engine, mode="stripe_transfer")
    setup.fund()
    payout_id = approved(setup)
    setup.service.execute(payout_id)
    reversed_obj = transfer_json(payout_id, amount_reversed=5000)
    reversed_obj["id"] = setup.service.get(payout_id).transfer_id
    assert setup.deliver("transfer.reversed", reversed_obj) == "success"
    assert setup.service.get(payout_id).status == "failed"
    assert setup.balance() == (9000, 0, 0)


def test_foreign_partial_or_mismatched_transfers_are_ignored(engine: Engine) -> None:
    """Transfers not made for a payout, partial reversals and wrong amounts settle nothing."""
    setup = Setup(engine, mode="stripe_transfer")
    setup.fund()
    payout_id = approved(setup)
    setup.service.execute(payout_id)
    tr_id = setup.service.get(payout_id).transfer_id
    assert setup.deliver("transfer.created", transfer(amount=5000)) == "ignored"
    wrong = transfer_json(payout_id, amount=5001)
    wrong["id"] = tr_id
    assert setup.deliver("transfer.created", wrong) == "ignored"
    partial = transfer_json(payout_id, amount_reversed=100)
    partial["id"] = tr_id
    assert setup.deliver("transfer.reversed", partial) == "ignored"
    assert setup.service.get(payout_id).status == "processing"
    assert setup.balance() == (4000, 5000, 0)


def test_mark_paid_is_only_for_manual_payouts(engine: Engine) -> None:
    """A Stripe-transfer payout settles from webhooks; mark_paid refuses it."""
    setup = Setup(engine, mode="stripe_transfer")
    setup.fund()
    payout_id = approved(setup)
    with pytest.raises(PayoutStateError, match="manual"):
        setup.service.mark_paid(payout_id, reference="BANK-1")


# -- concurrency ---------------------------------------------------------------------------------


def run_threads(count: int, target: Any) -> list[BaseException | None]:
    """Run ``target(i)`` in ``count`` threads released together; each one's error or None."""
    barrier = threading.Barrier(count)
    outcomes: list[BaseException | None] = [None] * count

    def worker(i: int) -> None:
        barrier.wait()
        try:
            target(i)
        except BaseException as exc:  # collected for the assertions
            outcomes[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_simultaneous_requests_never_exceed_available(engine: Engine) -> None:
    """Ten threads each asking 20.00 of 90.00 available: four succeed, six are refused."""
    setup = Setup(engine)
    setup.fund()
    outcomes = run_threads(10, lambda i: setup.request(2000))
    refused = [o for o in outcomes if o is not None]
    assert all(isinstance(o, InsufficientBalanceError) for o in refused), refused
    assert len(refused) == 6
    assert setup.balance() == (1000, 8000, 0)
    assert payout_rows(engine) == 4
    assert setup.ledger.verify().ok


def test_simultaneous_approvals_apply_once(manual: Setup) -> None:
    """Two admins approving at once: one wins, the other gets PayoutStateError."""
    view = manual.request(5000)
    outcomes = run_threads(2, lambda i: manual.service.approve(view.id, approver=f"admin{i}"))
    assert sorted(type(o).__name__ for o in outcomes) == ["NoneType", "PayoutStateError"]


def test_simultaneous_cancels_return_money_once(manual: Setup) -> None:
    """Concurrent cancels of one payout credit available once."""
    view = manual.request(5000)
    outcomes = run_threads(4, lambda i: manual.service.cancel(view.id))
    assert sum(o is None for o in outcomes) == 1
    assert manual.balance() == (9000, 0, 0)
    assert manual.ledger.verify().ok


def test_overlong_ids_are_refused_before_the_database(manual: Setup) -> None:
    """Destinations and references longer than the columns are InvalidRequestError."""
    with pytest.raises(InvalidRequestError):
        manual.request(5000, destination="x" * 256)
    view = manual.request(5000)
    manual.service.approve(view.id, approver="admin")
    with pytest.raises(InvalidRequestError):
        manual.service.mark_paid(view.id, reference="r" * 256)
    assert manual.service.get(view.id).status == "approved"


def test_busy_key_keeps_the_payout_processing(engine: Engine) -> None:
    """An idempotency conflict (a concurrent execute holds the key) never fails the payout."""
    fake = FakeGateway()
    setup = Setup(engine, fake, mode="stripe_transfer")
    setup.fund()
    payout_id = approved(setup)
    fake.fail_next(IdempotencyConflictError("in progress"), method="create_transfer")
    with pytest.raises(IdempotencyConflictError):
        setup.service.execute(payout_id)
    assert setup.service.get(payout_id).status == "processing"
    assert setup.service.execute(payout_id).transfer_id is not None


def test_transfer_payout_without_gateway_is_refused_before_any_change(engine: Engine) -> None:
    """Executing a transfer payout with no gateway configured changes nothing."""
    setup = Setup(engine, mode="stripe_transfer")
    setup.fund()
    payout_id = approved(setup)
    service = PayoutService(setup.config, engine, setup.ledger, None)
    with pytest.raises(InvalidRequestError, match="gateway"):
        service.execute(payout_id)
    assert setup.service.get(payout_id).status == "approved"
