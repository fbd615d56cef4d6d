"""Reconciliation against Stripe's paginated list API (served by ``responses``): lost webhooks
are found and, with apply, recorded once through the webhook processor; reruns and late
webhooks change nothing; facts missing at Stripe and amount differences are reported."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from sqlalchemy import Engine

from mentorpay.config import MentorpayConfig
from mentorpay.errors import InvalidRequestError, PaymentNotFoundError
from mentorpay.gateway import StripeGateway
from mentorpay.ledger import LedgerService
from mentorpay.money import Money
from mentorpay.payouts import PayoutService
from mentorpay.reconcile import Reconciler, ReconcileReport
from mentorpay.testing import (
    booking_metadata,
    charge,
    dispute,
    make_event,
    payment_intent,
    transfer,
)
from tests.fixtures.declared_bookings import RigProcessor

API = "https://api.stripe.com"
KINDS = ("payment_intents", "charges", "refunds", "disputes", "transfers")


class StripeApi:
    """Stripe's list and retrieve endpoints over in-memory objects, paginated like Stripe
    (newest first, ``limit``, ``starting_after``, ``has_more``, ``created[gte|lt]``)."""

    def __init__(self, http: responses.RequestsMock) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self.list_queries: dict[str, list[dict[str, str]]] = {kind: [] for kind in KINDS}
        for kind in KINDS:
            http.add_callback(
                responses.GET,
                re.compile(rf"{re.escape(API)}/v1/{kind}(\?.*)?$"),
                callback=self._lister(kind),
            )
            http.add_callback(
                responses.GET,
                re.compile(rf"{re.escape(API)}/v1/{kind}/([^/?]+)(\?.*)?$"),
                callback=self._retriever(kind),
            )

    def add(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[kind][obj["id"]] = obj
        return obj

    def newest_first(self, kind: str) -> list[str]:
        """Ids in Stripe's list order."""
        ordered = sorted(
            self.objects[kind].values(), key=lambda o: (o["created"], o["id"]), reverse=True
        )
        return [o["id"] for o in ordered]

    def _lister(self, kind: str) -> Any:
        def callback(request: Any) -> tuple[int, dict[str, str], str]:
            q = dict(parse_qsl(urlsplit(request.url).query))
            self.list_queries[kind].append(q)
            items = [self.objects[kind][i] for i in self.newest_first(kind)]
            gte, lt = q.get("created[gte]"), q.get("created[lt]")
            items = [
                o
                for o in items
                if (gte is None or o["created"] >= int(gte))
                and (lt is None or o["created"] < int(lt))
            ]
            if "starting_after" in q:
                ids = [o["id"] for o in items]
                items = items[ids.index(q["starting_after"]) + 1 :]
            limit = int(q.get("limit", 10))
            body = {
                "object": "list",
                "url": f"/v1/{kind}",
                "has_more": len(items) > limit,
                "data": items[:limit],
            }
            return 200, {}, json.dumps(body)

        return callback

    def _retriever(self, kind: str) -> Any:
        def callback(request: Any) -> tuple[int, dict[str, str], str]:
            object_id = urlsplit(request.url).path.rsplit("/", 1)[1]
            obj = self.objects[kind].get(object_id)
            if obj is None:
                error = {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "message": f"No such object: '{object_id}'",
                }
                return 404, {}, json.dumps({"error": error})
            return 200, {}, json.dumps(obj)

        return callback


