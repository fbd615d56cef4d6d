"""The payout state machine and the rules around it: pure functions, no database, no Stripe.

::

    requested  -> approved    approve (by someone other than the mentor)
    requested  -> cancelled   cancel
    approved   -> cancelled   cancel
    approved   -> processing  execute
    approved   -> paid        mark_paid (manual payouts only)
    processing -> paid        transfer.created webhook; mark_paid (manual)
    processing -> failed      Stripe refused the transfer; transfer.reversed before it settled;
                              mark_failed (manual)
    paid       -> reversed    transfer.reversed webhook; reverse() (manual)

Which ledger movement each settled status posts is :data:`SETTLEMENT`; whether a transfer
event is the transfer a payout asked for is :func:`transfer_mismatch`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, Literal

from mentorpay.db import check_id
from mentorpay.errors import (
    InsufficientBalanceError,
    InvalidAmountError,
    InvalidRequestError,
    MentorNotFoundError,
    PayoutStateError,
)
from mentorpay.events import Effect
from mentorpay.money import Money, check_payout_amount

if TYPE_CHECKING:
    from mentorpay.gateway import GatewayTransfer
    from mentorpay.payouts.views import PayoutView

__all__ = [
    "METADATA_PAYOUT_ID",
    "PAYOUT_STATUSES",
    "SETTLED_STATUSES",
    "SETTLEMENT",
    "TRANSITIONS",
    "PayoutMethod",
    "PayoutStatus",
    "Settlement",
    "can_transition",
    "check_available",
    "check_list_query",
    "check_request",
    "settled_effect",
    "transfer_mismatch",
    "transition_refusal",
]

PayoutStatus = Literal[
    "requested", "approved", "processing", "paid", "failed", "cancelled", "reversed"
]
PAYOUT_STATUSES: Final[tuple[PayoutStatus, ...]] = (
    "requested",
    "approved",
    "processing",
    "paid",
    "failed",
    "cancelled",
    "reversed",
)
PayoutMethod = Literal["stripe_transfer", "manual"]

#: Every legal state change. ``approved -> paid`` is for manual payouts only.
TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "requested": frozenset({"approved", "cancelled"}),
    "approved": frozenset({"processing", "paid", "cancelled"}),
    "processing": frozenset({"paid", "failed"}),
    "paid": frozenset({"reversed"}),
    "failed": frozenset(),
    "cancelled": frozenset(),
    "reversed": frozenset(),
}

Settlement = Literal["paid", "returned", "reversed"]
#: The ledger movement a status posts: reserved -> withdrawn (paid), reserved -> available
#: (returned), withdrawn -> available (reversed).
SETTLEMENT: Final[Mapping[str, Settlement]] = {
    "paid": "paid",
    "cancelled": "returned",
    "failed": "returned",
    "reversed": "reversed",
}
#: Statuses the host hears about (a ``payout_settled`` effect).
SETTLED_STATUSES: Final = frozenset({"paid", "failed", "reversed"})

#: The transfer metadata key naming the payout request it pays.
METADATA_PAYOUT_ID: Final = "payout_request_id"


def can_transition(source: str, target: str) -> bool:
    """Whether the state machine allows ``source -> target``."""
    return target in TRANSITIONS.get(source, frozenset())


def transition_refusal(
    payout_id: int, source: str, target: str, method: str
) -> PayoutStateError | None:
    """Why payout ``payout_id`` (paid by ``method``) cannot go ``source -> target``, if so."""
    if not can_transition(source, target):
        return PayoutStateError(
            f"payout {payout_id} is {source}; it cannot become {target}",
            payout_id=payout_id,
            status=source,
            target=target,
        )
    if source == "approved" and target == "paid" and method != "manual":
        return PayoutStateError(
            f"payout {payout_id} is paid by Stripe transfer: execute it first",
            payout_id=payout_id,
            status=source,
            target=target,
        )
    return None


def check_request(
    amount: Money,
    *,
    min_payout: Mapping[str, int],
    method: str,
    mentor_id: str,
    destination: str | None,
) -> None:
    """Refuse a payout request that breaks a rule before any balance is read."""
    if not isinstance(amount, Money):
        raise TypeError(f"amount must be Money, not {type(amount).__name__}")
    if not amount.is_positive():
        raise InvalidAmountError(
            f"a payout must be positive, got {amount}",
            amount=amount.amount,
            currency=amount.currency,
            rule="positive",
        )
    check_payout_amount(amount)
    minimum = min_payout.get(amount.currency, 0)
    if amount.amount < minimum:
        raise InvalidAmountError(
            f"the smallest payout is {Money(minimum, amount.currency)}, requested {amount}",
            amount=amount.amount,
            currency=amount.currency,
            minimum=minimum,
            rule="below_minimum",
        )
    check_id(mentor_id, field="mentor_id")
    if destination is not None:
        check_id(destination, field="destination")
    if method == "stripe_transfer" and (destination is None or not destination.startswith("acct_")):
        raise InvalidRequestError(
            "a Stripe transfer payout needs the mentor's connected account id "
            "(destination='acct_...')",
            field="destination",
        )


def check_available(available: int | None, mentor_id: str, amount: Money) -> None:
    """Refuse a payout request against the mentor's ``available`` balance (``None``: the mentor
    never earned in the currency). Exceeding it is refused by the ledger's conditional update."""
    if available is None:
        raise MentorNotFoundError(
            f"mentor {mentor_id} has no {amount.currency} balance",
            mentor_id=mentor_id,
            currency=amount.currency,
        )
    if available < 0:
        raise InsufficientBalanceError(
            f"the available balance is {Money(available, amount.currency)}: "
            "the mentor owes the platform after refunds, so no payout until it is "
            "positive again",
            mentor_id=mentor_id,
            requested=amount.amount,
            available=available,
            currency=amount.currency,
        )


