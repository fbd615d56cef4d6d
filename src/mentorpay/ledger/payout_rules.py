"""The payout posting rule: one payout step moves a mentor's money between two of their
accounts (reserve, paid, returned, reversed). Pure, like :mod:`mentorpay.ledger.rules`."""

from __future__ import annotations

from typing import Literal

from mentorpay.ledger.rules import AVAILABLE, RESERVED, WITHDRAWN, Leg

PayoutOutcome = Literal["paid", "returned", "reversed"]

_PAYOUT_MOVES: dict[str, tuple[str, str]] = {
    "reserve": (AVAILABLE, RESERVED),  # the service checks that available covers it
    "paid": (RESERVED, WITHDRAWN),
    "returned": (RESERVED, AVAILABLE),  # the payout failed or was cancelled
    "reversed": (WITHDRAWN, AVAILABLE),  # a paid transfer came back
}


def payout_legs(mentor_id: str, amount: int, move: Literal["reserve"] | PayoutOutcome) -> list[Leg]:
    """One payout step moves ``amount`` of the mentor's money between two of their accounts."""
    source, target = _PAYOUT_MOVES[move]
    return [(source, mentor_id, -amount), (target, mentor_id, amount)]