class Setup:
    """Ledger, webhook processor (with payout handlers) and a Reconciler on StripeGateway."""

    def __init__(self, engine: Engine, http: responses.RequestsMock) -> None:
        self.engine = engine
        self.http = http
        self.stripe = StripeApi(http)
        self.config = MentorpayConfig(webhook_secrets=["whsec_test"], payout_mode="stripe_transfer")
        self.ledger = LedgerService(engine)
        self.webhooks = RigProcessor(self.config, engine, self.ledger)
        # A small page size makes every listing span several pages.
        self.gateway = StripeGateway("sk_test_123", max_network_retries=0, page_size=2)
        self.payouts = PayoutService(self.config, engine, self.ledger, self.gateway)
        for event_type, handler in self.payouts.webhook_handlers().items():
            self.webhooks.register(event_type, handler)
        self.applied: list[dict[str, Any]] = []
        self.reconciler = Reconciler(self.config, engine, self.gateway, self.ledger, self._apply)
        self.since = datetime.now(UTC) - timedelta(days=1)
        self.until = datetime.now(UTC) + timedelta(hours=1)

    def _apply(self, event: Any) -> Any:
        self.applied.append(dict(event))
        return self.webhooks.process_trusted(event)

    def run(self, *, apply: bool = False) -> ReconcileReport:
        return self.reconciler.run(self.since, self.until, apply=apply)

    def paid(
        self, pi_id: str, *, amount: int = 5000, booking: str = "42", **extra: Any
    ) -> dict[str, Any]:
        """A succeeded mentorpay payment at Stripe, with its charge."""
        ch = self.stripe.add(
            "charges", charge(id=f"ch_{pi_id}", payment_intent=pi_id, amount=amount)
        )
        return self.stripe.add(
            "payment_intents",
            payment_intent(
                id=pi_id,
                amount=amount,
                latest_charge=ch["id"],
                metadata=booking_metadata(booking, mentor_id="3", mentee_id="7"),
                **extra,
            ),
        )

    def webhook(self, event_type: str, obj: dict[str, Any]) -> str:
        """Deliver the real webhook for an object."""
        return self.webhooks.process_trusted(make_event(event_type, obj)).status

    def snapshot(self) -> Any:
        balance = self.ledger.balance("3", "GBP")
        return balance, self.ledger.verify().transactions


