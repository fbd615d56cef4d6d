"""Helpers shared by the reconciliation checks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from mentorpay.errors import MentorpayError
from mentorpay.money import Money
from mentorpay.reconcile.report import Discrepancy

__all__ = ["CHUNK", "Found", "chunks", "money"]

#: Ids per ``IN (...)`` query.
CHUNK: Final = 500

#: What a check found that ``apply`` can record: the discrepancy and the Stripe object whose
#: event records it.
Found = list[tuple[Discrepancy, Mapping[str, Any]]]


def money(amount: int | None, currency: str) -> Money | None:
    """``Money``, or ``None`` for no amount or a currency mentorpay does not know."""
    if amount is None:
        return None
    try:
        return Money(amount, currency)
    except MentorpayError:  # a currency mentorpay does not know: report the number alone
        return None


def chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    """``values`` in slices of :data:`CHUNK`."""
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]
