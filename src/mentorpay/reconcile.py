"""Reconciliation: compare Stripe's record of a period with mentorpay's ledger.

:meth:`Reconciler.run` pages through what Stripe created in ``[since, until)`` and reports, per
kind, what Stripe has that the ledger lacks (a webhook that never arrived), what the ledger has
that Stripe lacks, and amounts that differ:

============  ==============================================  =================================
kind          Stripe side                                     ledger side
============  ==============================================  =================================
payments      succeeded PaymentIntents with mentorpay's       ``mentorpay_payments`` rows
              metadata (booking_id, mentor_id, mentee_id)
refunds       the charges of refunds created in the period:   ``amount_refunded`` of the payment
              their cumulative ``amount_refunded``
disputes      disputes created in the period                  ``dispute:<id>:opened|won|lost``
                                                              ledger transactions
transfers     transfers whose metadata names a payout         payout requests and their status
============  ==============================================  =================================

Objects of the period recorded only locally are looked up one by one at Stripe before being
reported missing there (the local record may simply be later than Stripe's ``created``).

``apply=True`` records the facts the ledger lacks by replaying Stripe's own objects as events
(``payment_intent.succeeded``, ``charge.refunded``, ``charge.dispute.created`` / ``.closed``,
``transfer.created`` / ``transfer.reversed``) through ``apply_event``, which is the webhook
processor's ``process_trusted``: the same handlers as real webhooks, so the ledger's business
keys make a fact found here and its late webhook post once between them. Event ids are
deterministic (``evt_reconcile_<object id>[_<state>]``), so running twice replays nothing new.
Mismatches and facts missing at Stripe are only reported: they need a human.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.config import MentorpayConfig
from mentorpay.db import read_connection
from mentorpay.errors import (
    GatewayError,
    InvalidRequestError,
    MentorpayError,
    PaymentNotFoundError,
)
from mentorpay.gateway import (
    GatewayCharge,
    GatewayDispute,
    GatewayPaymentIntent,
    GatewayTransfer,
    PaymentGateway,
    is_missing_resource,
)
from mentorpay.ledger import LedgerService
from mentorpay.models import payments_table as _payments
from mentorpay.models import payouts_table as _payouts
from mentorpay.models import transactions_table as _transactions
from mentorpay.money import Money

__all__ = [
    "RECONCILE_KINDS",
    "AppliedEvent",
    "Discrepancy",
    "KindReport",
    "ProblemKind",
    "ReconcileKind",
    "ReconcileReport",
    "Reconciler",
]

logger = logging.getLogger("mentorpay.reconcile")


ReconcileKind = Literal["payments", "refunds", "disputes", "transfers"]
RECONCILE_KINDS: Final[tuple[ReconcileKind, ...]] = ("payments", "refunds", "disputes", "transfers")


def _no_progress(done: int, total: int, label: str) -> None:
    del done, total, label


ProblemKind = Literal["missing_in_ledger", "missing_in_stripe", "amount_mismatch"]

_METADATA_KEYS: Final = ("booking_id", "mentor_id", "mentee_id")
_PAYOUT_METADATA: Final = "payout_request_id"
_CHUNK: Final = 500


def _money(amount: int | None, currency: str) -> Money | None:
    if amount is None:
        return None
    try:
        return Money(amount, currency)
    except MentorpayError:  # a currency mentorpay does not know: report the number alone
        return None


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


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


class Reconciler:
    """Compares Stripe with the ledger; see the module docstring.

    ``apply_event`` takes a Stripe-shaped event dict and applies it through the webhook
    handlers without a signature check (``WebhookProcessor.process_trusted``).
    """

    def __init__(
        self,
        config: MentorpayConfig,
        engine: Engine,
        gateway: PaymentGateway,
        ledger: LedgerService,
        apply_event: Callable[[Mapping[str, Any]], Any],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._engine = engine
        self._gateway = gateway
        self._ledger = ledger
        self._apply_event = apply_event
        self._clock = clock

    # -- entry point ----------------------------------------------------------------------------

    def run(
        self,
        since: datetime,
        until: datetime | None = None,
        *,
        apply: bool = False,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> ReconcileReport:
        """Compare the period ``[since, until)`` (until defaults to now); with ``apply``,
        record what the ledger lacks. Stripe errors propagate as ``GatewayError``.

        ``progress(done, total, label)`` follows the four comparisons ("reconciling") and
        then the facts applied ("applying")."""
        report_progress = progress or _no_progress
        end = until if until is not None else self._clock()
        for name, value in (("since", since), ("until", end)):
            if value.tzinfo is None:
                raise InvalidRequestError(f"{name} must be an aware datetime (tzinfo=UTC)")
        if end <= since:
            raise InvalidRequestError("until must be after since")
        kinds: dict[ReconcileKind, KindReport] = {kind: KindReport() for kind in RECONCILE_KINDS}
        events: list[tuple[Discrepancy, Mapping[str, Any]]] = []
        stages = len(RECONCILE_KINDS)
        report_progress(0, stages, "reconciling")
        ours = self._payments(since, end, kinds["payments"], events)
        report_progress(1, stages, "reconciling")
        self._refunds(since, end, ours, kinds["refunds"], events)
        report_progress(2, stages, "reconciling")
        self._disputes(since, end, ours, kinds["disputes"], events)
        report_progress(3, stages, "reconciling")
        self._transfers(since, end, kinds["transfers"], events)
        report_progress(stages, stages, "reconciling")
        applied: list[AppliedEvent] = []
        if apply:
            for done, (item, obj) in enumerate(events, start=1):
                applied.append(self._apply(item, obj))
                report_progress(done, len(events), "applying")
        report = ReconcileReport(since, end, apply, kinds, applied)
        logger.info(
            "reconciled %s .. %s: %d differences, %d events applied",
            since,
            end,
            len(report.discrepancies),
            len(applied),
        )
        return report

    # -- applying -------------------------------------------------------------------------------

    def _event(self, item: Discrepancy, obj: Mapping[str, Any]) -> dict[str, Any]:
        assert item.event_type is not None
        assert item.event_id is not None
        return {
            "id": item.event_id,
            "object": "event",
            "type": item.event_type,
            "created": int(self._clock().timestamp()),
            "livemode": bool(obj.get("livemode", False)),
            "api_version": None,
            "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": dict(obj)},
        }

    def _apply(self, item: Discrepancy, obj: Mapping[str, Any]) -> AppliedEvent:
        event = self._event(item, obj)
        try:
            result = self._apply_event(event)
        except MentorpayError as exc:
            # One fact failing must not stop the others; the report says which failed and the
            # next run retries it (its event id was not claimed, or is replayable).
            logger.error("reconcile could not apply %s: %s", item.event_id, exc)
            return AppliedEvent(
                event["id"], event["type"], item.object_id, "error", error=exc.message
            )
        status = result.get("status") if isinstance(result, Mapping) else None
        status = status if status is not None else getattr(result, "status", None)
        if item.kind == "payments" and item.payment_intent_id is not None:
            try:
                self._ledger.payment(item.payment_intent_id)
            except PaymentNotFoundError:
                status = f"{status} (not recorded yet)"
        return AppliedEvent(event["id"], event["type"], item.object_id, status)

    # -- payments -------------------------------------------------------------------------------

    def _payments(
        self,
        since: datetime,
        until: datetime,
        report: KindReport,
        events: list[tuple[Discrepancy, Mapping[str, Any]]],
    ) -> dict[str, GatewayPaymentIntent | None]:
        """Compare payments. Returns every payment intent known to be mentorpay's (Stripe's
        listing plus local rows), for the refund and dispute comparisons."""
        stripe_side: dict[str, GatewayPaymentIntent] = {}
        for pi in self._gateway.list_payment_intents(created_gte=since, created_lt=until):
            if pi.status == "succeeded" and all(pi.metadata.get(k) for k in _METADATA_KEYS):
                stripe_side[pi.id] = pi
        report.checked = len(stripe_side)
        with read_connection(self._engine) as conn:
            local = self._payments_by_intent(conn, list(stripe_side))
            recent = conn.execute(
                select(_payments).where(
                    and_(
                        _payments.c.created_at >= since,
                        _payments.c.created_at < until,
                        _payments.c.status != "failed",
                    )
                )
            ).all()
        for pi in stripe_side.values():
            row = local.get(pi.id)
            stripe_amount = _money(pi.amount_received or pi.amount, pi.currency)
            if row is None:
                item = Discrepancy(
                    "payments",
                    "missing_in_ledger",
                    pi.id,
                    f"booking {pi.metadata.get('booking_id')}: succeeded at Stripe, "
                    "not in the ledger",
                    stripe_amount=stripe_amount,
                    payment_intent_id=pi.id,
                    event_type="payment_intent.succeeded",
                    event_id=f"evt_reconcile_{pi.id}",
                )
                report.add(item)
                events.append((item, pi.raw))
                continue
            ledger_amount = Money(row.amount, row.currency)
            if ledger_amount != stripe_amount:
                report.add(
                    Discrepancy(
                        "payments",
                        "amount_mismatch",
                        pi.id,
                        f"Stripe received {stripe_amount}, the ledger recorded {ledger_amount}",
                        stripe_amount=stripe_amount,
                        ledger_amount=ledger_amount,
                        payment_intent_id=pi.id,
                    )
                )
        known: dict[str, GatewayPaymentIntent | None] = dict(stripe_side)
        for row in recent:
            pi_id = row.payment_intent_id
            known.setdefault(pi_id, None)
            if pi_id in stripe_side:
                continue
            ledger_amount = Money(row.amount, row.currency)
            try:
                found = self._gateway.retrieve_payment_intent(pi_id)
            except GatewayError as exc:
                if not is_missing_resource(exc):
                    raise
                report.add(
                    Discrepancy(
                        "payments",
                        "missing_in_stripe",
                        pi_id,
                        "recorded in the ledger, unknown to Stripe",
                        ledger_amount=ledger_amount,
                        payment_intent_id=pi_id,
                    )
                )
                continue
            known[pi_id] = found
            if found.status != "succeeded":
                report.add(
                    Discrepancy(
                        "payments",
                        "missing_in_stripe",
                        pi_id,
                        f"recorded as paid in the ledger, Stripe says {found.status}",
                        stripe_amount=_money(found.amount_received, found.currency),
                        ledger_amount=ledger_amount,
                        payment_intent_id=pi_id,
                    )
                )
            elif _money(found.amount_received or found.amount, found.currency) != ledger_amount:
                report.add(
                    Discrepancy(
                        "payments",
                        "amount_mismatch",
                        pi_id,
                        "Stripe and the ledger disagree on the amount",
                        stripe_amount=_money(found.amount_received, found.currency),
                        ledger_amount=ledger_amount,
                        payment_intent_id=pi_id,
                    )
                )
        return known

    @staticmethod
    def _payments_by_intent(conn: Connection, intents: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for chunk in _chunks(intents):
            for row in conn.execute(
                select(_payments).where(_payments.c.payment_intent_id.in_(chunk))
            ):
                found[row.payment_intent_id] = row
        return found

    # -- refunds --------------------------------------------------------------------------------

    def _refunds(
        self,
        since: datetime,
        until: datetime,
        ours: Mapping[str, GatewayPaymentIntent | None],
        report: KindReport,
        events: list[tuple[Discrepancy, Mapping[str, Any]]],
    ) -> None:
        # Charges to check: those refunded at Stripe in the period, and those whose refunds the
        # ledger applied in the period; each is compared by its cumulative amount_refunded.
        charge_of: dict[str, str | None] = {}
        for refund in self._gateway.list_refunds(created_gte=since, created_lt=until):
            if refund.payment_intent_id is not None:
                charge_of[refund.payment_intent_id] = refund.charge_id
        with read_connection(self._engine) as conn:
            rows = self._payments_by_intent(conn, sorted(charge_of))
            for local in conn.execute(
                select(_payments).where(
                    and_(
                        _payments.c.amount_refunded > 0,
                        _payments.c.updated_at >= since,
                        _payments.c.updated_at < until,
                    )
                )
            ):
                rows.setdefault(local.payment_intent_id, local)
                charge_of.setdefault(local.payment_intent_id, local.charge_id)
        for pi_id, known_charge in sorted(charge_of.items()):
            if pi_id not in ours and pi_id not in rows:
                continue  # a refund of a payment not made through mentorpay
            row = rows.get(pi_id)
            ledger_refunded = row.amount_refunded if row is not None else 0
            charge_id = known_charge or self._latest_charge(pi_id, ours.get(pi_id))
            charge: GatewayCharge | None = None
            if charge_id is not None:
                try:
                    charge = self._gateway.retrieve_charge(charge_id)
                except GatewayError as exc:
                    if not is_missing_resource(exc):
                        raise
            if charge is None:
                if ledger_refunded:
                    report.add(self._missing_charge(pi_id, row))
                continue
            report.checked += 1
            self._compare_refund(
                charge,
                pi_id,
                row=row,
                ledger_refunded=ledger_refunded,
                report=report,
                events=events,
            )

    def _latest_charge(self, pi_id: str, known: GatewayPaymentIntent | None) -> str | None:
        if known is None:
            try:
                known = self._gateway.retrieve_payment_intent(pi_id)
            except GatewayError as exc:
                if not is_missing_resource(exc):
                    raise
                return None
        return known.latest_charge

    @staticmethod
    def _missing_charge(pi_id: str, row: Any) -> Discrepancy:
        return Discrepancy(
            "refunds",
            "missing_in_stripe",
            pi_id,
            "the ledger applied refunds to a charge Stripe does not know",
            ledger_amount=_money(row.amount_refunded, row.currency) if row is not None else None,
            payment_intent_id=pi_id,
        )

    @staticmethod
    def _compare_refund(
        charge: GatewayCharge,
        pi_id: str,
        *,
        row: Any,
        ledger_refunded: int,
        report: KindReport,
        events: list[tuple[Discrepancy, Mapping[str, Any]]],
    ) -> None:
        stripe_amount = _money(charge.amount_refunded, charge.currency)
        ledger_amount = _money(ledger_refunded, charge.currency)
        if charge.amount_refunded > ledger_refunded:
            item = Discrepancy(
                "refunds",
                "missing_in_ledger",
                charge.id,
                f"Stripe refunded {stripe_amount} in total, the ledger applied {ledger_amount}"
                + ("" if row is not None else " (payment not recorded either)"),
                stripe_amount=stripe_amount,
                ledger_amount=ledger_amount,
                payment_intent_id=pi_id,
                event_type="charge.refunded",
                event_id=f"evt_reconcile_{charge.id}_refunded_{charge.amount_refunded}",
            )
            report.add(item)
            raw = dict(charge.raw)
            # The refund handler finds the payment through the charge's payment intent.
            raw.setdefault("payment_intent", pi_id)
            events.append((item, raw))
        elif charge.amount_refunded < ledger_refunded:
            report.add(
                Discrepancy(
                    "refunds",
                    "amount_mismatch",
                    charge.id,
                    f"the ledger applied {ledger_amount} of refunds, Stripe only {stripe_amount}",
                    stripe_amount=stripe_amount,
                    ledger_amount=ledger_amount,
                    payment_intent_id=pi_id,
                )
            )

    # -- disputes -------------------------------------------------------------------------------

    def _disputes(
        self,
        since: datetime,
        until: datetime,
        ours: Mapping[str, GatewayPaymentIntent | None],
        report: KindReport,
        events: list[tuple[Discrepancy, Mapping[str, Any]]],
    ) -> None:
        disputes = [
            d
            for d in self._gateway.list_disputes(created_gte=since, created_lt=until)
            if d.payment_intent_id is not None
        ]
        with read_connection(self._engine) as conn:
            local_payments = self._payments_by_intent(
                conn, sorted({d.payment_intent_id for d in disputes if d.payment_intent_id})
            )
            disputes = [
                d
                for d in disputes
                if d.payment_intent_id in ours or d.payment_intent_id in local_payments
            ]
            keys = [
                f"dispute:{d.id}:{phase}" for d in disputes for phase in ("opened", "won", "lost")
            ]
            posted: set[str] = set()
            for chunk in _chunks(keys):
                posted.update(
                    conn.execute(
                        select(_transactions.c.business_key).where(
                            _transactions.c.business_key.in_(chunk)
                        )
                    ).scalars()
                )
            local_opened = conn.execute(
                select(_transactions.c.business_key, _transactions.c.payment_intent_id).where(
                    and_(
                        _transactions.c.kind == "dispute_opened",
                        _transactions.c.created_at >= since,
                        _transactions.c.created_at < until,
                    )
                )
            ).all()
        report.checked = len(disputes)
        for dispute in disputes:
            self._compare_dispute(dispute, posted, report, events)
        seen = {d.id for d in disputes}
        for business_key, pi_id in local_opened:
            dispute_id = business_key.split(":")[1]
            if dispute_id in seen:
                continue
            try:
                self._gateway.retrieve_dispute(dispute_id)
            except GatewayError as exc:
                if not is_missing_resource(exc):
                    raise
                report.add(
                    Discrepancy(
                        "disputes",
                        "missing_in_stripe",
                        dispute_id,
                        "the ledger holds funds for a dispute Stripe does not know",
                        payment_intent_id=pi_id,
                    )
                )

    @staticmethod
    def _compare_dispute(
        dispute: GatewayDispute,
        posted: set[str],
        report: KindReport,
        events: list[tuple[Discrepancy, Mapping[str, Any]]],
    ) -> None:
        amount = _money(dispute.amount, dispute.currency)
        if f"dispute:{dispute.id}:opened" not in posted:
            item = Discrepancy(
                "disputes",
                "missing_in_ledger",
                dispute.id,
                f"dispute ({dispute.status}) not recorded in the ledger",
                stripe_amount=amount,
                payment_intent_id=dispute.payment_intent_id,
                event_type="charge.dispute.created",
                event_id=f"evt_reconcile_{dispute.id}_created",
            )
            report.add(item)
            events.append((item, dispute.raw))
        if not dispute.closed:
            return
        # The ledger keys the outcome as won or lost; an inquiry closed without a chargeback
        # and a prevented dispute kept the money, so they are "won".
        outcome = "lost" if dispute.status == "lost" else "won"
        other = "lost" if outcome == "won" else "won"
        if f"dispute:{dispute.id}:{other}" in posted:
            report.add(
                Discrepancy(
                    "disputes",
                    "amount_mismatch",
                    dispute.id,
                    f"Stripe says the dispute ended {dispute.status}, the ledger recorded it "
                    f"{other}",
                    stripe_amount=amount,
                    payment_intent_id=dispute.payment_intent_id,
                )
            )
        elif f"dispute:{dispute.id}:{outcome}" not in posted:
            item = Discrepancy(
                "disputes",
                "missing_in_ledger",
                dispute.id,
                f"dispute {dispute.status} at Stripe, still open in the ledger",
                stripe_amount=amount,
                payment_intent_id=dispute.payment_intent_id,
                event_type="charge.dispute.closed",
                event_id=f"evt_reconcile_{dispute.id}_closed",
            )
            report.add(item)
            events.append((item, dispute.raw))

    # -- transfers ------------------------------------------------------------------------------

    def _transfers(
        self,
        since: datetime,
        until: datetime,
        report: KindReport,
        events: list[tuple[Discrepancy, Mapping[str, Any]]],
    ) -> None:
        transfers = [
            t
            for t in self._gateway.list_transfers(created_gte=since, created_lt=until)
            if t.metadata.get(_PAYOUT_METADATA, "").isdigit()
        ]
        report.checked = len(transfers)
        with read_connection(self._engine) as conn:
            ids = sorted({int(t.metadata[_PAYOUT_METADATA]) for t in transfers})
            by_id: dict[int, Any] = {}
            by_transfer: dict[str, Any] = {}
            for chunk in _chunks(ids):
                for row in conn.execute(select(_payouts).where(_payouts.c.id.in_(chunk))):
                    by_id[row.id] = row
            for chunk in _chunks([t.id for t in transfers]):
                for row in conn.execute(select(_payouts).where(_payouts.c.transfer_id.in_(chunk))):
                    by_transfer[row.transfer_id] = row
            recent = conn.execute(
                select(_payouts).where(
                    and_(
                        _payouts.c.method == "stripe_transfer",
                        _payouts.c.status.in_(("processing", "paid")),
                        or_(
                            and_(_payouts.c.created_at >= since, _payouts.c.created_at < until),
                            and_(_payouts.c.updated_at >= since, _payouts.c.updated_at < until),
                        ),
                    )
                )
            ).all()
        for transfer in transfers:
            payout = by_transfer.get(transfer.id) or by_id.get(
                int(transfer.metadata[_PAYOUT_METADATA])
            )
            self._compare_transfer(transfer, payout, report, events)
        seen = {t.id for t in transfers}
        named = {int(t.metadata[_PAYOUT_METADATA]) for t in transfers}
        for row in recent:
            if row.transfer_id in seen or row.id in named:
                continue
            ledger_amount = Money(row.amount, row.currency)
            if row.transfer_id is None:
                report.add(
                    Discrepancy(
                        "transfers",
                        "missing_in_stripe",
                        f"payout {row.id}",
                        "processing, but no transfer for it was found at Stripe in the period; "
                        "call execute() again (the same idempotency key replays it)",
                        ledger_amount=ledger_amount,
                        payout_id=row.id,
                    )
                )
                continue
            try:
                found = self._gateway.retrieve_transfer(row.transfer_id)
            except GatewayError as exc:
                if not is_missing_resource(exc):
                    raise
                report.add(
                    Discrepancy(
                        "transfers",
                        "missing_in_stripe",
                        row.transfer_id,
                        f"payout {row.id} is {row.status} with a transfer Stripe does not know",
                        ledger_amount=ledger_amount,
                        payout_id=row.id,
                    )
                )
                continue
            self._compare_transfer(found, row, report, events)

    @staticmethod
    def _compare_transfer(
        transfer: GatewayTransfer,
        row: Any,
        report: KindReport,
        events: list[tuple[Discrepancy, Mapping[str, Any]]],
    ) -> None:
        stripe_amount = _money(transfer.amount, transfer.currency)
        if row is None:
            report.add(
                Discrepancy(
                    "transfers",
                    "missing_in_ledger",
                    transfer.id,
                    f"transfer names payout {transfer.metadata.get(_PAYOUT_METADATA)}, which "
                    "mentorpay does not have",
                    stripe_amount=stripe_amount,
                )
            )
            return
        ledger_amount = Money(row.amount, row.currency)
        if ledger_amount != stripe_amount:
            report.add(
                Discrepancy(
                    "transfers",
                    "amount_mismatch",
                    transfer.id,
                    f"payout {row.id} is {ledger_amount}, its transfer {stripe_amount}",
                    stripe_amount=stripe_amount,
                    ledger_amount=ledger_amount,
                    payout_id=row.id,
                )
            )
            return
        fully_reversed = transfer.reversed or (
            transfer.amount > 0 and transfer.amount_reversed >= transfer.amount
        )
        expected: tuple[str, ...]
        if fully_reversed:
            expected, event_type, suffix = ("reversed", "failed"), "transfer.reversed", "reversed"
        else:
            expected, event_type, suffix = (
                ("paid", "reversed", "failed"),
                "transfer.created",
                "created",
            )
        if row.status in expected:
            if transfer.amount_reversed and not fully_reversed:
                report.add(
                    Discrepancy(
                        "transfers",
                        "amount_mismatch",
                        transfer.id,
                        f"{_money(transfer.amount_reversed, transfer.currency)} of the transfer "
                        f"for payout {row.id} was reversed; mentorpay only applies full reversals",
                        stripe_amount=stripe_amount,
                        ledger_amount=ledger_amount,
                        payout_id=row.id,
                    )
                )
            return
        if row.status not in ("processing", "paid"):
            report.add(
                Discrepancy(
                    "transfers",
                    "missing_in_ledger",
                    transfer.id,
                    f"Stripe transferred the money of payout {row.id}, which mentorpay has as "
                    f"{row.status}",
                    stripe_amount=stripe_amount,
                    ledger_amount=ledger_amount,
                    payout_id=row.id,
                )
            )
            return
        item = Discrepancy(
            "transfers",
            "missing_in_ledger",
            transfer.id,
            f"payout {row.id} is {row.status}, its transfer is "
            f"{'reversed' if fully_reversed else 'paid'}",
            stripe_amount=stripe_amount,
            ledger_amount=ledger_amount,
            payout_id=row.id,
            event_type=event_type,
            event_id=f"evt_reconcile_{transfer.id}_{suffix}",
        )
        report.add(item)
        events.append((item, transfer.raw))
