"""The operator dashboard's data: what a host renders on its operator page, framework-neutral.

``mp.dashboard.overview(since, until)`` answers, as plain values (exact :class:`Money`, ids):

- per currency, one value per UTC day of ``[since, until)`` (days without activity are zero):
  ``volume`` (gross captured), ``commission`` (the net change of the platform's commission:
  captures minus what refunds and lost disputes took back), ``refunded`` (net of failed
  refunds) and ``disputed`` (the amount of disputes and inquiries opened that day), all from the
  journal, so the days of a period add up to what the ledger holds;
- the inbox's health: failed, deferred and rejected events (counts and the newest ids) and the
  payments waiting for an operator's review;
- the payout queue: requests waiting for approval, and approved ones waiting to be executed;
- the last reconciliation run, or ``None`` when none was recorded.

Two sections are empty until the features that fill them exist, so a page can render them
already: ``accounts_needing_attention`` (mentors whose Stripe accounts cannot receive money)
and each currency's ``extra`` series (Stripe fees and net commission, once fees are posted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Engine

from mentorpay._clock import utcnow
from mentorpay.accounts import AccountService, AccountStatus
from mentorpay.db import read_connection
from mentorpay.errors import InvalidRequestError
from mentorpay.ledger import BalanceView, PaymentRecord
from mentorpay.ledger.queries import balances, review_queue
from mentorpay.ledger.reports import (
    daily_disputes_query,
    daily_journal_query,
    daily_mentor_query,
    review_count_query,
)
from mentorpay.ledger.rules import CLEARING, COMMISSION, STRIPE_FEES
from mentorpay.money import Money
from mentorpay.payouts import PayoutService, PayoutView
from mentorpay.reconcile.runs import ReconcileRun, last_run
from mentorpay.webhooks._inbox import (
    ATTENTION_STATUSES,
    InboxEvent,
    attention_counts_query,
    newest_query,
)

__all__ = [
    "MAX_DAYS",
    "CurrencySeries",
    "DashboardOverview",
    "DashboardService",
    "InboxHealth",
    "MentorEarnings",
    "PayoutQueue",
]

#: The longest period one overview covers (a year and a day: leap years included).
MAX_DAYS: Final = 367
_SERIES: Final = ("volume", "commission", "refunded", "disputed")


@dataclass(frozen=True, slots=True)
class CurrencySeries:
    """One currency's figures, one value per day of the period (``days``), zero when idle."""

    currency: str
    days: list[date]
    volume: list[Money]
    commission: list[Money]
    refunded: list[Money]
    disputed: list[Money]
    disputes_opened: list[int]
    #: Further series by name, empty today: "stripe_fees" and "net" once fees are posted.
    extra: dict[str, list[Money]] = field(default_factory=dict)

    def total(self, name: str) -> Money:
        """The period's sum of one series (``volume``, ``commission``, ...)."""
        values: list[Money] = getattr(self, name) if name in _SERIES else self.extra[name]
        return sum(values, Money.zero(self.currency))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: minor-unit integers, ISO days."""
        series = {name: [m.amount for m in getattr(self, name)] for name in _SERIES}
        return {
            "currency": self.currency,
            "days": [d.isoformat() for d in self.days],
            **series,
            "disputes_opened": list(self.disputes_opened),
            "extra": {k: [m.amount for m in v] for k, v in self.extra.items()},
            "totals": {name: self.total(name).amount for name in _SERIES},
        }


@dataclass(frozen=True, slots=True)
class InboxHealth:
    """Events that did not apply (yet) and payments an operator must review."""

    failed: int
    deferred: int
    rejected: int
    needs_review: int
    #: The newest events of each attention status (``mentorpay events replay <id>``).
    newest: dict[str, list[InboxEvent]]
    #: The oldest payments under review (``mentorpay payments review``).
    review: list[PaymentRecord]

    @property
    def healthy(self) -> bool:
        """Nothing failed, waits or needs a human."""
        return not (self.failed or self.deferred or self.rejected or self.needs_review)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "failed": self.failed,
            "deferred": self.deferred,
            "rejected": self.rejected,
            "needs_review": self.needs_review,
            "healthy": self.healthy,
            "newest": {k: [e.as_dict() for e in v] for k, v in self.newest.items()},
            "review": [r.payment_intent_id for r in self.review],
        }


@dataclass(frozen=True, slots=True)
class PayoutQueue:
    """Payout requests an operator acts on: approve the requested, execute the approved."""

    requested: list[PayoutView]
    approved: list[PayoutView]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "requested": [p.as_dict() for p in self.requested],
            "approved": [p.as_dict() for p in self.approved],
        }


@dataclass(frozen=True, slots=True)
class DashboardOverview:
    """Everything the operator page shows."""

    since: datetime
    until: datetime
    currencies: list[CurrencySeries]
    inbox: InboxHealth
    payouts: PayoutQueue
    #: None: no reconciliation was ever recorded.
    last_reconciliation: ReconcileRun | None
    #: Mentors whose Stripe accounts cannot receive money: empty until mentorpay tracks accounts.
    accounts_needing_attention: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        last = self.last_reconciliation
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "currencies": [c.as_dict() for c in self.currencies],
            "inbox": self.inbox.as_dict(),
            "payouts": self.payouts.as_dict(),
            "last_reconciliation": last.as_dict() if last is not None else None,
            "accounts_needing_attention": list(self.accounts_needing_attention),
        }


@dataclass(frozen=True, slots=True)
class MentorEarnings:
    """What a mentor's own page shows: balances, earnings per day, their payout requests."""

    mentor_id: str
    since: datetime
    until: datetime
    days: list[date]
    balances: list[BalanceView]
    #: Currency -> net earnings per day (credits less refunds and lost disputes), zero if idle.
    earned: dict[str, list[Money]]
    payouts: list[PayoutView]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "mentor_id": self.mentor_id,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "days": [d.isoformat() for d in self.days],
            "balances": [b.as_dict() for b in self.balances],
            "earned": {cur: [m.amount for m in v] for cur, v in self.earned.items()},
            "payouts": [p.as_dict() for p in self.payouts],
        }


