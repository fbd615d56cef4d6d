"""CheckoutService: who may pay for a booking, and one Stripe Checkout Session per booking.

``create_session`` checks, in this order (so a stranger learns nothing about someone else's
booking): the booking exists (:class:`BookingNotFoundError`), the caller is its mentee
(:class:`NotBookingOwnerError`), it is payable (:class:`BookingNotPayableError`), it is not
already paid (:class:`AlreadyPaidError`), its price obeys Stripe's currency rules
(:class:`InvalidAmountError`), and no delayed payment of it is pending
(:class:`PaymentPendingError`). Only then is Stripe called.

One booking, one payment, also with delayed payment methods (SEPA, Bacs, ACH debits): their
session completes with ``payment_status: "unpaid"`` and the money arrives days later. The
webhook handlers keep the session row's status: ``awaiting_payment`` while such a debit is
pending, ``complete`` once paid, ``payment_failed`` when the debit failed. A booking with an
``awaiting_payment`` row cannot get a new session (whatever the row's ``expires_at``: Stripe's
expiry only applies to open sessions); ``payment_failed`` frees it like an expired session.

At most one open session per booking, even under concurrency. The local row of a session is
claimed *before* Stripe is called, under a unique idempotency key derived from the booking, the
attempt number and the request's amount/fee/destination (:func:`checkout_idempotency_key`):

1. An open session for the same booking, amount and terms that stays valid long enough is
   returned as is (``reused=True``).
2. Otherwise the caller inserts a ``creating`` claim row holding the key and ``expires_at``.
   A concurrent caller loses on the unique key and *adopts* the winner's row: it sends the
   byte-identical request (same key, same expiry), so Stripe's idempotency returns the one
   session both asked for. The row becomes ``open`` with Stripe's id and URL.
3. Any other open session of the booking (older price, about to expire) is expired at Stripe
   first, so a mentee can never pay twice through two tabs.

When Stripe refuses (a 4xx, a rate limit) the claim is deleted: nothing stays written. When the
outcome is unknown (connection lost, Stripe 5xx) the claim stays ``creating``, with no URL, so
the next call replays the identical request and Stripe returns the session if it was created;
deleting it would make the retry send a new expiry under the same key, which Stripe refuses.
When Stripe reports an idempotency conflict (the key's first request had other redirect URLs),
the key is spent: the claim is kept as ``abandoned`` so the next call uses a fresh key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import Engine, Row, and_, delete, select, update
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.bookings import PAYABLE_STATUSES, BookingInfo, BookingSource
from mentorpay.commission import Split
from mentorpay.config import MentorpayConfig
from mentorpay.db import check_id, insert_for, run_in_transaction
from mentorpay.errors import (
    AlreadyPaidError,
    BookingNotFoundError,
    BookingNotPayableError,
    ConflictError,
    GatewayError,
    GatewayInvalidRequestError,
    IdempotencyConflictError,
    InvalidAmountError,
    InvalidRequestError,
    NotBookingOwnerError,
    PaymentPendingError,
)
from mentorpay.gateway import (
    CheckoutSessionParams,
    GatewayCheckoutSession,
    PaymentGateway,
    checkout_expire_idempotency_key,
    checkout_idempotency_key,
    outcome_unknown,
)
from mentorpay.ledger import UNPAID_PAYMENT_STATUSES
from mentorpay.models import checkout_sessions_table as _sessions
from mentorpay.models import payments_table as _payments
from mentorpay.money import Money, check_charge_amount, minimum_charge_amount

__all__ = ["CheckoutService", "CheckoutSessionInfo"]


_CREATING = "creating"
_OPEN = "open"
_EXPIRED = "expired"
_ABANDONED = "abandoned"
_COMPLETE = "complete"
# Set by the webhook handlers while a delayed payment (bank debit) is pending.
_AWAITING_PAYMENT = "awaiting_payment"
# Rounds of "retire the stale session, then look again"; each round retires all it sees.
_MAX_ROUNDS: Final = 4


def _payment_pending(row: Row[Any]) -> PaymentPendingError:
    return PaymentPendingError(
        f"booking {row.booking_id} has a delayed payment pending (a bank debit through checkout "
        f"session {row.id}), which Stripe confirms within a few business days. The booking "
        "cannot be paid again meanwhile: if the debit succeeds it is paid; if it fails, a new "
        "checkout can be started.",
        booking_id=row.booking_id,
        session_id=row.id,
    )


def _default_line_item_name(booking: BookingInfo) -> str:
    return f"Booking {booking.id}"


@dataclass(frozen=True, slots=True)
class CheckoutSessionInfo:
    """The Checkout Session a mentee is sent to. ``reused``: an existing open session."""

    session_id: str
    url: str
    booking_id: str
    amount: Money
    platform_fee: Money
    expires_at: datetime
    status: str
    reused: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for adapters."""
        return {
            "session_id": self.session_id,
            "url": self.url,
            "booking_id": self.booking_id,
            "amount": self.amount.amount,
            "currency": self.amount.currency,
            "amount_display": str(self.amount),
            "expires_at": self.expires_at.isoformat(),
            "status": self.status,
            "reused": self.reused,
        }


