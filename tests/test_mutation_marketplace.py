"""Tests that kill surviving mutants of mentorpay.cancellation and mentorpay.accounts.rules.

Pure rules, no database; each docstring names the injected fault it catches (see
scripts/mutation.sh).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from mentorpay.accounts.rules import (
    AccountObject,
    AccountStatus,
    Requirements,
    choose_destination,
    join_due,
    readiness_refusal,
    update_refusal,
)
from mentorpay.cancellation import CancellationPolicy, RefundWindow
from mentorpay.money import Money

HOUR = timedelta(hours=1)


# -- cancellation ---------------------------------------------------------------------------------


def test_a_refund_window_cannot_be_changed() -> None:
    """Kills `frozen=True -> False` on RefundWindow: a policy's windows are values."""
    window = RefundWindow(48 * HOUR, 10_000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        window.refund_bps = 0  # type: ignore[misc]


def test_a_cancellation_decision_cannot_be_changed() -> None:
    """Kills `frozen=True -> False` on CancellationDecision: what was decided stays decided."""
    decision = CancellationPolicy().decide(
        "mentor", None, remaining=Money(5000, "GBP"), payout_left=Money(4500, "GBP")
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.refund = Money(0, "GBP")  # type: ignore[misc]


def test_a_kept_fee_with_nothing_left_of_the_mentor_share_refunds_nothing() -> None:
    """Kills `max(payout_left, 0)` -> `max(payout_left, 1)`: an empty share caps the refund at 0."""
    policy = CancellationPolicy(windows=(), late_refund_bps=5_000)
    decision = policy.decide(
        "mentee", HOUR, remaining=Money(500, "GBP"), payout_left=Money(0, "GBP")
    )
    assert decision.fee_kept and decision.refund == Money(0, "GBP")


def test_the_default_full_refund_starts_at_exactly_48_hours() -> None:
    """Kills `hours=48 -> 49`: 48 hours' notice is a full refund, a minute less is half."""
    policy = CancellationPolicy()
    assert policy.refund_bps("mentee", 48 * HOUR)[0] == 10_000
    assert policy.refund_bps("mentee", 48 * HOUR - timedelta(minutes=1))[0] == 5_000


def test_a_kept_fee_caps_the_refund_at_the_mentor_share_in_charge_steps() -> None:
    """Kills `// step` -> `* step`: in ISK (steps of 100) the cap is the share rounded down."""
    policy = CancellationPolicy(windows=(), late_refund_bps=9_999)
    decision = policy.decide(
        "mentee", HOUR, remaining=Money(100_000, "ISK"), payout_left=Money(90_050, "ISK")
    )
    assert decision.fee_kept
    assert decision.refund == Money(90_000, "ISK")


@pytest.mark.parametrize(
    ("notice", "words"),
    [
        (-HOUR, "with no notice"),
        (timedelta(0), "with 0 hours notice"),
        (2 * HOUR, "with 2 hours notice"),
    ],
)
def test_a_late_cancellation_says_how_much_notice_was_given(notice: timedelta, words: str) -> None:
    """Kills `notice < 0` -> `<= 0` and the `return None`s in _notice: the rule names the notice."""
    _, rule = CancellationPolicy().refund_bps("mentee", notice)
    assert rule == f"cancelled by the mentee {words}"


# -- accounts -------------------------------------------------------------------------------------


def _status(account_id: str | None) -> AccountStatus:
    return AccountStatus(
        mentor_id="m1",
        account_id=account_id,
        livemode=False,
        charges_enabled=True,
        payouts_enabled=True,
        details_submitted=True,
        currently_due=(),
        past_due=(),
        disabled_reason=None,
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_requirements_cannot_be_changed_after_parsing() -> None:
    """Kills `frozen=True -> False` on Requirements: what Stripe said is read-only."""
    requirements = Requirements(currently_due=["external_account"])
    with pytest.raises(ValidationError):
        requirements.currently_due = []  # type: ignore[misc]


def test_flags_stripe_left_out_read_as_not_enabled() -> None:
    """Kills a default `False -> True`: an account object without flags can receive nothing."""
    obj = AccountObject.model_validate({"id": "acct_1"})
    assert (obj.charges_enabled, obj.payouts_enabled, obj.details_submitted) == (
        False,
        False,
        False,
    )


def test_requirement_names_with_spaces_or_empty_are_not_stored() -> None:
    """Kills `n and ' ' not in n` -> `or`: only well-formed names are joined."""
    assert join_due(["external_account", "", "two words", "tos_acceptance.date"]) == (
        "external_account tos_acceptance.date"
    )


def _refusal(
    *, account: str | None, created: int, stored_created: int | None, live: bool = False
) -> str | None:
    stored = SimpleNamespace(livemode=False, event_created=stored_created)
    return update_refusal(
        stored,
        AccountObject(id="acct_1"),
        event_account=account,
        event_livemode=live,
        event_created=created,
    )


def test_parsed_accounts_and_stored_statuses_cannot_be_changed() -> None:
    """Kills `frozen=True -> False` on AccountObject and AccountStatus."""
    with pytest.raises(ValidationError):
        AccountObject(id="acct_1").charges_enabled = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        _status("acct_1").payouts_enabled = False  # type: ignore[misc]


def test_an_update_of_the_other_mode_is_refused_and_named() -> None:
    """Kills the livemode reason's and _mode's `return None`: other-mode updates are refused."""
    assert _refusal(account="acct_1", created=10, stored_created=None, live=True) == (
        "livemode=true event for a test account"
    )


def test_what_is_due_lists_past_due_first_and_each_name_once() -> None:
    """Kills `d not in past_due` -> `in`: currently-due names join after the past-due ones."""
    status = dataclasses.replace(
        _status("acct_1"),
        payouts_enabled=False,
        past_due=("external_account",),
        currently_due=("external_account", "tos_acceptance.date"),
    )
    refusal = readiness_refusal(status, "payouts")
    assert refusal is not None
    assert "Stripe needs: external_account, tos_acceptance.date." in refusal.message


def test_an_update_from_the_platform_account_is_refused_as_such() -> None:
    """Kills the platform-account reason's `return None`: the refusal says why."""
    reason = _refusal(account=None, created=10, stored_created=None)
    assert reason is not None and "platform account itself" in reason


def test_an_older_update_is_stale_and_one_of_the_same_second_applies() -> None:
    """Kills `<` -> `<=` and the stale reason's `return None`: only an older event is stale."""
    stale = _refusal(account="acct_1", created=99, stored_created=100)
    assert stale is not None and stale.startswith("stale account.updated")
    assert _refusal(account="acct_1", created=100, stored_created=100) is None


def test_the_destination_of_a_mentor_being_onboarded_is_checked_not_guessed() -> None:
    """Kills `not named` -> `named`: an account still being created is mentorpay's to check."""
    assert choose_destination("m1", None, _status(None), "payouts") == (None, True)
    assert choose_destination("m1", None, None, "payouts") == (None, False)
    assert choose_destination("m1", "acct_h", None, "payouts") == ("acct_h", False)
    assert choose_destination("m1", None, _status("acct_1"), "payouts") == ("acct_1", True)
