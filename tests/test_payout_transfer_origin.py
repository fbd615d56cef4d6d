"""Issue 8, case 5: a transfer event settles a payout only when it is the platform's own transfer
for that payout (platform account, configured mode, destination, amount, currency, transfer id).

The attack: a correctly signed ``transfer.reversed`` sent by another account (a Connect
endpoint's secret is configured, so its events verify) names a real payout's
``payout_request_id``. On the old code it failed the payout and returned the money to
available; the real ``transfer.created`` was then ignored and a second payout made a second
transfer.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest
import stripe
from sqlalchemy import Engine

from mentorpay.commission import CommissionPolicy
from mentorpay.config import MentorpayConfig
from mentorpay.errors import GatewayConnectionError, InsufficientBalanceError
from mentorpay.events import Effect
from mentorpay.ledger import LedgerService
from mentorpay.money import Money
from mentorpay.payouts import PayoutService
from mentorpay.testing import (
    FakeGateway,
    encode_event,
    make_event,
    sign_payload,
    stripe_id,
    transfer,
)
from mentorpay.webhooks import WebhookProcessor

SECRET = "whsec_test"
ACCT = "acct_mentor3"


class World:
    """Stripe-transfer payouts over a FakeGateway; mentor 3 has 90.00 GBP available."""

    def __init__(self, engine: Engine, **config: Any) -> None:
        self.config = MentorpayConfig(
            webhook_secrets=[SECRET], payout_mode="stripe_transfer", **config
        )
        self.ledger = LedgerService(engine)
        self.fake = FakeGateway()
        self.payouts = PayoutService(self.config, engine, self.ledger, self.fake)
        self.webhooks = WebhookProcessor(self.config, engine, self.ledger)
        for event_type, handler in self.payouts.webhook_handlers().items():
            self.webhooks.register(event_type, handler)
        self.alerts: list[Effect] = []
        self.settled: list[Effect] = []
        self.webhooks.on("alert", self.alerts.append)
        self.webhooks.on("payout_settled", self.settled.append)
        self.ledger.record_payment(
            payment_intent_id="pi_1",
            booking_id="b-1",
            mentor_id="3",
            mentee_id="7",
            gross=Money(10000, "GBP"),
            policy=CommissionPolicy(rate_bps=1000),
        )
        self.ledger.release_payment("pi_1")

    def executed_payout(self) -> tuple[int, str]:
        """A 50.00 payout requested, approved and executed: (payout id, transfer id)."""
        view = self.payouts.request("3", Money(5000, "GBP"), destination=ACCT)
        self.payouts.approve(view.id, approver="admin")
        executed = self.payouts.execute(view.id)
        assert executed.transfer_id is not None
        return view.id, executed.transfer_id

    def send(
        self,
        event_type: str,
        obj: dict[str, Any],
        *,
        account: str | None = None,
        live: bool = False,
    ) -> str:
        """Deliver a correctly signed event through the real processor; its answer."""
        raw = encode_event(make_event(event_type, obj, account=account, livemode=live))
        return self.webhooks.process(raw, sign_payload(raw, SECRET)).status

    def balance(self) -> tuple[int, int, int]:
        """Mentor 3's (available, reserved, withdrawn) in GBP."""
        b = self.ledger.balance("3", "GBP")
        return b.available.amount, b.reserved.amount, b.withdrawn.amount


def stripe_transfer(
    payout_id: int,
    *,
    id: str | None = None,
    amount: int = 5000,
    currency: str = "gbp",
    destination: str = ACCT,
    reversed_amount: int = 0,
    livemode: bool = False,
) -> dict[str, Any]:
    """A transfer object in the shape of the SDK's ``stripe.Transfer``, reversals list included."""
    transfer_id = id or stripe_id("tr")
    reversals = [
        {
            "id": stripe_id("trr"),
            "object": "transfer_reversal",
            "amount": reversed_amount,
            "currency": currency,
            "transfer": transfer_id,
            "metadata": {},
        }
    ]
    return transfer(
        id=transfer_id,
        amount=amount,
        currency=currency,
        destination=destination,
        metadata={"payout_request_id": str(payout_id), "mentor_id": "3"},
        amount_reversed=reversed_amount,
        transfer_group=f"mentorpay-payout-{payout_id}",
        livemode=livemode,
        reversals={
            "object": "list",
            "data": reversals if reversed_amount else [],
            "has_more": False,
            "total_count": 1 if reversed_amount else 0,
            "url": f"/v1/transfers/{transfer_id}/reversals",
        },
    )