@pytest.fixture
def setup(engine: Engine) -> Iterator[Setup]:
    """A reconciliation rig on each database, Stripe's API intercepted."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        yield Setup(engine, http)


def test_lost_payment_webhook_is_found_and_recorded_once(setup: Setup) -> None:
    """A lost payment webhook is applied once; a rerun and the late webhook change nothing."""
    delivered = setup.paid("pi_a")
    lost = setup.paid("pi_b", booking="44")
    setup.stripe.add("payment_intents", payment_intent(id="pi_foreign", metadata={}))
    setup.stripe.add(
        "payment_intents",
        payment_intent(
            id="pi_unpaid",
            status="requires_payment_method",
            metadata=booking_metadata("43", mentor_id="3", mentee_id="7"),
        ),
    )
    assert setup.webhook("payment_intent.succeeded", delivered) == "success"

    report = setup.run()
    (missing,) = report.kinds["payments"].missing_in_ledger
    assert (missing.object_id, missing.stripe_amount) == ("pi_b", Money(5000, "GBP"))
    assert missing.event_type == "payment_intent.succeeded"
    assert report.kinds["payments"].checked == 2
    assert report.applied == []
    assert not report.ok
    pages = setup.stripe.list_queries["payment_intents"]
    assert len(pages) == 2
    assert pages[0]["limit"] == "2"
    assert "starting_after" not in pages[0]
    assert pages[1]["starting_after"] == setup.stripe.newest_first("payment_intents")[1]
    with pytest.raises(PaymentNotFoundError):
        setup.ledger.payment("pi_b")

    applied = setup.run(apply=True)
    assert [(a.event_id, a.status) for a in applied.applied] == [("evt_reconcile_pi_b", "success")]
    assert setup.applied[0]["data"]["object"]["id"] == "pi_b"
    assert setup.ledger.payment("pi_b").gross == Money(5000, "GBP")
    after_apply = setup.snapshot()
    assert after_apply[0].pending == Money(9000, "GBP")

    rerun = setup.run(apply=True)
    assert rerun.ok
    assert rerun.applied == []
    assert setup.webhook("payment_intent.succeeded", lost) == "payment_already_processed"
    assert setup.snapshot() == after_apply
    assert setup.ledger.verify().ok


def test_pagination_walks_every_page_with_starting_after(setup: Setup) -> None:
    """Five payments over three pages are all compared; each page starts after the last id."""
    for i in range(5):
        setup.paid(f"pi_{i}", booking=f"b{i}")
    report = setup.run()
    assert len(report.kinds["payments"].missing_in_ledger) == 5
    pages = setup.stripe.list_queries["payment_intents"]
    ids = setup.stripe.newest_first("payment_intents")
    assert [q.get("starting_after") for q in pages] == [None, ids[1], ids[3]]
    assert all(q["created[gte]"] == str(int(setup.since.timestamp())) for q in pages)


def test_missing_in_stripe_and_amount_mismatch_are_reported_not_applied(setup: Setup) -> None:
    """A ledger payment Stripe does not know, and one whose amount differs, are only reported."""
    ghost = payment_intent(
        id="pi_ghost", metadata=booking_metadata("9", mentor_id="3", mentee_id="7")
    )
    assert setup.webhook("payment_intent.succeeded", ghost) == "success"
    setup.paid("pi_more", amount=6000, booking="10")
    recorded = payment_intent(
        id="pi_more", amount=5000, metadata=booking_metadata("10", mentor_id="3", mentee_id="7")
    )
    assert setup.webhook("payment_intent.succeeded", recorded) == "success"
    before = setup.snapshot()
    report = setup.run(apply=True)
    payments = report.kinds["payments"]
    assert [d.object_id for d in payments.missing_in_stripe] == ["pi_ghost"]
    (mismatch,) = payments.amount_mismatches
    assert (mismatch.stripe_amount, mismatch.ledger_amount) == (
        Money(6000, "GBP"),
        Money(5000, "GBP"),
    )
    assert report.applied == []
    assert setup.snapshot() == before
    assert "DIFFERENCES FOUND" in report.render()


def test_lost_refund_webhook_is_applied_by_cumulative_total(setup: Setup) -> None:
    """A refund whose charge.refunded never arrived is applied once; the late webhook is a no-op."""
    pi = setup.paid("pi_r")
    assert setup.webhook("payment_intent.succeeded", pi) == "success"
    ch = setup.stripe.objects["charges"]["ch_pi_r"]
    ch["amount_refunded"] = 2000
    setup.stripe.add(
        "refunds",
        {
            "id": "re_1",
            "object": "refund",
            "amount": 2000,
            "currency": "gbp",
            "charge": ch["id"],
            "payment_intent": "pi_r",
            "status": "succeeded",
            "created": int(time.time()),
        },
    )
    report = setup.run(apply=True)
    (missing,) = report.kinds["refunds"].missing_in_ledger
    assert (missing.object_id, missing.stripe_amount, missing.ledger_amount) == (
        "ch_pi_r",
        Money(2000, "GBP"),
        Money(0, "GBP"),
    )
    assert [a.event_id for a in report.applied] == ["evt_reconcile_ch_pi_r_refunded_2000"]
    assert setup.ledger.payment("pi_r").refunded == Money(2000, "GBP")
    after = setup.snapshot()
    assert setup.run(apply=True).ok
    assert setup.webhook("charge.refunded", ch) == "success"
    assert setup.snapshot() == after
    assert setup.ledger.verify().ok


def test_payment_and_its_refund_both_lost_are_applied_in_order(setup: Setup) -> None:
    """Payment first, then its refund: the ledger ends exactly where the webhooks would leave it."""
    setup.paid("pi_pr")
    setup.stripe.objects["charges"]["ch_pi_pr"]["amount_refunded"] = 5000
    setup.stripe.add(
        "refunds",
        {
            "id": "re_2",
            "object": "refund",
            "amount": 5000,
            "currency": "gbp",
            "charge": "ch_pi_pr",
            "payment_intent": "pi_pr",
            "status": "succeeded",
            "created": int(time.time()),
        },
    )
    report = setup.run(apply=True)
    assert [a.event_type for a in report.applied] == ["payment_intent.succeeded", "charge.refunded"]
    record = setup.ledger.payment("pi_pr")
    assert (record.status, record.refunded) == ("refunded", Money(5000, "GBP"))
    assert setup.ledger.balance("3", "GBP").total_earned == Money(0, "GBP")
    assert setup.run(apply=True).ok


def test_lost_dispute_events_are_applied(setup: Setup) -> None:
    """A dispute opened and lost without webhooks is applied as created then closed, once."""
    pi = setup.paid("pi_d")
    assert setup.webhook("payment_intent.succeeded", pi) == "success"
    lost = setup.stripe.add(
        "disputes", dispute(id="dp_1", charge="ch_pi_d", payment_intent="pi_d", status="lost")
    )
    report = setup.run(apply=True)
    missing = report.kinds["disputes"].missing_in_ledger
    assert [d.event_type for d in missing] == ["charge.dispute.created", "charge.dispute.closed"]
    assert [a.status for a in report.applied] == ["success", "success"]
    assert setup.ledger.payment("pi_d").status == "dispute_lost"
    after = setup.snapshot()
    assert setup.run(apply=True).ok
    assert setup.webhook("charge.dispute.closed", lost) == "success"
    assert setup.snapshot() == after


def test_lost_transfer_webhook_settles_the_payout(setup: Setup) -> None:
    """A payout whose transfer.created never arrived is paid by reconciliation, once."""
    pi = setup.paid("pi_t", amount=10000)
    assert setup.webhook("payment_intent.succeeded", pi) == "success"
    setup.ledger.release_payment("pi_t")
    view = setup.payouts.request("3", Money(5000, "GBP"), destination="acct_mentor3")
    setup.payouts.approve(view.id, approver="admin")
    tr = transfer(
        id="tr_9",
        amount=5000,
        destination="acct_mentor3",
        metadata={"payout_request_id": str(view.id), "mentor_id": "3"},
    )
    setup.http.post(f"{API}/v1/transfers", json=tr)
    setup.payouts.execute(view.id)
    setup.stripe.add("transfers", tr)
    report = setup.run(apply=True)
    (missing,) = report.kinds["transfers"].missing_in_ledger
    assert (missing.object_id, missing.payout_id, missing.event_type) == (
        "tr_9",
        view.id,
        "transfer.created",
    )
    assert setup.payouts.get(view.id).status == "paid"
    assert setup.ledger.balance("3", "GBP").withdrawn == Money(5000, "GBP")
    assert setup.run(apply=True).ok
    # Later Stripe reverses it and that webhook is lost too.
    tr["amount_reversed"], tr["reversed"] = 5000, True
    report = setup.run(apply=True)
    assert [a.event_type for a in report.applied] == ["transfer.reversed"]
    assert setup.payouts.get(view.id).status == "reversed"
    assert setup.ledger.balance("3", "GBP").available == Money(9000, "GBP")
    assert setup.ledger.verify().ok


def test_report_serialises_and_renders(setup: Setup) -> None:
    """as_dict is JSON-ready and render() names each kind and the verdict."""
    setup.paid("pi_x")
    report = setup.run()
    data = json.loads(json.dumps(report.as_dict()))
    assert data["kinds"]["payments"]["missing_in_ledger"][0]["object_id"] == "pi_x"
    assert data["ok"] is False
    text = report.render()
    for word in ("payments:", "refunds:", "disputes:", "transfers:", "--apply"):
        assert word in text


def test_period_must_be_aware_and_ordered(setup: Setup) -> None:
    """Naive datetimes and an empty period are refused before Stripe is called."""
    with pytest.raises(InvalidRequestError):
        setup.reconciler.run(datetime(2026, 1, 1))
    with pytest.raises(InvalidRequestError):
        setup.reconciler.run(setup.until, setup.since)
    assert all(not q for q in setup.stripe.list_queries.values())
