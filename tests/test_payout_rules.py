"""The payout rules without a database: the state machine, request checks, and whether a
transfer event is the transfer a payout asked for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mentorpay.errors import (
    InsufficientBalanceError,
    InvalidAmountError,
    InvalidRequestError,
    MentorNotFoundError,
)
from mentorpay.gateway import GatewayTransfer
from mentorpay.money import Money
from mentorpay.payouts import PayoutView
from mentorpay.payouts.rules import (
    PAYOUT_STATUSES,
    SETTLEMENT,
    TRANSITIONS,
    PayoutStatus,
    can_transition,
    check_available,
    check_list_query,
    check_request,
    settled_effect,
    transfer_mismatch,
    transition_refusal,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _view(**changes: Any) -> PayoutView:
    fields: dict[str, Any] = {
        "id": 7,
        "mentor_id": "m1",
        "amount": Money(5000, "GBP"),
        "status": "processing",
        "method": "stripe_transfer",
        "destination": "acct_1",
        "transfer_id": None,
        "reference": None,
        "approved_by": "admin",
        "failure_reason": None,
        "created_at": NOW,
        "updated_at": NOW,
        "approved_at": NOW,
        "settled_at": None,
    }
    fields.update(changes)
    return PayoutView(**fields)


def _transfer(**changes: Any) -> GatewayTransfer:
    obj: dict[str, Any] = {
        "id": "tr_1",
        "amount": 5000,
        "amount_reversed": 0,
        "currency": "gbp",
        "destination": "acct_1",
        "reversed": False,
        "metadata": {"payout_request_id": "7"},
        "livemode": False,
    }
    obj.update(changes)
    return GatewayTransfer.from_dict(obj)


def test_statuses_are_the_literal_and_the_machine_covers_them() -> None:
    """PAYOUT_STATUSES is the PayoutStatus Literal, and TRANSITIONS has a row for each."""
    assert get_args(PayoutStatus) == PAYOUT_STATUSES
    assert set(TRANSITIONS) == set(PAYOUT_STATUSES)
    assert all(targets <= set(PAYOUT_STATUSES) for targets in TRANSITIONS.values())


@given(st.sampled_from(PAYOUT_STATUSES), st.sampled_from(PAYOUT_STATUSES))
def test_refusal_agrees_with_the_machine(source: str, target: str) -> None:
    """A manual payout is refused exactly the moves the state machine forbids."""
    refused = transition_refusal(1, source, target, "manual") is not None
    assert refused == (not can_transition(source, target))


def test_only_manual_payouts_go_from_approved_to_paid() -> None:
    """approved -> paid is legal, but a Stripe transfer payout must be executed first."""
    assert transition_refusal(1, "approved", "paid", "manual") is None
    refusal = transition_refusal(1, "approved", "paid", "stripe_transfer")
    assert refusal is not None and "execute it first" in refusal.message


def test_settled_statuses_post_the_right_movement() -> None:
    """paid withdraws, cancelled and failed return, reversed gives back."""
    assert dict(SETTLEMENT) == {
        "paid": "paid",
        "cancelled": "returned",
        "failed": "returned",
        "reversed": "reversed",
    }


def test_request_checks_amount_minimum_ids_and_destination() -> None:
    """Zero, below-minimum, over-long ids and a non-acct destination are refused up front."""
    ok = {"min_payout": {"GBP": 1000}, "mentor_id": "m1", "destination": "acct_1"}
    check_request(Money(1000, "GBP"), method="stripe_transfer", **ok)
    with pytest.raises(InvalidAmountError):
        check_request(Money(0, "GBP"), method="stripe_transfer", **ok)
    with pytest.raises(InvalidAmountError):
        check_request(Money(999, "GBP"), method="stripe_transfer", **ok)
    with pytest.raises(InvalidRequestError):
        check_request(Money(1000, "GBP"), method="manual", **{**ok, "mentor_id": "x" * 256})
    with pytest.raises(InvalidRequestError):
        check_request(Money(1000, "GBP"), method="stripe_transfer", **{**ok, "destination": "b"})
    check_request(Money(1000, "GBP"), method="manual", **{**ok, "destination": "bank"})
    with pytest.raises(TypeError):
        check_request(1000, method="manual", **ok)  # type: ignore[arg-type]


def test_available_balance_rules() -> None:
    """No balance is an unknown mentor; a negative one refuses any payout."""
    with pytest.raises(MentorNotFoundError):
        check_available(None, "m1", Money(1, "GBP"))
    with pytest.raises(InsufficientBalanceError):
        check_available(-1, "m1", Money(1, "GBP"))
    check_available(0, "m1", Money(1, "GBP"))  # exceeding available is the ledger's refusal


@pytest.mark.parametrize(
    ("transfer", "view", "reason"),
    [
        (_transfer(), _view(), None),
        (_transfer(livemode=True), _view(), "livemode_mismatch"),
        (_transfer(), _view(method="manual"), "not_a_transfer_payout"),
        (_transfer(), _view(transfer_id="tr_other"), "transfer_id_mismatch"),
        (_transfer(destination="acct_2"), _view(), "destination_mismatch"),
        (_transfer(currency="usd"), _view(), "currency_mismatch"),
        (_transfer(amount=4999), _view(), "amount_mismatch"),
    ],
)
def test_transfer_mismatch(transfer: GatewayTransfer, view: PayoutView, reason: str) -> None:
    """A transfer settles a payout only when mode, method, id, destination and money agree."""
    found = transfer_mismatch(transfer, view, livemode=False)
    assert (found[0] if found else None) == reason


def test_settled_effect_is_keyed_by_payout_and_status() -> None:
    """The payout_settled effect id is payout:<id>:<status>, whichever path settled it."""
    effect = settled_effect(_view(status="paid", transfer_id="tr_1"))
    assert effect.kind == "payout_settled"
    assert effect.id == "payout:7:paid"
    assert effect.data["transfer_id"] == "tr_1"


@pytest.mark.parametrize("limit", [1, 500])
def test_listing_accepts_limits_from_one_to_five_hundred(limit: int) -> None:
    """Kills `500 -> 501` and `1 -> 0` at their edges: 1 and 500 are both accepted."""
    check_list_query("paid", limit)


@pytest.mark.parametrize("limit", [0, 501])
def test_listing_refuses_limits_outside_one_to_five_hundred(limit: int) -> None:
    """Kills `1 -> 0` and `500 -> 501` in check_list_query: 0 and 501 are refused."""
    with pytest.raises(InvalidRequestError):
        check_list_query(None, limit)