class Attack(NamedTuple):
    """One forged transfer event: who sends it, in which mode, what it changes, and why it fails."""

    name: str
    account: str | None
    live: bool
    changes: dict[str, Any]
    reason: str


ATTACKS = [
    Attack("other-account", "acct_other", False, {}, "connected_account"),
    Attack("mentors-own-account", ACCT, False, {}, "connected_account"),
    Attack("wrong-destination", None, False, {"destination": "acct_other"}, "destination_mismatch"),
    Attack("wrong-amount", None, False, {"amount": 4999}, "amount_mismatch"),
    Attack("wrong-currency", None, False, {"currency": "eur"}, "currency_mismatch"),
    Attack("livemode-mismatch", None, True, {"livemode": True}, "livemode_mismatch"),
    Attack("other-transfer-id", None, False, {"id": "tr_forged"}, "transfer_id_mismatch"),
]
ATTACK_IDS = [a.name for a in ATTACKS]
#: Refused by the webhook processor before any handler runs (recorded, logged, no alert).
ORIGIN_REASONS = frozenset({"connected_account", "livemode_mismatch"})


def expected_alerts(attack: Attack) -> list[str]:
    """The alert reasons an attack raises: none for the wrong origin, else its mismatch."""
    return [] if attack.reason in ORIGIN_REASONS else [attack.reason]


def assert_refused(world: World, attack: Attack) -> None:
    """The forged event raised its alert, or (wrong origin) was stored ignored with why."""
    assert [a.data["reason"] for a in world.alerts] == expected_alerts(attack)
    if attack.reason in ORIGIN_REASONS:
        (row,) = world.webhooks.list_events(status="ignored", limit=1)
        assert row.last_error is not None
        assert ("account" if attack.account else "livemode") in row.last_error


