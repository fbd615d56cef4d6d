"""CheckoutService: one Stripe Checkout Session per booking. Each call checks the request
(:mod:`.request`), plans in one transaction what to reuse, adopt, retire or claim
(:mod:`.sessions` holds the SQL), and only then calls Stripe (see :mod:`mentorpay.checkout`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Engine, Row
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.accounts import AccountService
from mentorpay.bookings import BookingInfo, BookingSource
from mentorpay.checkout import sessions
from mentorpay.checkout.request import (
    ABANDONED,
    AWAITING_PAYMENT,
    COMPLETE,
    CREATING,
    EXPIRED,
    OPEN,
    CheckoutRequest,
    CheckoutSessionInfo,
    build_request,
    default_line_item_name,
    payment_pending,
)
from mentorpay.commission import Split
from mentorpay.config import MentorpayConfig
from mentorpay.db import run_in_transaction
from mentorpay.errors import (
    AlreadyPaidError,
    ConfigurationError,
    ConflictError,
    GatewayError,
    GatewayInvalidRequestError,
    IdempotencyConflictError,
)
from mentorpay.gateway import (
    CheckoutSessionParams,
    GatewayCheckoutSession,
    PaymentGateway,
    checkout_expire_idempotency_key,
    checkout_idempotency_key,
    outcome_unknown,
)
from mentorpay.ledger.queries import paid_by
from mentorpay.money import Money
from mentorpay.plans.checkout import PlanCheckout, PlanCheckoutInfo

__all__ = ["CheckoutService"]

# Rounds of "retire the stale session, then look again"; each round retires all it sees.
_MAX_ROUNDS: Final = 4


@dataclass(frozen=True, slots=True)
class _Plan:
    reuse: Row[Any] | None = None
    adopt: Row[Any] | None = None
    stale: tuple[Row[Any], ...] = ()


class CheckoutService:
    """Creates Stripe Checkout Sessions for bookings; see the module docstring for the rules.

    ``reuse_margin``: an open session is reused only if it stays valid at least this long
    (the mentee needs time to pay); otherwise it is expired and a new one created.
    ``line_item_name``: the product name the mentee sees on Stripe's page.
    """

    def __init__(
        self,
        config: MentorpayConfig,
        engine: Engine,
        bookings: BookingSource,
        gateway: PaymentGateway,
        *,
        clock: Callable[[], datetime] = utcnow,
        reuse_margin: timedelta = timedelta(minutes=5),
        line_item_name: Callable[[BookingInfo], str] = default_line_item_name,
        accounts: AccountService | None = None,
    ) -> None:
        self._config = config
        self._engine = engine
        self._bookings = bookings
        self._gateway = gateway
        self._clock = clock
        self._reuse_margin = reuse_margin
        self._line_item_name = line_item_name
        self._accounts = accounts
        #: Set by ``MentorPay`` when the host has plans (``create_plan_session``).
        self.plans: PlanCheckout | None = None

    # -- public API -----------------------------------------------------------------------------

    def commission_preview(self, amount: Money, mentor_id: str | None = None) -> Split:
        """How ``amount`` would split between the platform and the mentor (default policy
        unless ``mentor_id`` has an override). Pure: nothing is read or written."""
        if not isinstance(amount, Money):
            raise TypeError(f"amount must be Money, not {type(amount).__name__}")
        policy = (
            self._config.commission if mentor_id is None else self._config.policy_for(mentor_id)
        )
        return policy.split(amount)

    def create_session(
        self, booking_id: str, *, user_id: str, success_url: str, cancel_url: str
    ) -> CheckoutSessionInfo:
        """The Checkout Session for ``user_id`` to pay ``booking_id``: an open one reused, or a
        new one created at Stripe (exactly one even when called concurrently)."""
        request = self._request(booking_id, user_id, success_url, cancel_url)
        for _ in range(_MAX_ROUNDS):
            plan: _Plan = self._tx(lambda c: self._plan(c, request))
            if plan.stale:
                for row in plan.stale:
                    self._retire(row, request)
                continue
            if plan.reuse is not None:
                return self._info(plan.reuse, reused=True)
            assert plan.adopt is not None
            return self._create_remote(plan.adopt, request)
        raise ConflictError(
            f"the checkout sessions of booking {booking_id} kept changing while a new one was "
            "being created; try again",
            booking_id=booking_id,
        )

    def create_plan_session(
        self, plan_id: str, *, user_id: str, success_url: str, cancel_url: str
    ) -> PlanCheckoutInfo:
        """The Checkout Session for ``user_id`` to buy plan ``plan_id``: subscription mode for a
        monthly plan, payment mode for a package (see :mod:`mentorpay.plans.checkout`)."""
        if self.plans is None:
            raise ConfigurationError("no plans configured: pass plans=... to MentorPay")
        return self.plans.create(
            plan_id, user_id=user_id, success_url=success_url, cancel_url=cancel_url
        )

    def _request(
        self, booking_id: str, user_id: str, success_url: str, cancel_url: str
    ) -> CheckoutRequest:
        return build_request(
            self._config,
            self._bookings.get_booking(booking_id),
            booking_id,
            user_id=user_id,
            success_url=success_url,
            cancel_url=cancel_url,
            line_item_name=self._line_item_name,
            destination_for=None if self._accounts is None else self._destination,
        )

    def _destination(self, booking: BookingInfo) -> str | None:
        assert self._accounts is not None
        named = booking.mentor_stripe_account
        return self._accounts.destination(
            booking.mentor_id, named, purpose="charges", require_ready=True
        )

    # -- local state ----------------------------------------------------------------------------

    def _plan(self, conn: Connection, request: CheckoutRequest) -> _Plan:
        """Inside one transaction: refuse if paid, else find a session to reuse or adopt,
        sessions to retire, or claim a new attempt."""
        booking = request.booking
        paid = paid_by(conn, booking.id)
        if paid is not None:
            paid_intent, paid_status = paid
            raise AlreadyPaidError(
                f"booking {booking.id} is already paid ({paid_status})",
                booking_id=booking.id,
                payment_intent_id=paid_intent,
            )
        rows = sessions.booking_sessions(conn, booking.id)
        pending = next((r for r in rows if r.status == AWAITING_PAYMENT), None)
        if pending is not None:
            raise payment_pending(pending)
        now = self._clock()
        match: Row[Any] | None = None
        stale: list[Row[Any]] = []
        for row in rows:
            if row.status not in (OPEN, CREATING) or row.expires_at <= now:
                continue
            if match is None and self._matches(row, request, now):
                match = row
            else:
                stale.append(row)
        if stale:
            return _Plan(stale=tuple(stale))
        if match is not None:
            return _Plan(reuse=match) if match.status == OPEN else _Plan(adopt=match)
        claimed = self._claim(conn, request, attempt=len(rows), now=now)
        if claimed.status == OPEN and claimed.url is not None:
            # Lost the race to a caller that already finished: its session is the answer.
            return _Plan(reuse=claimed)
        return _Plan(adopt=claimed)

    def _matches(self, row: Row[Any], request: CheckoutRequest, now: datetime) -> bool:
        return (
            row.currency == request.price.currency
            and row.amount == request.price.amount
            and row.platform_fee == request.platform_fee.amount
            and row.mentee_id == request.booking.mentee_id
            and row.mentor_id == request.booking.mentor_id
            and row.idempotency_key.endswith(":" + request.fingerprint)
            and row.expires_at > now + self._reuse_margin
            and (row.status == CREATING or row.url is not None)
        )

    def _claim(
        self, conn: Connection, request: CheckoutRequest, *, attempt: int, now: datetime
    ) -> Row[Any]:
        key = checkout_idempotency_key(
            request.booking.id, request.price, attempt, request.fingerprint
        )
        # Whole seconds: Stripe takes expires_at as an epoch second, and every caller adopting
        # this claim must send exactly the same value.
        expires_at = now.replace(microsecond=0) + self._config.checkout_expiry
        return sessions.claim(conn, request, key=key, expires_at=expires_at, now=now)

    def _delete_claim(self, key: str) -> None:
        self._tx(lambda conn: sessions.delete_claim(conn, key))

    def _set_claim_status(self, key: str, status: str) -> None:
        self._tx(lambda conn: sessions.set_claim_status(conn, key, status, self._clock()))

    def _finalize(self, claim: Row[Any], session: GatewayCheckoutSession) -> Row[Any]:
        """Turn the claim into the open session Stripe returned (idempotent across callers)."""
        row: Row[Any] = self._tx(
            lambda conn: sessions.finalize(conn, claim, session, self._clock())
        )
        return row

    def _mark(self, session_id: str, status: str) -> None:
        self._tx(lambda conn: sessions.mark(conn, session_id, status, self._clock()))

    def _tx(self, fn: Callable[[Connection], Any]) -> Any:
        return run_in_transaction(self._engine, fn, retries=self._config.db_retries)

    # -- Stripe ---------------------------------------------------------------------------------

    def _params(self, row: Row[Any], request: CheckoutRequest) -> CheckoutSessionParams:
        """The request for a claim: amounts and expiry from the row, so every caller sends the
        same bytes under the row's key."""
        currency = row.currency
        return CheckoutSessionParams(
            booking_id=row.booking_id,
            mentor_id=row.mentor_id,
            mentee_id=row.mentee_id,
            amount=Money(row.amount, currency),
            line_item_name=request.line_item_name,
            success_url=request.success_url,
            cancel_url=request.cancel_url,
            expires_at=row.expires_at,
            application_fee=(
                Money(row.platform_fee, currency) if request.application_fee is not None else None
            ),
            destination=request.destination,
        )

    def _create_remote(self, claim: Row[Any], request: CheckoutRequest) -> CheckoutSessionInfo:
        row = self._create_at_stripe(claim, request)
        return self._info(row, reused=False)

    def _create_at_stripe(self, claim: Row[Any], request: CheckoutRequest) -> Row[Any]:
        try:
            session = self._gateway.create_checkout_session(
                self._params(claim, request), idempotency_key=claim.idempotency_key
            )
        except IdempotencyConflictError:
            # Stripe holds something else under this key (the request that made it had other
            # redirect URLs): the key is spent. Keep the claim as "abandoned" so it still
            # counts as an attempt and the next call gets a fresh key instead of this conflict.
            self._set_claim_status(claim.idempotency_key, ABANDONED)
            raise
        except GatewayError as exc:
            if not outcome_unknown(exc):
                # Stripe refused: no session exists, and nothing may stay written locally.
                self._delete_claim(claim.idempotency_key)
            raise
        return self._finalize(claim, session)

    def _retire(self, row: Row[Any], request: CheckoutRequest) -> None:
        """Make sure a session that will not be reused can no longer be paid."""
        if row.status == CREATING:
            # Its creation's outcome is unknown: replay it (same key and terms) to learn the
            # session id, then expire that session. A refusal means it never existed.
            try:
                row = self._create_at_stripe(row, request)
            except GatewayError as exc:
                if outcome_unknown(exc):
                    raise
                return
        try:
            self._gateway.expire_checkout_session(
                row.id, idempotency_key=checkout_expire_idempotency_key(row.id)
            )
        except GatewayInvalidRequestError:
            # Not expirable: it already expired, or the mentee completed it.
            current = self._gateway.retrieve_checkout_session(row.id)
            status = current.status or EXPIRED
            if status == OPEN:
                raise
            if status == COMPLETE and current.payment_status == "unpaid":
                # Completed with a delayed method: paid only once the debit succeeds.
                status = AWAITING_PAYMENT
            self._mark(row.id, status)
            if status == AWAITING_PAYMENT:
                raise payment_pending(row) from None
            if status == COMPLETE:
                raise AlreadyPaidError(
                    f"a checkout session of booking {row.booking_id} was completed; its "
                    "payment is being confirmed",
                    booking_id=row.booking_id,
                    session_id=row.id,
                ) from None
            return
        self._mark(row.id, EXPIRED)

    def _info(self, row: Row[Any], *, reused: bool) -> CheckoutSessionInfo:
        if row.url is None:  # pragma: no cover - Stripe always returns a URL for hosted mode
            raise GatewayError(f"Stripe returned checkout session {row.id} without a URL")
        currency = row.currency
        return CheckoutSessionInfo(
            session_id=row.id,
            url=row.url,
            booking_id=row.booking_id,
            amount=Money(row.amount, currency),
            platform_fee=Money(row.platform_fee, currency),
            expires_at=row.expires_at,
            status=row.status,
            reused=reused,
        )
