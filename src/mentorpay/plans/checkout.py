"""Selling a plan through Stripe Checkout: a subscription-mode session for a monthly plan, a
payment-mode one for a package (``mp.checkout.create_plan_session``).

The rules are the booking checkout's: the plan comes from the host (:class:`PlanSource`), the
buyer may not be its mentor, one live purchase per mentee and plan (a unique ``open_key``: an
open checkout is reused while it stays valid, a live subscription refuses a second one), the
purchase row is claimed before Stripe is called and its idempotency key never changes, so a
retry after a lost answer replays the same request. The terms Stripe is asked for are copied on
the purchase row: webhooks credit what this row says, never what metadata says.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from sqlalchemy import Engine, Row
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.accounts import AccountService
from mentorpay.config import MentorpayConfig
from mentorpay.db import check_id, run_in_transaction
from mentorpay.errors import (
    AlreadySubscribedError,
    BookingNotPayableError,
    ConflictError,
    GatewayError,
    GatewayInvalidRequestError,
    IdempotencyConflictError,
    InvalidRequestError,
    NotAuthorizedError,
    PlanNotFoundError,
)
from mentorpay.gateway import (
    GatewayCheckoutSession,
    PaymentGateway,
    PlanCheckoutParams,
    checkout_expire_idempotency_key,
    outcome_unknown,
    plan_checkout_idempotency_key,
)
from mentorpay.money import Money, check_charge_amount
from mentorpay.plans import rules, storage
from mentorpay.plans.info import PlanInfo, PlanSource

__all__ = ["PlanCheckout", "PlanCheckoutInfo"]

_MAX_ROUNDS: Final = 4


@dataclass(frozen=True, slots=True)
class PlanCheckoutInfo:
    """The Checkout Session a mentee is sent to, to buy a plan. ``reused``: an open one."""

    session_id: str
    url: str
    plan_purchase_id: str
    plan_id: str
    kind: Literal["subscription", "package"]
    amount: Money
    sessions: int
    expires_at: datetime
    reused: bool


@dataclass(frozen=True, slots=True)
class _Terms:
    plan: PlanInfo
    mentee_id: str
    success_url: str
    cancel_url: str
    destination: str | None
    fee_percent: str | None
    application_fee: Money | None


class PlanCheckout:
    """Creates the Checkout Sessions that sell plans; see the module docstring."""

    def __init__(
        self,
        config: MentorpayConfig,
        engine: Engine,
        plans: PlanSource,
        gateway: PaymentGateway,
        *,
        clock: Callable[[], datetime] = utcnow,
        accounts: AccountService | None = None,
        reuse_margin: timedelta = timedelta(minutes=5),
    ) -> None:
        self._config = config
        self._engine = engine
        self._plans = plans
        self._gateway = gateway
        self._clock = clock
        self._accounts = accounts
        self._reuse_margin = reuse_margin

    def create(
        self, plan_id: str, *, user_id: str, success_url: str, cancel_url: str
    ) -> PlanCheckoutInfo:
        """The Checkout Session for ``user_id`` to buy ``plan_id`` (see the module docstring)."""
        terms = self._terms(plan_id, user_id, success_url, cancel_url)
        key = rules.open_key(terms.plan.kind, user_id, plan_id)
        for _ in range(_MAX_ROUNDS):
            action, row = self._tx(lambda c: self._claim(c, key, terms))
            if row is None:
                continue
            if action == "reuse":
                return _info(row, reused=True)
            if action == "retire":
                self._retire(row, terms)
                continue
            return _info(self._create_at_stripe(row, terms), reused=False)
        raise ConflictError(
            f"the checkouts of plan {plan_id} kept changing; try again", plan_id=plan_id
        )

    # -- checks --------------------------------------------------------------------------------

    def _terms(self, plan_id: str, user_id: str, success_url: str, cancel_url: str) -> _Terms:
        check_id(plan_id, field="plan_id")
        check_id(user_id, field="user_id")
        for name, url in (("success_url", success_url), ("cancel_url", cancel_url)):
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidRequestError(f"{name} must be an absolute http(s) URL", field=name)
        plan = self._plans.get_plan(plan_id)
        if plan is None:
            raise PlanNotFoundError(f"there is no plan {plan_id}", plan_id=plan_id)
        if not plan.active:
            raise BookingNotPayableError(
                f"plan {plan_id} is not for sale", plan_id=plan_id, reason="plan_inactive"
            )
        if user_id == plan.mentor_id:
            raise NotAuthorizedError(
                "a mentor cannot buy their own plan", plan_id=plan_id, user_id=user_id
            )
        check_charge_amount(plan.price)
        destination = fee_percent = None
        application_fee: Money | None = None
        if self._config.connect_destination_charges:
            destination = plan.mentor_stripe_account
            if self._accounts is not None:
                destination = self._accounts.destination(
                    plan.mentor_id, destination, purpose="charges", require_ready=True
                )
            if not destination:
                raise BookingNotPayableError(
                    f"the mentor of plan {plan_id} has no connected Stripe account",
                    plan_id=plan_id,
                    reason="mentor_not_connected",
                )
            policy = self._config.policy_for(plan.mentor_id)
            application_fee = policy.split(plan.price).platform_fee
            if plan.kind == "subscription":
                fee_percent = rules.fee_percent(policy, plan.price)
                if fee_percent is None:
                    raise InvalidRequestError(
                        f"the commission on plan {plan_id}'s price {plan.price} cannot be "
                        "expressed as Stripe's application_fee_percent (a minimum or maximum "
                        "fee applies, or the rate leaves a fraction of a minor unit); choose "
                        "a price the rate divides exactly",
                        plan_id=plan_id,
                    )
        return _Terms(
            plan, user_id, success_url, cancel_url, destination, fee_percent, application_fee
        )

    # -- local state ---------------------------------------------------------------------------

    def _claim(self, conn: Connection, key: str, terms: _Terms) -> tuple[str, Row[Any] | None]:
        """Inside one transaction: the live purchase to reuse, adopt or retire, or a new one."""
        now = self._clock()
        plan = terms.plan
        row = storage.purchase_by_open_key(conn, key)
        if row is not None:
            if row.status in ("active", "past_due", "paid"):
                raise AlreadySubscribedError(
                    f"{terms.mentee_id} already subscribes to plan {plan.id}",
                    plan_id=plan.id,
                    plan_purchase_id=row.id,
                )
            fresh = row.checkout_expires_at > now + self._reuse_margin and _same_terms(row, terms)
            if fresh and row.status == "checkout":
                return "reuse", row
            if fresh and row.status == "creating":
                return "create", row  # its answer was lost: replay the same request
            return "retire", row
        earlier = [
            r for r in storage.list_purchases(conn, mentee_id=terms.mentee_id) if r.customer_id
        ]
        purchase_id = "mpp_" + secrets.token_hex(12)
        values = {
            "id": purchase_id,
            "kind": plan.kind,
            "plan_id": plan.id,
            "mentor_id": plan.mentor_id,
            "mentee_id": terms.mentee_id,
            "currency": plan.price.currency,
            "price": plan.price.amount,
            "sessions": plan.sessions,
            "interval": plan.interval,
            "interval_count": plan.interval_count,
            "validity_seconds": int(plan.validity.total_seconds()),
            "carry_over_periods": plan.carry_over_periods,
            "name": plan.label,
            "stripe_price_id": plan.stripe_price_id,
            "destination": terms.destination,
            "application_fee": terms.application_fee.amount if terms.application_fee else None,
            "status": "creating",
            "open_key": key,
            "customer_id": earlier[0].customer_id if earlier else None,
            "plan_changes": 0,
            "cancel_at_period_end": False,
            "stripe_seen_at": 0,
            # Whole seconds: Stripe takes expires_at as an epoch second, and a replay must
            # send exactly the same value.
            "checkout_expires_at": now.replace(microsecond=0) + self._config.checkout_expiry,
            "created_at": now,
            "updated_at": now,
        }
        if not storage.insert_purchase(conn, values):
            return "again", None  # a concurrent caller claimed it: look again
        row = storage.purchase(conn, purchase_id)
        assert row is not None
        return "create", row

    def _tx(self, fn: Callable[[Connection], Any]) -> Any:
        return run_in_transaction(self._engine, fn, retries=self._config.db_retries)

    def _abandon(self, purchase_id: str) -> None:
        self._tx(
            lambda c: storage.update_purchase(
                c, purchase_id, self._clock(), status="abandoned", open_key=None
            )
        )

    # -- Stripe --------------------------------------------------------------------------------

    def _params(self, row: Row[Any], terms: _Terms) -> PlanCheckoutParams:
        """The request for a claimed purchase: its terms from the row, so replays match."""
        return PlanCheckoutParams(
            purchase_id=row.id,
            plan_id=row.plan_id,
            kind=row.kind,
            mentor_id=row.mentor_id,
            mentee_id=row.mentee_id,
            amount=Money(row.price, row.currency),
            line_item_name=row.name,
            success_url=terms.success_url,
            cancel_url=terms.cancel_url,
            expires_at=row.checkout_expires_at,
            interval=row.interval,
            interval_count=row.interval_count,
            stripe_price_id=row.stripe_price_id,
            customer_id=row.customer_id,
            destination=row.destination,
            application_fee_percent=terms.fee_percent if row.kind == "subscription" else None,
            application_fee=(
                Money(row.application_fee, row.currency)
                if row.kind == "package" and row.application_fee is not None
                else None
            ),
        )

    def _create_at_stripe(self, row: Row[Any], terms: _Terms) -> Row[Any]:
        key = plan_checkout_idempotency_key(row.id, 1)
        try:
            session = self._gateway.create_plan_checkout_session(
                self._params(row, terms), idempotency_key=key
            )
        except IdempotencyConflictError:
            self._abandon(row.id)  # the key is spent on other redirect URLs
            raise
        except GatewayError as exc:
            if not outcome_unknown(exc):
                self._abandon(row.id)  # Stripe refused: no session exists
            raise
        return self._tx(lambda c: self._finalize(c, row.id, session))  # type: ignore[no-any-return]

    def _finalize(
        self, conn: Connection, purchase_id: str, session: GatewayCheckoutSession
    ) -> Row[Any]:
        row = storage.lock_purchase(conn, purchase_id)
        assert row is not None
        if row.status == "creating":
            storage.update_purchase(
                conn,
                purchase_id,
                self._clock(),
                status="checkout",
                checkout_session_id=session.id,
                checkout_url=session.url,
            )
            row = storage.purchase(conn, purchase_id)
            assert row is not None
        return row

    def _retire(self, row: Row[Any], terms: _Terms) -> None:
        """Make sure a purchase's checkout that will not be reused can no longer be paid."""
        if row.status == "creating":
            try:
                row = self._create_at_stripe(row, terms)
            except GatewayError as exc:
                if outcome_unknown(exc):
                    raise
                return  # never existed; _create_at_stripe abandoned it
        session_id = row.checkout_session_id
        if session_id is not None:
            try:
                self._gateway.expire_checkout_session(
                    session_id, idempotency_key=checkout_expire_idempotency_key(session_id)
                )
            except GatewayInvalidRequestError:
                current = self._gateway.retrieve_checkout_session(session_id)
                if current.status == "open":
                    raise
                if current.status == "complete":
                    raise ConflictError(
                        f"the checkout of plan purchase {row.id} was completed; its payment "
                        "is being confirmed",
                        plan_purchase_id=row.id,
                    ) from None
        self._abandon(row.id)


def _same_terms(row: Row[Any], terms: _Terms) -> bool:
    plan = terms.plan
    return bool(
        row.price == plan.price.amount
        and row.currency == plan.price.currency
        and row.sessions == plan.sessions
        and row.destination == terms.destination
    )


def _info(row: Row[Any], *, reused: bool) -> PlanCheckoutInfo:
    if row.checkout_url is None or row.checkout_session_id is None:
        raise GatewayError(f"Stripe returned plan purchase {row.id}'s session without a URL")
    return PlanCheckoutInfo(
        session_id=row.checkout_session_id,
        url=row.checkout_url,
        plan_purchase_id=row.id,
        plan_id=row.plan_id,
        kind=row.kind,
        amount=Money(row.price, row.currency),
        sessions=row.sessions,
        expires_at=row.checkout_expires_at,
        reused=reused,
    )