@dataclass(frozen=True, slots=True)
class _Request:
    """Everything that decides the Stripe request, computed once per call."""

    booking: BookingInfo
    price: Money
    platform_fee: Money
    application_fee: Money | None
    destination: str | None
    line_item_name: str
    success_url: str
    cancel_url: str

    @property
    def fingerprint(self) -> str:
        """Digest of the terms besides amount that change the Stripe request."""
        terms = "|".join(
            (
                self.booking.mentee_id,
                self.booking.mentor_id,
                str(self.application_fee.amount if self.application_fee else ""),
                self.destination or "",
                self.line_item_name,
            )
        )
        return hashlib.sha256(terms.encode()).hexdigest()[:12]


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
        line_item_name: Callable[[BookingInfo], str] = _default_line_item_name,
    ) -> None:
        self._config = config
        self._engine = engine
        self._bookings = bookings
        self._gateway = gateway
        self._clock = clock
        self._reuse_margin = reuse_margin
        self._line_item_name = line_item_name

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
            plan = run_in_transaction(
                self._engine, lambda c: self._plan(c, request), retries=self._config.db_retries
            )
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

    # -- validation -----------------------------------------------------------------------------

    def _request(
        self, booking_id: str, user_id: str, success_url: str, cancel_url: str
    ) -> _Request:
        booking = self._bookings.get_booking(booking_id)
        if booking is not None:
            for name in ("id", "mentee_id", "mentor_id"):
                check_id(getattr(booking, name), field=name, label=f"booking {name}")
        if booking is None:
            raise BookingNotFoundError(f"there is no booking {booking_id}", booking_id=booking_id)
        if user_id != booking.mentee_id:
            raise NotBookingOwnerError(
                "only the mentee who made the booking can pay for it", booking_id=booking_id
            )
        if booking.status not in PAYABLE_STATUSES:
            raise BookingNotPayableError(
                f"booking {booking_id} is {booking.status}; only "
                f"{' or '.join(sorted(PAYABLE_STATUSES))} bookings can be paid",
                booking_id=booking_id,
                status=booking.status,
            )
        price = booking.price
        if price is None:
            raise BookingNotPayableError(
                f"booking {booking_id} has no price", booking_id=booking_id, reason="no_price"
            )
        check_charge_amount(price)
        minimum = minimum_charge_amount(price.currency)
        if minimum is not None and price.amount < minimum:
            raise InvalidAmountError(
                f"Stripe's minimum charge in {price.currency} is {Money(minimum, price.currency)}"
                f"; booking {booking_id} costs {price}",
                amount=price.amount,
                currency=price.currency,
                minimum=minimum,
                rule="minimum_charge",
            )
        for name, url in (("success_url", success_url), ("cancel_url", cancel_url)):
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidRequestError(f"{name} must be an absolute http(s) URL", field=name)
        split = self._config.policy_for(booking.mentor_id).split(price)
        application_fee: Money | None = None
        destination: str | None = None
        if self._config.connect_destination_charges:
            destination = booking.mentor_stripe_account
            if not destination:
                raise BookingNotPayableError(
                    f"the mentor of booking {booking_id} has no connected Stripe account to "
                    "receive the payment",
                    booking_id=booking_id,
                    reason="mentor_not_connected",
                )
            application_fee = split.platform_fee
        return _Request(
            booking=booking,
            price=price,
            platform_fee=split.platform_fee,
            application_fee=application_fee,
            destination=destination,
            line_item_name=self._line_item_name(booking),
            success_url=success_url,
            cancel_url=cancel_url,
        )

    # -- local state ----------------------------------------------------------------------------

    def _plan(self, conn: Connection, request: _Request) -> _Plan:
        """Inside one transaction: refuse if paid, else find a session to reuse or adopt,
        sessions to retire, or claim a new attempt."""
        booking = request.booking
        paid = conn.execute(
            select(_payments.c.payment_intent_id, _payments.c.status)
            .where(
                and_(
                    _payments.c.booking_id == booking.id,
                    # UNPAID_PAYMENT_STATUSES includes "failed", which no code writes to a
                    # payment row (issue 10): kept as is, no behaviour change here.
                    _payments.c.status.not_in(UNPAID_PAYMENT_STATUSES),
                )
            )
            .limit(1)
        ).first()
        if paid is not None:
            raise AlreadyPaidError(
                f"booking {booking.id} is already paid ({paid.status})",
                booking_id=booking.id,
                payment_intent_id=paid.payment_intent_id,
            )
        rows = conn.execute(
            select(_sessions)
            .where(_sessions.c.booking_id == booking.id)
            .order_by(_sessions.c.created_at, _sessions.c.id)
        ).all()
        pending = next((r for r in rows if r.status == _AWAITING_PAYMENT), None)
        if pending is not None:
            raise _payment_pending(pending)
        now = self._clock()
        match: Row[Any] | None = None
        stale: list[Row[Any]] = []
        for row in rows:
            if row.status not in (_OPEN, _CREATING) or row.expires_at <= now:
                continue
            if match is None and self._matches(row, request, now):
                match = row
            else:
                stale.append(row)
        if stale:
            return _Plan(stale=tuple(stale))
        if match is not None:
            return _Plan(reuse=match) if match.status == _OPEN else _Plan(adopt=match)
        claimed = self._claim(conn, request, attempt=len(rows), now=now)
        if claimed.status == _OPEN and claimed.url is not None:
            # Lost the race to a caller that already finished: its session is the answer.
            return _Plan(reuse=claimed)
        return _Plan(adopt=claimed)

    def _matches(self, row: Row[Any], request: _Request, now: datetime) -> bool:
        return (
            row.currency == request.price.currency
            and row.amount == request.price.amount
            and row.platform_fee == request.platform_fee.amount
            and row.mentee_id == request.booking.mentee_id
            and row.mentor_id == request.booking.mentor_id
            and row.idempotency_key.endswith(":" + request.fingerprint)
            and row.expires_at > now + self._reuse_margin
            and (row.status == _CREATING or row.url is not None)
        )

    def _claim(
        self, conn: Connection, request: _Request, *, attempt: int, now: datetime
    ) -> Row[Any]:
        key = checkout_idempotency_key(
            request.booking.id, request.price, attempt, request.fingerprint
        )
        # Whole seconds: Stripe takes expires_at as an epoch second, and every caller adopting
        # this claim must send exactly the same value.
        expires_at = now.replace(microsecond=0) + self._config.checkout_expiry
        conn.execute(
            insert_for(conn, _sessions)
            .values(
                id="claim:" + hashlib.sha256(key.encode()).hexdigest(),
                booking_id=request.booking.id,
                mentee_id=request.booking.mentee_id,
                mentor_id=request.booking.mentor_id,
                currency=request.price.currency,
                amount=request.price.amount,
                platform_fee=request.platform_fee.amount,
                status=_CREATING,
                url=None,
                idempotency_key=key,
                expires_at=expires_at,
                created_at=now,
                updated_at=now,
            )
            # A concurrent caller that claimed the same attempt wins; this one adopts its row.
            .on_conflict_do_nothing()
        )
        row = conn.execute(select(_sessions).where(_sessions.c.idempotency_key == key)).first()
        if row is None:  # pragma: no cover - the conflicting claim vanished in between
            raise ConflictError("a concurrent checkout attempt was withdrawn; try again")
        return row

    def _delete_claim(self, key: str) -> None:
        def do(conn: Connection) -> None:
            conn.execute(
                delete(_sessions).where(
                    and_(_sessions.c.idempotency_key == key, _sessions.c.status == _CREATING)
                )
            )

        run_in_transaction(self._engine, do, retries=self._config.db_retries)

    def _set_claim_status(self, key: str, status: str) -> None:
        def do(conn: Connection) -> None:
            conn.execute(
                update(_sessions)
                .where(and_(_sessions.c.idempotency_key == key, _sessions.c.status == _CREATING))
                .values(status=status, updated_at=self._clock())
            )

        run_in_transaction(self._engine, do, retries=self._config.db_retries)

    def _finalize(self, claim: Row[Any], session: GatewayCheckoutSession) -> Row[Any]:
        """Turn the claim into the open session Stripe returned (idempotent across callers)."""

        def do(conn: Connection) -> Row[Any]:
            now = self._clock()
            result = conn.execute(
                update(_sessions)
                .where(
                    and_(
                        _sessions.c.idempotency_key == claim.idempotency_key,
                        # Abandoned by a conflicting adopter while this call got the session.
                        _sessions.c.status.in_((_CREATING, _ABANDONED)),
                    )
                )
                .values(id=session.id, status=_OPEN, url=session.url, updated_at=now)
            )
            if result.rowcount == 0:
                # Another caller finalized it first, or a refusal elsewhere deleted the claim
                # while this call succeeded: record the session Stripe says exists.
                values = {c.name: claim._mapping[c.name] for c in _sessions.c}
                values.update(id=session.id, status=_OPEN, url=session.url, updated_at=now)
                conn.execute(insert_for(conn, _sessions).values(**values).on_conflict_do_nothing())
            row = conn.execute(select(_sessions).where(_sessions.c.id == session.id)).first()
            assert row is not None
            return row

        return run_in_transaction(self._engine, do, retries=self._config.db_retries)

    def _mark(self, session_id: str, status: str) -> None:
        def do(conn: Connection) -> None:
            conn.execute(
                update(_sessions)
                .where(and_(_sessions.c.id == session_id, _sessions.c.status == _OPEN))
                .values(status=status, updated_at=self._clock())
            )

        run_in_transaction(self._engine, do, retries=self._config.db_retries)

    # -- Stripe ---------------------------------------------------------------------------------

    def _params(self, row: Row[Any], request: _Request) -> CheckoutSessionParams:
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

    def _create_remote(self, claim: Row[Any], request: _Request) -> CheckoutSessionInfo:
        row = self._create_at_stripe(claim, request)
        return self._info(row, reused=False)

    def _create_at_stripe(self, claim: Row[Any], request: _Request) -> Row[Any]:
        try:
            session = self._gateway.create_checkout_session(
                self._params(claim, request), idempotency_key=claim.idempotency_key
            )
        except IdempotencyConflictError:
            # Stripe holds something else under this key (the request that made it had other
            # redirect URLs): the key is spent. Keep the claim as "abandoned" so it still
            # counts as an attempt and the next call gets a fresh key instead of this conflict.
            self._set_claim_status(claim.idempotency_key, _ABANDONED)
            raise
        except GatewayError as exc:
            if not outcome_unknown(exc):
                # Stripe refused: no session exists, and nothing may stay written locally.
                self._delete_claim(claim.idempotency_key)
            raise
        return self._finalize(claim, session)

    def _retire(self, row: Row[Any], request: _Request) -> None:
        """Make sure a session that will not be reused can no longer be paid."""
        if row.status == _CREATING:
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
            status = current.status or _EXPIRED
            if status == _OPEN:
                raise
            if status == _COMPLETE and current.payment_status == "unpaid":
                # Completed with a delayed method: paid only once the debit succeeds.
                status = _AWAITING_PAYMENT
            self._mark(row.id, status)
            if status == _AWAITING_PAYMENT:
                raise _payment_pending(row) from None
            if status == _COMPLETE:
                raise AlreadyPaidError(
                    f"a checkout session of booking {row.booking_id} was completed; its "
                    "payment is being confirmed",
                    booking_id=row.booking_id,
                    session_id=row.id,
                ) from None
            return
        self._mark(row.id, _EXPIRED)

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