def period_days(since: datetime, until: datetime) -> list[date]:
    """The UTC days ``[since, until)`` touches, in order."""
    first, last = since.astimezone(UTC).date(), (until - timedelta(microseconds=1)).astimezone(UTC)
    return [first + timedelta(days=n) for n in range((last.date() - first).days + 1)]


class DashboardService:
    """Read-only: every figure comes from an indexed aggregate over mentorpay's tables."""

    def __init__(
        self,
        engine: Engine,
        payouts: PayoutService,
        *,
        clock: Callable[[], datetime] = utcnow,
        accounts: AccountService | None = None,
    ) -> None:
        self._engine = engine
        self._payouts = payouts
        self._clock = clock
        self._accounts = accounts

    def overview(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        newest: int = 10,
        queue: int = 50,
    ) -> DashboardOverview:
        """The dashboard of ``[since, until)``: until defaults to now, since to 30 days earlier.

        ``newest`` events per inbox status and ``queue`` payouts per status are listed.
        """
        start, end, days = self._period(since, until)
        if not (1 <= newest <= 100 and 1 <= queue <= 500):
            raise InvalidRequestError("newest must be 1..100 and queue 1..500")
        return DashboardOverview(
            since=start,
            until=end,
            currencies=self._series(start, end, days),
            inbox=self._inbox(newest),
            payouts=PayoutQueue(
                requested=self._payouts.list(status="requested", limit=queue),
                approved=self._payouts.list(status="approved", limit=queue),
            ),
            last_reconciliation=last_run(self._engine),
            accounts_needing_attention=self._attention(),
        )

    def _attention(self) -> list[dict[str, Any]]:
        """Onboarded mentors whose accounts cannot take both charges and payouts, and why."""
        if self._accounts is None:
            return []
        return [
            {"mentor_id": a.mentor_id, "state": a.state, "reason": attention_reason(a)}
            for a in self._accounts.list(limit=1000, not_enabled=True)
        ]

    def earnings(
        self,
        mentor_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        payouts: int = 20,
    ) -> MentorEarnings:
        """A mentor's page: balances now, earnings per day of ``[since, until)`` (default: the
        last 30 days), and their ``payouts`` newest payout requests. Show it to that mentor."""
        start, end, days = self._period(since, until)
        index = {d.isoformat(): n for n, d in enumerate(days)}
        earned: dict[str, list[int]] = {}
        query = daily_mentor_query(mentor_id, start, end, self._engine.dialect.name)
        with read_connection(self._engine) as conn:
            for day, currency, amount in conn.execute(query).all():
                earned.setdefault(currency, [0] * len(days))[index[str(day)]] += int(amount)
        views = balances(self._engine, mentor_id)
        for view in views:  # a currency earned before the period still gets its (zero) series
            earned.setdefault(view.currency, [0] * len(days))
        return MentorEarnings(
            mentor_id=mentor_id,
            since=start,
            until=end,
            days=days,
            balances=views,
            earned={c: [Money(v, c) for v in vs] for c, vs in sorted(earned.items())},
            payouts=self._payouts.list(mentor_id, limit=payouts),
        )

    def _period(
        self, since: datetime | None, until: datetime | None
    ) -> tuple[datetime, datetime, list[date]]:
        end = until if until is not None else self._clock()
        start = since if since is not None else end - timedelta(days=30)
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidRequestError("since and until must be aware datetimes (tzinfo=UTC)")
        if end <= start:
            raise InvalidRequestError("until must be after since")
        days = period_days(start, end)
        if len(days) > MAX_DAYS:
            raise InvalidRequestError(
                f"a dashboard covers at most {MAX_DAYS} days; ask for a shorter period",
                days=len(days),
            )
        return start, end, days

    def _series(self, since: datetime, until: datetime, days: list[date]) -> list[CurrencySeries]:
        dialect = self._engine.dialect.name
        index = {d.isoformat(): n for n, d in enumerate(days)}
        sums: dict[str, dict[str, list[int]]] = {}

        def slot(currency: str) -> dict[str, list[int]]:
            names = (*_SERIES, "disputes_opened", "stripe_fees")
            return sums.setdefault(currency, {name: [0] * len(days) for name in names})

        with read_connection(self._engine, snapshot=True) as conn:
            journal = conn.execute(daily_journal_query(since, until, dialect)).all()
            disputes = conn.execute(daily_disputes_query(since, until, dialect)).all()
        for day, currency, kind, account, amount in journal:
            n, values = index[str(day)], slot(currency)
            if account == COMMISSION:
                values["commission"][n] += int(amount)
            elif account == STRIPE_FEES:
                values["stripe_fees"][n] -= int(amount)  # a cost: the account's legs are negative
            elif kind == "payment" and account == CLEARING:
                values["volume"][n] -= int(amount)  # money in is a negative clearing leg
            elif kind in ("refund", "refund_failed") and account == CLEARING:
                values["refunded"][n] += int(amount)
        for day, currency, count, amount in disputes:
            n, values = index[str(day)], slot(currency)
            values["disputes_opened"][n] += int(count)
            values["disputed"][n] += int(amount)

        def money(cur: str, values: list[int]) -> list[Money]:
            return [Money(v, cur) for v in values]

        return [
            CurrencySeries(
                currency=cur,
                days=list(days),
                volume=money(cur, values["volume"]),
                commission=money(cur, values["commission"]),
                refunded=money(cur, values["refunded"]),
                disputed=money(cur, values["disputed"]),
                disputes_opened=values["disputes_opened"],
                extra=_fee_series(cur, values["commission"], values["stripe_fees"]),
            )
            for cur, values in sorted(sums.items())
        ]

    def _inbox(self, newest: int) -> InboxHealth:
        with read_connection(self._engine) as conn:
            counts = {str(s): int(n) for s, n in conn.execute(attention_counts_query()).all()}
            review_count = int(conn.execute(review_count_query()).scalar_one())
            latest = {
                status: [
                    InboxEvent(**row._mapping)
                    for row in conn.execute(newest_query(status, newest)).all()
                ]
                for status in ATTENTION_STATUSES
            }
        return InboxHealth(
            failed=int(counts.get("failed", 0)),
            deferred=int(counts.get("deferred", 0)),
            rejected=int(counts.get("rejected", 0)),
            needs_review=review_count,
            newest=latest,
            review=review_queue(self._engine, newest) if review_count else [],
        )


def _fee_series(currency: str, commission: list[int], fees: list[int]) -> dict[str, list[Money]]:
    """Stripe's fees and the commission net of them, per day; none while no fee is posted."""
    if not any(fees):
        return {}
    return {
        "stripe_fees": [Money(f, currency) for f in fees],
        "net_commission": [Money(c - f, currency) for c, f in zip(commission, fees, strict=True)],
    }


def attention_reason(account: AccountStatus) -> str:
    """Why an account cannot take money yet, in an operator's words."""
    if account.disabled_reason:
        return f"disabled: {account.disabled_reason}"
    due = account.past_due or account.currently_due
    if due:
        return "due: " + ", ".join(due)
    return {"creating": "account being created", "onboarding": "onboarding not finished"}.get(
        account.state, "waiting for Stripe to enable charges and payouts"
    )