def forged_reversal(payout_id: int, transfer_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """A fully reversed transfer naming the payout, with ``changes`` applied."""
    fields: dict[str, Any] = {"id": transfer_id, **changes}
    amount = fields.get("amount", 5000)
    return stripe_transfer(payout_id, reversed_amount=amount, **fields)


def test_transfer_objects_have_the_sdk_shape() -> None:
    """The transfer objects these tests send carry every field of the SDK's stripe.Transfer."""
    fields = set(stripe.Transfer.__annotations__) - {"OBJECT_NAME"}
    assert fields <= set(stripe_transfer(1))


@pytest.mark.parametrize("attack", ATTACKS, ids=ATTACK_IDS)
def test_forged_reversal_changes_nothing_and_the_real_transfer_settles(
    engine: Engine, attack: Attack
) -> None:
    """A signed foreign or mismatched transfer.reversed is ignored; the real transfer pays once."""
    world = World(engine)
    payout_id, transfer_id = world.executed_payout()
    forged = forged_reversal(payout_id, transfer_id, attack.changes)
    assert (
        world.send("transfer.reversed", forged, account=attack.account, live=attack.live)
        == "ignored"
    )
    assert world.payouts.get(payout_id).status == "processing"
    assert world.balance() == (4000, 5000, 0)
    assert_refused(world, attack)
    for alert in world.alerts:
        assert alert.data["payout_request_id"] == payout_id
        assert alert.data["event_type"] == "transfer.reversed"
    assert world.settled == []

    real = world.fake.transfer(transfer_id)
    assert world.send("transfer.created", real) == "success"
    assert world.payouts.get(payout_id).status == "paid"
    assert world.balance() == (4000, 0, 5000)
    with pytest.raises(InsufficientBalanceError):
        world.payouts.request("3", Money(5000, "GBP"), destination=ACCT)
    assert len(world.fake.calls_to("create_transfer")) == 1
    assert world.ledger.verify().ok


@pytest.mark.parametrize("attack", ATTACKS, ids=ATTACK_IDS)
def test_forged_reversal_of_a_paid_payout_changes_nothing(engine: Engine, attack: Attack) -> None:
    """After a payout is paid, a forged transfer.reversed cannot return its money to available."""
    world = World(engine)
    payout_id, transfer_id = world.executed_payout()
    assert world.send("transfer.created", world.fake.transfer(transfer_id)) == "success"
    forged = forged_reversal(payout_id, transfer_id, attack.changes)
    assert (
        world.send("transfer.reversed", forged, account=attack.account, live=attack.live)
        == "ignored"
    )
    assert world.payouts.get(payout_id).status == "paid"
    assert world.balance() == (4000, 0, 5000)
    assert_refused(world, attack)
    assert [e.data["status"] for e in world.settled] == ["paid"]


@pytest.mark.parametrize("attack", ATTACKS, ids=ATTACK_IDS)
def test_forged_creation_does_not_settle_the_payout(engine: Engine, attack: Attack) -> None:
    """A foreign or mismatched transfer.created does not mark the payout paid."""
    world = World(engine)
    payout_id, transfer_id = world.executed_payout()
    forged = stripe_transfer(payout_id, **{"id": transfer_id, **attack.changes})
    assert (
        world.send("transfer.created", forged, account=attack.account, live=attack.live)
        == "ignored"
    )
    assert world.payouts.get(payout_id).status == "processing"
    assert world.balance() == (4000, 5000, 0)
    assert_refused(world, attack)


def test_lost_execute_answer_settles_only_from_the_platform(engine: Engine) -> None:
    """With no transfer id recorded yet, a foreign copy is ignored and the platform's one pays."""
    world = World(engine)
    view = world.payouts.request("3", Money(5000, "GBP"), destination=ACCT)
    world.payouts.approve(view.id, approver="admin")
    # Stripe made the transfer but the answer was lost: the payout is processing, no transfer id.
    world.fake.fail_next(GatewayConnectionError("lost"), performed=True)
    with pytest.raises(GatewayConnectionError):
        world.payouts.execute(view.id)
    (real,) = world.fake.transfers
    assert (
        world.send(
            "transfer.reversed",
            {**real, "reversed": True, "amount_reversed": 5000},
            account="acct_other",
        )
        == "ignored"
    )
    assert world.send("transfer.created", real, account="acct_other") == "ignored"
    assert (world.payouts.get(view.id).status, world.balance()) == ("processing", (4000, 5000, 0))
    assert world.send("transfer.created", real) == "success"
    assert world.payouts.get(view.id).transfer_id == real["id"]
    assert world.balance() == (4000, 0, 5000)
    assert world.alerts == []  # the wrong origin is refused before the payout handler
    assert len(world.webhooks.list_events(status="ignored")) == 2


def test_live_configuration_accepts_live_transfers_only(engine: Engine) -> None:
    """Under a live key, a test-mode transfer event is ignored and a live one settles."""
    world = World(engine, stripe_secret_key="sk_live_abc")
    payout_id, transfer_id = world.executed_payout()
    real = world.fake.transfer(transfer_id)
    assert world.send("transfer.created", real, live=False) == "ignored"
    (row,) = world.webhooks.list_events(status="ignored")
    assert row.last_error is not None and "livemode" in row.last_error
    assert world.send("transfer.created", {**real, "livemode": True}, live=True) == "success"
    assert world.payouts.get(payout_id).status == "paid"


def test_unrelated_platform_transfers_are_ignored_without_alert(engine: Engine) -> None:
    """A platform transfer that names no payout is not mentorpay's: ignored, no alert."""
    world = World(engine)
    payout_id, _ = world.executed_payout()
    assert world.send("transfer.created", transfer(amount=5000, destination=ACCT)) == "ignored"
    assert world.alerts == []
    assert world.payouts.get(payout_id).status == "processing"
