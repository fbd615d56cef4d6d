"""PayoutView: a payout request as the API shows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from mentorpay.money import Money
from mentorpay.payouts.rules import PayoutMethod, PayoutStatus

__all__ = ["PayoutView"]


@dataclass(frozen=True, slots=True)
class PayoutView:
    """A payout request as the API shows it."""

    id: int
    mentor_id: str
    amount: Money
    status: PayoutStatus
    method: PayoutMethod
    destination: str | None
    transfer_id: str | None
    reference: str | None
    approved_by: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    approved_at: datetime | None
    settled_at: datetime | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> PayoutView:
        """Build from a ``mentorpay_payout_requests`` row."""
        m = row._mapping
        return cls(
            id=m["id"],
            mentor_id=m["mentor_id"],
            amount=Money(m["amount"], m["currency"]),
            status=m["status"],
            method=m["method"],
            destination=m["destination"],
            transfer_id=m["transfer_id"],
            reference=m["reference"],
            approved_by=m["approved_by"],
            failure_reason=m["failure_reason"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            approved_at=m["approved_at"],
            settled_at=m["settled_at"],
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for adapters."""
        return {
            "id": self.id,
            "mentor_id": self.mentor_id,
            "amount": self.amount.amount,
            "currency": self.amount.currency,
            "amount_display": str(self.amount),
            "status": self.status,
            "method": self.method,
            "destination": self.destination,
            "transfer_id": self.transfer_id,
            "reference": self.reference,
            "approved_by": self.approved_by,
            "failure_reason": self.failure_reason,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "approved_at": self.approved_at.isoformat() if self.approved_at else None,
            "settled_at": self.settled_at.isoformat() if self.settled_at else None,
        }
