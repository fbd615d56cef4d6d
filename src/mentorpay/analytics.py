"""Payment metrics for a period: volume, commission, refunds, disputes, checkout conversion.

The original application's "analytics dashboard" next step, as data a host renders however it
likes (``mp.analytics.summary(since, until)``, ``mentorpay stats``). Figures are per currency,
never added across currencies, and computed with aggregate queries over mentorpay's own tables:

- payments made in ``[since, until)``: count, gross, platform fee and mentor earnings as
  captured, and how much of them was later reversed (refunds, lost disputes);
- disputes among those payments (open and lost);
- net earnings: the commission kept (gross commission minus what refunds and lost disputes
  reversed) minus Stripe's fees on those payments (processing and dispute fees, posted on
  ``stripe_fees`` by reconciliation, see :mod:`mentorpay.reconcile.fees`);
- Checkout conversion: sessions created in the period that were paid, over all sessions
  created in it that reached Stripe;
- operations, as of now rather than of the period: deferred events waiting longer than
  ``stale_after`` (their payment may never come) and effects still pending in the outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from mentorpay._clock import utcnow
from mentorpay.checkout.sessions import funnel_query as sessions_funnel_query
from mentorpay.db import read_connection
from mentorpay.errors import InvalidRequestError
from mentorpay.ledger.reports import period_totals_query
from mentorpay.money import Money
from mentorpay.outbox import pending_count_query
from mentorpay.webhooks._inbox import stale_count_query

__all__ = ["AnalyticsReport", "AnalyticsService", "CheckoutFunnel", "CurrencySummary"]


@dataclass(frozen=True, slots=True)
class CurrencySummary:
    """What the payments of one currency amounted to."""

    currency: str
    payments: int
    gross: Money
    platform_fee: Money
    mentor_earnings: Money
    refunded: Money
    fee_reversed: Money
    payments_refunded: int
    disputes_open: int
    disputes_lost: int
    #: Stripe's fees on these payments (processing, disputes), net of fees returned.
    stripe_fees: Money | None = None

    @property
    def net_commission(self) -> Money:
        """Commission kept after refunds and lost disputes."""
        return self.platform_fee - self.fee_reversed

    @property
    def gross_commission(self) -> Money:
        """The platform's fee as captured, before refunds, disputes and Stripe's fees."""
        return self.platform_fee

    @property
    def fees(self) -> Money:
        """Stripe's fees (zero when none were posted)."""
        return self.stripe_fees if self.stripe_fees is not None else Money.zero(self.currency)

    @property
    def net_earnings(self) -> Money:
        """What the platform earned: commission kept minus Stripe's fees (may be negative)."""
        return self.net_commission - self.fees

    @property
    def refund_rate_bps(self) -> int:
        """Share of gross volume reversed, in basis points (integer, rounded down)."""
        return self.refunded.amount * 10_000 // self.gross.amount if self.gross.amount else 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: minor-unit integers."""
        return {
            "currency": self.currency,
            "payments": self.payments,
            "gross": self.gross.amount,
            "platform_fee": self.platform_fee.amount,
            "mentor_earnings": self.mentor_earnings.amount,
            "refunded": self.refunded.amount,
            "fee_reversed": self.fee_reversed.amount,
            "net_commission": self.net_commission.amount,
            "gross_commission": self.gross_commission.amount,
            "stripe_fees": self.fees.amount,
            "net_earnings": self.net_earnings.amount,
            "payments_refunded": self.payments_refunded,
            "refund_rate_bps": self.refund_rate_bps,
            "disputes_open": self.disputes_open,
            "disputes_lost": self.disputes_lost,
        }


@dataclass(frozen=True, slots=True)
class CheckoutFunnel:
    """Checkout Sessions created in the period and how many were paid."""

    created: int
    completed: int
    expired: int

    @property
    def conversion_bps(self) -> int:
        """completed / created in basis points (integer, rounded down); 0 when none."""
        return self.completed * 10_000 // self.created if self.created else 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "created": self.created,
            "completed": self.completed,
            "expired": self.expired,
            "conversion_bps": self.conversion_bps,
        }


@dataclass(frozen=True, slots=True)
class AnalyticsReport:
    """Metrics of one period."""

    since: datetime
    until: datetime
    currencies: list[CurrencySummary]
    checkout: CheckoutFunnel
    #: Deferred events older than the stale threshold (now, not of the period).
    stale_deferred: int = 0
    #: Effects not yet delivered to the host's callbacks (now).
    outbox_pending: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``mentorpay stats --json``)."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "currencies": [c.as_dict() for c in self.currencies],
            "checkout": self.checkout.as_dict(),
            "operations": {
                "stale_deferred": self.stale_deferred,
                "outbox_pending": self.outbox_pending,
            },
        }


class AnalyticsService:
    """Read-only aggregates over mentorpay's tables."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._clock = clock

    def summary(
        self,
        since: datetime,
        until: datetime | None = None,
        *,
        stale_after: timedelta = timedelta(days=7),
    ) -> AnalyticsReport:
        """Metrics of payments and checkouts created in ``[since, until)`` (until: now)."""
        end = until or self._clock()
        if since.tzinfo is None or end.tzinfo is None:
            raise InvalidRequestError("since and until must be aware datetimes (tzinfo=UTC)")
        if end <= since:
            raise InvalidRequestError("until must be after since")
        payments_query = period_totals_query(since, end)
        funnel_query = sessions_funnel_query(since, end)
        stale_query = stale_count_query(self._clock() - stale_after)
        pending_query = pending_count_query()
        with read_connection(self._engine) as conn:
            rows = conn.execute(payments_query).all()
            created, completed, expired = conn.execute(funnel_query).one()
            stale = int(conn.execute(stale_query).scalar_one())
            pending = int(conn.execute(pending_query).scalar_one())
        currencies = [
            CurrencySummary(
                currency=cur,
                payments=int(count),
                gross=Money(int(gross), cur),
                platform_fee=Money(int(fee), cur),
                mentor_earnings=Money(int(earnings), cur),
                refunded=Money(int(reversed_), cur),
                fee_reversed=Money(int(fee_reversed), cur),
                payments_refunded=int(n_refunded),
                disputes_open=int(n_open),
                disputes_lost=int(n_lost),
                stripe_fees=Money(int(stripe_fees or 0), cur),
            )
            for (
                cur,
                count,
                gross,
                fee,
                earnings,
                reversed_,
                fee_reversed,
                n_refunded,
                n_open,
                n_lost,
                stripe_fees,
            ) in rows
        ]
        funnel = CheckoutFunnel(int(created), int(completed), int(expired))
        return AnalyticsReport(since, end, currencies, funnel, stale, pending)
