"""The rules of mentors' connected accounts, as pure functions (no SQL, no Stripe calls).

- :class:`AccountObject`: the ``data.object`` of ``account.updated``, the fields mentorpay reads
  (each defined by the SDK's typed ``stripe.Account``; ``tests/test_accounts_shapes.py``).
- :func:`update_refusal`: why an ``account.updated`` must change nothing (wrong origin, an
  account mentorpay did not create, another mode, stale).
- :func:`readiness_refusal`: the typed 409 for an account that cannot receive money yet.
- :func:`choose_destination`: which account a booking or payout pays, and when to refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from mentorpay.errors import AccountMismatchError, AccountNotReadyError
from mentorpay.stripe_objects import StripeId

__all__ = [
    "AccountObject",
    "AccountState",
    "AccountStatus",
    "Purpose",
    "Requirements",
    "choose_destination",
    "join_due",
    "readiness_refusal",
    "split_due",
    "update_refusal",
]

#: ``creating``: claimed, Stripe's answer not stored yet; ``onboarding``: details not submitted;
#: ``restricted``: submitted but charges or payouts are off; ``enabled``: both on.
AccountState = Literal["creating", "onboarding", "restricted", "enabled"]
#: What the money is for: a destination charge needs charges, a transfer payout needs payouts.
Purpose = Literal["charges", "payouts"]
_FLAG: Final[dict[str, str]] = {"charges": "charges_enabled", "payouts": "payouts_enabled"}


class Requirements(BaseModel):
    """``account.requirements``: what Stripe needs from the mentor."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    currently_due: list[str] | None = None
    past_due: list[str] | None = None
    disabled_reason: str | None = None


class AccountObject(BaseModel):
    """An ``account.updated`` event's object (an Account)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: StripeId
    charges_enabled: StrictBool = False
    payouts_enabled: StrictBool = False
    details_submitted: StrictBool = False
    requirements: Requirements = Field(default_factory=Requirements)


def join_due(names: list[str] | tuple[str, ...] | None) -> str:
    """Requirement names as stored (space-separated; Stripe's names hold no spaces)."""
    return " ".join(n for n in (names or ()) if n and " " not in n)


def split_due(stored: str | None) -> tuple[str, ...]:
    """The stored requirement names, as a tuple."""
    return tuple((stored or "").split())


@dataclass(frozen=True, slots=True)
class AccountStatus:
    """A mentor's connected account as mentorpay last heard of it from Stripe."""

    mentor_id: str
    account_id: str | None
    livemode: bool
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    currently_due: tuple[str, ...]
    past_due: tuple[str, ...]
    disabled_reason: str | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> AccountStatus:
        """From a ``mentorpay_mentor_accounts`` row."""
        return cls(
            mentor_id=row.mentor_id,
            account_id=row.account_id,
            livemode=bool(row.livemode),
            charges_enabled=bool(row.charges_enabled),
            payouts_enabled=bool(row.payouts_enabled),
            details_submitted=bool(row.details_submitted),
            currently_due=split_due(row.currently_due),
            past_due=split_due(row.past_due),
            disabled_reason=row.disabled_reason,
            updated_at=row.updated_at,
        )

    @property
    def state(self) -> AccountState:
        """One word for operators and pages."""
        if self.account_id is None:
            return "creating"
        if not self.details_submitted:
            return "onboarding"
        if self.charges_enabled and self.payouts_enabled:
            return "enabled"
        return "restricted"

    def can_receive(self, purpose: Purpose) -> bool:
        """Whether Stripe lets the account take ``purpose`` money now."""
        return self.account_id is not None and bool(getattr(self, _FLAG[purpose]))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for adapters and the CLI."""
        return {
            "mentor_id": self.mentor_id,
            "account_id": self.account_id,
            "state": self.state,
            "charges_enabled": self.charges_enabled,
            "payouts_enabled": self.payouts_enabled,
            "details_submitted": self.details_submitted,
            "currently_due": list(self.currently_due),
            "past_due": list(self.past_due),
            "disabled_reason": self.disabled_reason,
            "livemode": self.livemode,
            "updated_at": self.updated_at.isoformat(),
        }


def update_refusal(
    stored: Any | None,
    obj: AccountObject,
    *,
    event_account: str | None,
    event_livemode: bool,
    event_created: int,
) -> str | None:
    """Why an ``account.updated`` must change nothing, or ``None`` to apply it.

    ``stored`` is the row of the account the object names (``None``: mentorpay did not create
    it). Every field of the event is the sender's: it applies only when it comes from that very
    connected account, in the account's mode, and is not older than what was applied last.
    """
    if event_account is None:
        return "account.updated from the platform account itself, not a mentor's account"
    if event_account != obj.id:
        return f"account.updated about {obj.id} delivered by connected account {event_account}"
    if stored is None:
        return f"account {obj.id} was not created by mentorpay"
    if bool(stored.livemode) != event_livemode:
        return f"livemode={str(event_livemode).lower()} event for a {_mode(stored)} account"
    if stored.event_created is not None and event_created < stored.event_created:
        return (
            f"stale account.updated (created {event_created}, already applied "
            f"{stored.event_created})"
        )
    return None


def _mode(stored: Any) -> str:
    return "live" if stored.livemode else "test"


def readiness_refusal(status: AccountStatus, purpose: Purpose) -> AccountNotReadyError | None:
    """The 409 for an account that cannot take ``purpose`` money yet, saying what is due."""
    if status.can_receive(purpose):
        return None
    due = list(status.past_due) + [d for d in status.currently_due if d not in status.past_due]
    what = f"; Stripe needs: {', '.join(due)}" if due else ""
    return AccountNotReadyError(
        f"mentor {status.mentor_id}'s Stripe account {status.account_id or '(being created)'} "
        f"cannot receive {purpose} yet ({_FLAG[purpose]} is false){what}. The mentor must "
        "finish onboarding (mp.accounts.onboard gives a fresh link); retry afterwards.",
        mentor_id=status.mentor_id,
        account_id=status.account_id,
        needs=_FLAG[purpose],
        currently_due=list(status.currently_due),
        past_due=list(status.past_due),
        disabled_reason=status.disabled_reason,
    )


def choose_destination(
    mentor_id: str, named: str | None, status: AccountStatus | None, purpose: Purpose
) -> tuple[str | None, bool]:
    """The account to pay, and whether it is mentorpay's (so its readiness is checked).

    The host's booking (or payout request) may name an account; mentorpay may have created
    one. Neither: ``(None, False)``. Only the host's: it is used as given (an account the host
    onboarded itself; mentorpay knows nothing of its state). Only mentorpay's: it is used.
    Both, the same: fine. Both, different: refused (:class:`AccountMismatchError`): money must
    not go to either on a guess, so the host fixes its data or drops its own field.
    """
    ours = status.account_id if status is not None else None
    if named and ours and named != ours:
        raise AccountMismatchError(
            f"mentor {mentor_id} is onboarded to Stripe account {ours} but the {purpose} "
            f"request names {named}; remove the host's mentor_stripe_account or correct it",
            mentor_id=mentor_id,
            account_id=ours,
            named_account=named,
        )
    if status is not None and (ours or not named):
        return ours, True
    return (named or None), False
