"""What a reconciliation run reports: per kind, what one side has that the other lacks, and
amounts that differ; and the events applied to record what the ledger lacked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from mentorpay.money import Money

__all__ = [
    "RECONCILE_KINDS",
    "AppliedEvent",
    "Discrepancy",
    "KindReport",
    "ProblemKind",
    "ReconcileKind",
    "ReconcileReport",
]


ReconcileKind = Literal["payments", "refunds", "disputes", "transfers", "fees"]
RECONCILE_KINDS: Final[tuple[ReconcileKind, ...]] = (
    "payments",
    "refunds",
    "disputes",
    "transfers",
    "fees",
)


ProblemKind = Literal["missing_in_ledger", "missing_in_stripe", "amount_mismatch"]


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One difference between Stripe and the ledger.

    ``event_type`` is the event that records it when applied (``None``: needs a human).
    """

    kind: ReconcileKind
    problem: ProblemKind
    object_id: str
    detail: str
    stripe_amount: Money | None = None
    ledger_amount: Money | None = None
    payment_intent_id: str | None = None
    payout_id: int | None = None
    event_type: str | None = None
    event_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        amount = self.stripe_amount or self.ledger_amount
        return {
            "kind": self.kind,
            "problem": self.problem,
            "object_id": self.object_id,
            "detail": self.detail,
            "stripe_amount": self.stripe_amount.amount if self.stripe_amount else None,
            "ledger_amount": self.ledger_amount.amount if self.ledger_amount else None,
            "currency": amount.currency if amount is not None else None,
            "payment_intent_id": self.payment_intent_id,
            "payout_id": self.payout_id,
            "event_type": self.event_type,
            "event_id": self.event_id,
        }


@dataclass(frozen=True, slots=True)
class AppliedEvent:
    """An event reconciliation passed to ``apply_event``, and the processor's answer."""

    event_id: str
    event_type: str
    object_id: str
    status: str | None
    error: str | None = None


@dataclass(slots=True)
class KindReport:
    """What one kind's comparison found. ``checked``: Stripe objects compared."""

    checked: int = 0
    missing_in_ledger: list[Discrepancy] = field(default_factory=list)
    missing_in_stripe: list[Discrepancy] = field(default_factory=list)
    amount_mismatches: list[Discrepancy] = field(default_factory=list)

    def add(self, item: Discrepancy) -> None:
        """File a discrepancy under its problem."""
        {
            "missing_in_ledger": self.missing_in_ledger,
            "missing_in_stripe": self.missing_in_stripe,
            "amount_mismatch": self.amount_mismatches,
        }[item.problem].append(item)

    @property
    def items(self) -> list[Discrepancy]:
        """Every discrepancy of this kind."""
        return [*self.missing_in_ledger, *self.missing_in_stripe, *self.amount_mismatches]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "checked": self.checked,
            "missing_in_ledger": [d.as_dict() for d in self.missing_in_ledger],
            "missing_in_stripe": [d.as_dict() for d in self.missing_in_stripe],
            "amount_mismatches": [d.as_dict() for d in self.amount_mismatches],
        }


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """The result of one reconciliation run."""

    since: datetime
    until: datetime
    apply: bool
    kinds: Mapping[ReconcileKind, KindReport]
    applied: list[AppliedEvent] = field(default_factory=list)

    @property
    def discrepancies(self) -> list[Discrepancy]:
        """Every discrepancy found (before applying), kind by kind."""
        return [d for kind in RECONCILE_KINDS for d in self.kinds[kind].items]

    @property
    def ok(self) -> bool:
        """True when Stripe and the ledger agreed on everything in the period."""
        return not self.discrepancies

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``mentorpay reconcile --json``)."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "apply": self.apply,
            "ok": self.ok,
            "kinds": {kind: self.kinds[kind].as_dict() for kind in RECONCILE_KINDS},
            "applied": [
                {
                    "event_id": a.event_id,
                    "event_type": a.event_type,
                    "object_id": a.object_id,
                    "status": a.status,
                    "error": a.error,
                }
                for a in self.applied
            ],
        }

    def render(self) -> str:
        """A plain-text report for the terminal."""
        lines = [f"reconciliation {self.since.isoformat()} .. {self.until.isoformat()}"]
        for kind in RECONCILE_KINDS:
            report = self.kinds[kind]
            lines.append(
                f"{kind}: {report.checked} checked, "
                f"{len(report.missing_in_ledger)} missing in ledger, "
                f"{len(report.missing_in_stripe)} missing in Stripe, "
                f"{len(report.amount_mismatches)} amount mismatches"
            )
            for item in report.items:
                amounts = " ".join(
                    f"{label} {value}"
                    for label, value in (
                        ("stripe", item.stripe_amount),
                        ("ledger", item.ledger_amount),
                    )
                    if value is not None
                )
                lines.append(
                    f"  {item.problem.replace('_', ' ')}: {item.object_id}"
                    f"{'  ' + amounts if amounts else ''}  {item.detail}"
                )
        if self.applied:
            lines.append("applied:")
            for a in self.applied:
                outcome = a.status if a.error is None else f"error: {a.error}"
                lines.append(f"  {a.event_type} {a.object_id} ({a.event_id}): {outcome}")
        elif not self.apply and any(d.event_type for d in self.discrepancies):
            lines.append("run with --apply to record what the ledger is missing")
        lines.append("OK" if self.ok else "DIFFERENCES FOUND")
        return "\n".join(lines)