def check_list_query(status: str | None, limit: int) -> None:
    """Refuse a listing filter on an unknown status, or a limit outside 1..500."""
    if status is not None and status not in PAYOUT_STATUSES:
        raise InvalidRequestError(
            f"status must be one of {list(PAYOUT_STATUSES)}, got {status!r}", status=status
        )
    if not 1 <= limit <= 500:
        raise InvalidRequestError("limit must be between 1 and 500", limit=limit)


def transfer_mismatch(
    transfer: GatewayTransfer, payout: PayoutView, *, livemode: bool
) -> tuple[str, str] | None:
    """Why ``transfer`` is not the transfer of ``payout``, if so: ``(reason, detail)``."""
    # The envelope's account and mode were checked by the processor; the object's own mode
    # can still disagree with it.
    object_livemode = transfer.raw.get("livemode")
    if isinstance(object_livemode, bool) and object_livemode != livemode:
        mode = "live" if livemode else "test"
        return "livemode_mismatch", f"not a {mode}-mode transfer, as configured"
    if payout.method != "stripe_transfer":
        return "not_a_transfer_payout", f"payout {payout.id} is paid {payout.method}"
    if payout.transfer_id is not None and payout.transfer_id != transfer.id:
        return "transfer_id_mismatch", f"payout {payout.id} is paid by {payout.transfer_id}"
    if transfer.destination != payout.destination:
        return (
            "destination_mismatch",
            f"destination {transfer.destination}, payout {payout.id} goes to {payout.destination}",
        )
    if transfer.currency != payout.amount.currency:
        return (
            "currency_mismatch",
            f"currency {transfer.currency}, payout {payout.id} is in {payout.amount.currency}",
        )
    if transfer.amount != payout.amount.amount:
        return (
            "amount_mismatch",
            f"amount {transfer.amount}, payout {payout.id} is {payout.amount.amount}",
        )
    return None


def settled_effect(view: PayoutView) -> Effect:
    """The ``payout_settled`` effect of a payout that reached ``view.status``."""
    # Keyed like the ledger posting: a payout reaches each settled status once, whichever
    # path (service call or transfer webhook) got there.
    return Effect(
        "payout_settled",
        {
            "payout_id": view.id,
            "mentor_id": view.mentor_id,
            "amount": view.amount.amount,
            "currency": view.amount.currency,
            "status": view.status,
            "transfer_id": view.transfer_id,
        },
        id=f"payout:{view.id}:{view.status}",
    )
