"""Helpers shared by the reconciliation checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from mentorpay.errors import MentorpayError
from mentorpay.gateway import PaymentGateway
from mentorpay.money import Money
from mentorpay.reconcile.report import Discrepancy

__all__ = ["Found", "Scope", "money"]

#: What a check found that ``apply`` can record: the discrepancy and the Stripe object whose
#: event records it.
Found = list[tuple[Discrepancy, Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class Scope:
    """What one run compares: Stripe (``gateway``) with the database, over ``[since, until)``."""

    gateway: PaymentGateway
    engine: Engine
    since: datetime
    until: datetime


def money(amount: int | None, currency: str) -> Money | None:
    """``Money``, or ``None`` for no amount or a currency mentorpay does not know."""
    if amount is None:
        return None
    try:
        return Money(amount, currency)
    except MentorpayError:  # a currency mentorpay does not know: report the number alone
        return None
