"""MentorPay: the facade that wires config, database, gateway and the host's bookings together.

Everything is passed in (engine or session factory, bookings, gateway, clock); nothing reads the
environment except :meth:`MentorPay.from_env`, which the host calls on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from mentorpay._clock import utcnow
from mentorpay.accounts import AccountService
from mentorpay.analytics import AnalyticsReport, AnalyticsService
from mentorpay.bookings import BookingSource
from mentorpay.cancellations import BookingService
from mentorpay.checkout import CheckoutService
from mentorpay.commission import Split
from mentorpay.config import MentorpayConfig
from mentorpay.dashboard import DashboardService
from mentorpay.db import coerce_engine, make_engine
from mentorpay.effects import Effect, EffectBus, EffectKind
from mentorpay.errors import ConfigurationError, NotAuthorizedError
from mentorpay.gateway import PaymentGateway, StripeGateway
from mentorpay.inbox import Inbox
from mentorpay.ledger import BalanceView, LedgerService, Page, PaymentRecord
from mentorpay.migrations import upgrade
from mentorpay.models import metadata
from mentorpay.money import Money
from mentorpay.notifications import ContactLookup, Mailer, install_receipts
from mentorpay.outbox import Outbox
from mentorpay.payments import PaymentReviewService
from mentorpay.payouts import PayoutService
from mentorpay.plans import PlanCheckout, PlanSource, PlansService
from mentorpay.reconcile import Reconciler, ReconcileReport
from mentorpay.refunds import RefundService
from mentorpay.webhooks import WebhookProcessor
from mentorpay.webhooks.handlers.accounts import AccountEventHandlers
from mentorpay.webhooks.handlers.plans import PlanEventHandlers
from mentorpay.webhooks.handlers.refunds import RefundEventHandlers

__all__ = ["MentorPay"]


class MentorPay:
    """One object per application: ``mp.webhooks``, ``mp.checkout``, ``mp.ledger``, ..."""

    def __init__(
        self,
        config: MentorpayConfig,
        engine_or_session_factory: Engine | sessionmaker[Any] | str,
        *,
        bookings: BookingSource,
        gateway: PaymentGateway | None = None,
        clock: Callable[[], datetime] = utcnow,
        plans: PlanSource | None = None,
    ) -> None:
        self.config = config
        self.engine = coerce_engine(engine_or_session_factory)
        if gateway is None:
            if config.stripe_secret_key is None:
                raise ConfigurationError(
                    "no gateway given and no stripe_secret_key configured; pass "
                    "gateway=FakeGateway() (mentorpay.testing) for tests and demos"
                )
            gateway = StripeGateway.from_config(config)
        self.gateway = gateway
        self.clock = clock
        self.ledger = LedgerService(self.engine, clock=clock, retries=config.db_retries)
        self.analytics = AnalyticsService(self.engine, clock=clock)
        #: The effect bus: every writer stages its effects here, callbacks run after commit.
        self.effects = EffectBus(Outbox(self.engine, clock=clock, retries=config.db_retries))
        #: Effects for the host, stored with each ledger change (``deliver_pending`` after a crash).
        self.outbox = self.effects.outbox
        self.webhooks = WebhookProcessor(
            config, self.engine, self.ledger, bookings=bookings, clock=clock, effects=self.effects
        )
        #: Mentors' connected accounts; checkout and payouts pay the account it keeps.
        self.accounts = AccountService(config, self.engine, gateway, clock=clock)
        self.checkout = CheckoutService(
            config, self.engine, bookings, gateway, clock=clock, accounts=self.accounts
        )
        #: Mentorship plans (subscriptions, packages) and their session credits.
        self.plans = PlansService(
            config, self.engine, self.ledger, gateway, plans=plans, bookings=bookings, clock=clock
        )
        if plans is not None:
            self.checkout.plans = PlanCheckout(
                config, self.engine, plans, gateway, clock=clock, accounts=self.accounts
            )
        plan_events = PlanEventHandlers(self.webhooks.payment_recorder, clock=clock)
        self.webhooks.payment_recorder.plans = plan_events
        self.refunds = RefundService(config, self.engine, gateway, clock=clock)
        #: Booking operations (``cancel``); still answers ``get_booking`` like the host's source.
        self.bookings: BookingService = BookingService(
            config, self.engine, bookings, self.ledger, self.refunds, clock=clock
        )
        self.payments = PaymentReviewService(
            config, self.engine, self.ledger, bookings, gateway, clock=clock
        )
        if config.refund_duplicate_payments:
            self.effects.on("payment_needs_review", self.payments.refund_duplicate)
        self.inbox = Inbox(self.engine, clock=clock, retries=config.db_retries)
        self.payouts = PayoutService(
            config,
            self.engine,
            self.ledger,
            gateway,
            clock=clock,
            outbox=self.outbox,
            accounts=self.accounts,
        )
        self.refund_events = RefundEventHandlers(
            self.ledger, defer=self.webhooks.defer_until_recorded, clock=clock
        )
        # Every family registers through the one API (WebhookProcessor.register).
        account_events = AccountEventHandlers(clock=clock)
        for family in (self.payouts, self.refund_events, account_events, plan_events):
            for event_type, handler in family.webhook_handlers().items():
                self.webhooks.register(event_type, handler)
        #: The operator dashboard's data (``mp.dashboard.overview(since, until)``).
        self.dashboard = DashboardService(
            self.engine, self.payouts, clock=clock, accounts=self.accounts
        )
        self._reconciler = Reconciler(
            config, self.engine, gateway, self.ledger, self.webhooks.process_trusted, clock=clock
        )

    @classmethod
    def from_env(
        cls,
        *,
        bookings: BookingSource,
        gateway: PaymentGateway | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> MentorPay:
        """Build from STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, MENTORPAY_DATABASE_URL, ..."""
        config = MentorpayConfig.from_env(environ, **overrides)
        engine = make_engine(config.database_url, pooler=config.pooler)
        return cls(config, engine, bookings=bookings, gateway=gateway)

    # -- schema -------------------------------------------------------------------------------

    def create_schema(self) -> None:
        """create_all, for tests and the demo; production uses :meth:`upgrade_schema`."""
        metadata.create_all(self.engine)

    def upgrade_schema(self) -> None:
        """Apply mentorpay's Alembic migrations."""
        upgrade(self.engine)

    # -- callbacks ----------------------------------------------------------------------------

    def on(self, effect: EffectKind, callback: Callable[[Effect], None]) -> None:
        """Run ``callback`` after commit, once per business effect of that kind."""
        self.effects.on(effect, callback)

    def send_receipts(self, mailer: Mailer, contacts: ContactLookup) -> None:
        """Email receipts and notices through the host's mailer (see mentorpay.notifications)."""
        install_receipts(self.effects, self.ledger, mailer, contacts, engine=self.engine)

    # -- queries for the API ------------------------------------------------------------------

    def balances(self, viewer_id: str, mentor_id: str | None = None) -> list[BalanceView]:
        """A mentor's balances, per currency; only the mentor may see them."""
        target = mentor_id if mentor_id is not None else viewer_id
        if target != viewer_id:
            raise NotAuthorizedError(
                "you can only see your own balance", viewer_id=viewer_id, mentor_id=target
            )
        return self.ledger.balances(target)

    def history(
        self,
        viewer_id: str,
        *,
        role: Literal["mentor", "mentee"] = "mentor",
        user_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[PaymentRecord]:
        """Earnings (mentor) or payments (mentee); nobody sees another user's rows."""
        target = user_id if user_id is not None else viewer_id
        if target != viewer_id:
            raise NotAuthorizedError(
                "you can only see your own payment history", viewer_id=viewer_id, user_id=target
            )
        return self.ledger.history(target, role=role, limit=limit, cursor=cursor)

    def commission_preview(self, amount: Money, mentor_id: str | None = None) -> Split:
        """How an amount would split under the policy in force (the mentor's override if any)."""
        return self.checkout.commission_preview(amount, mentor_id)

    def stats(self, since: datetime, until: datetime | None = None) -> AnalyticsReport:
        """Payment metrics of a period: volume, commission, refunds, disputes, conversion."""
        return self.analytics.summary(since, until)

    def reconcile(
        self,
        since: datetime,
        until: datetime | None = None,
        *,
        apply: bool = False,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> ReconcileReport:
        """Compare Stripe's record of a period with the ledger; optionally record what's missing."""
        return self._reconciler.run(since, until, apply=apply, progress=progress)
