"""The webhook processor: exactly-once ledger effects from Stripe's at-least-once deliveries.

One event goes ``size check -> verify -> parse -> claim -> dispatch -> commit -> callbacks``:

1. **Size**: a body above ``config.max_payload_bytes`` is refused before anything reads it (413).
2. **Verify**: ``stripe.WebhookSignature.verify_header`` against each configured secret in turn,
   with the tolerance passed explicitly. ``construct_event`` is not used: it builds SDK objects
   (hundreds of microseconds) that mentorpay would throw away.
3. **Parse**: ``EventEnvelope.model_validate_json`` once; each handler then validates only the
   fields it reads from ``data.object`` into a small pydantic model (unknown fields ignored).
4. **Duplicate peek**: one indexed read of the inbox by event id, outside any write transaction.
   An event already ``processed`` or ``ignored`` is answered ``already_processed`` right there.
   The peek, the claim, the advisory lock and the deferred check run on the bare DBAPI
   connection; everything else, and every ledger posting, is SQLAlchemy Core.
5. **Claim** (inside one transaction, retried on serialization failures and deadlocks):
   ``INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING id``. ``RETURNING`` matters: psycopg
   reports a rowcount of -1 for ``ON CONFLICT DO NOTHING``. A concurrent duplicate blocks on the
   unique index and then loses. A row left ``failed`` or ``deferred`` by an earlier attempt is
   re-claimed with a conditional ``UPDATE ... WHERE status IN ('failed', 'deferred')``, so a retry
   is processed again but two retries cannot both win.
6. **Dispatch**: the handler for the event type applies ledger postings through ``conn`` (the
   ledger never commits), and reports effects. The inbox row is written optimistically as
   ``processed`` by the claim, so the common case needs no second inbox statement.
7. **Commit**, then the host's after-commit callbacks, once per business effect.

Exactly-once rests on database facts, not on the peek: the inbox's unique event id (one
delivery wins), the payments' unique intent id (one of the sibling events records a payment:
``checkout.session.completed``, ``checkout.session.async_payment_succeeded``,
``payment_intent.succeeded``), and the ledger's unique business keys (a refund is keyed by the
cumulative amount refunded, a dispute by its id and phase).

Out of order: a refund or dispute for a payment not recorded yet is stored ``deferred`` with
``waiting_for`` set to the payment intent, and answered 200. When the payment is recorded, the
same transaction applies the rows waiting for it (in the order Stripe created the events), up
to ``drain_batch`` of them; the rest follow right after commit in transactions of the same size.
On PostgreSQL at READ COMMITTED a refund could decide "not recorded yet" while the payment's
transaction is in flight, each invisible to the other; both sides therefore take a transaction-
scoped advisory lock on the payment intent before that decision, so one of them always sees the
other. SQLite needs nothing (``BEGIN IMMEDIATE`` serializes writers); SERIALIZABLE databases
(CockroachDB) abort one side of that write skew and the retry sees the other. Each deferred
event is applied inside a savepoint: one that fails is marked ``failed`` (replayable) instead of
blocking its payment forever. Events deferred on a payment that turns out not to be
mentorpay's (no booking metadata) are marked ``ignored``; a refund of such a payment arriving
after it stays ``deferred`` (``list_events(status="deferred")`` shows them).

Origin: before any handler runs, an event from the other Stripe mode (``livemode`` differing
from ``config.livemode``) or from a connected account (``account`` set) is stored ``ignored``
with its reason and moves no money (``account.updated`` excepted: it moves none anyway).

Payments: ``checkout.session.completed`` credits only when ``payment_status`` is ``paid`` (an
``unpaid`` session marks mentorpay's row ``awaiting_payment`` and waits for
``async_payment_succeeded``; ``async_payment_failed`` marks it ``payment_failed``). Metadata only
locates the booking: who is credited and how much come from mentorpay's own checkout row, else
from the host's ``BookingSource`` (:mod:`mentorpay.payment_truth`). A payment that disagrees is
recorded on the platform's suspense account and answered ``needs_review``; one that names no
booking and matches no checkout row is answered ``ignored``. ``payment_failed`` effects are
sent once per failure event (each failed attempt of a payment intent is its own event).

Disputes (``charge.dispute.closed``), following Stripe's statuses, each dispute id with its own
hold: ``won`` releases that hold; ``lost`` reverses the disputed amount like a refund;
``warning_closed`` (an inquiry that never became a chargeback) and ``prevented`` (no funds were
withdrawn) release the hold like a win. A ``closed`` event arriving before its ``created`` event
first opens the dispute, so the late ``created`` finds it open and changes nothing.
``charge.dispute.funds_withdrawn`` / ``funds_reinstated`` are recorded and ignored: the hold at
``created`` and the outcome at ``closed`` already account for the money they describe.

Failures: any exception in a handler rolls back the whole transaction. A typed
:class:`~mentorpay.errors.MentorpayError` (a field the handler cannot use, a refund in another
currency than its payment) is about the event itself, so retrying cannot help: the event is
recorded ``rejected`` with its reason, answered 200 so Stripe stops retrying, and an
``event_rejected`` effect tells the host; ``replay`` applies it after a fix. A transient
failure (busy, deadlock, lost database) or an unexpected exception (a bug a deploy may fix) is
recorded ``failed`` in a second, small transaction and answered 5xx so Stripe retries
(:class:`~mentorpay.errors.WebhookProcessingError`, 500).

After-commit callbacks (:meth:`WebhookProcessor.on`) run in the calling thread after commit,
never for a duplicate or a rolled-back attempt. The effects they receive are written to the
outbox (:mod:`mentorpay.outbox`) in the event's transaction, so a crash between commit and
callback, or a raising callback (logged, changes nothing), leaves them pending for
``outbox.deliver_pending()`` / ``mentorpay outbox run``: at least once, each with a stable
``Effect.id`` to deduplicate on.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final, Literal, NamedTuple, NoReturn, TypeVar

import stripe
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
)
from sqlalchemy import Engine, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.bookings import BookingInfo, BookingSource
from mentorpay.config import MentorpayConfig
from mentorpay.db import (
    driver_execute,
    is_retryable,
    placeholder,
    raw_connection,
    read_connection,
    run_in_transaction,
    time_binder,
)
from mentorpay.errors import (
    ConfigurationError,
    DatabaseBusyError,
    InvalidAmountError,
    InvalidRequestError,
    MentorpayError,
    NotFoundError,
    PayloadTooLargeError,
    PaymentNotFoundError,
    WebhookPayloadError,
    WebhookProcessingError,
    WebhookSignatureError,
)
from mentorpay.events import (
    EFFECT_KINDS,
    Effect,
    EffectKind,
    EventEnvelope,
    Handler,
    HandlerResult,
    HandlerStatus,
)
from mentorpay.ledger import UNPAID_PAYMENT_STATUSES, LedgerService
from mentorpay.models import checkout_sessions_table as _checkouts
from mentorpay.models import payments_table as _payments
from mentorpay.models import webhook_events_table as _inbox
from mentorpay.money import Money
from mentorpay.outbox import Outbox, with_ids
from mentorpay.payment_truth import Claim, Expected, disagreements

__all__ = [
    "HANDLED_EVENT_TYPES",
    "InboxEvent",
    "InboxStatus",
    "WebhookProcessor",
    "WebhookResult",
    "WebhookStatus",
]

logger = logging.getLogger("mentorpay.webhooks")

WebhookStatus = Literal[
    "success",
    "already_processed",
    "payment_already_processed",
    "ignored",
    "deferred",
    "needs_review",
    "rejected",
]
InboxStatus = Literal["processed", "ignored", "deferred", "failed", "rejected"]
INBOX_STATUSES: Final[tuple[InboxStatus, ...]] = (
    "processed",
    "ignored",
    "deferred",
    "failed",
    "rejected",
)
#: Event types that move no money, so they are accepted from connected accounts too.
_NO_MONEY_TYPES: Final = frozenset({"account.updated"})

#: Event types with a built-in handler; every other type is recorded and answered ``ignored``.
HANDLED_EVENT_TYPES: Final[tuple[str, ...]] = (
    "charge.dispute.closed",
    "charge.dispute.created",
    "charge.refunded",
    "checkout.session.async_payment_failed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.completed",
    "checkout.session.expired",
    "payment_intent.payment_failed",
    "payment_intent.succeeded",
)

_INBOX_STATUS: Final[dict[HandlerStatus, InboxStatus]] = {
    "success": "processed",
    "payment_already_processed": "processed",
    "ignored": "ignored",
    "deferred": "deferred",
    "needs_review": "processed",
}
#: Statuses a new delivery (or a replay) may claim again; processed and ignored are final.
_RECLAIMABLE: Final = ("failed", "deferred", "rejected")
_FINAL: Final = frozenset({"processed", "ignored"})
_ID_MAX = 255  # the width of every id column (Stripe ids are at most 255 characters)
_TYPE_MAX = 128
_ERROR_MAX = 2000
# Stripe amounts are far below this; the bound keeps a hostile body from overflowing BIGINT.
_AMOUNT_MAX = 2**53
#: ``conn.info`` key: payment intents whose drain stopped at the batch size, with the last row.
_MORE_DEFERRED = "mentorpay_more_deferred"


M = TypeVar("M", bound=BaseModel)


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What happened to one delivery. Every status is answered HTTP 200.

    ``success``: applied. ``already_processed``: this event id was handled before.
    ``payment_already_processed``: a sibling event already recorded this payment. ``ignored``:
    nothing for mentorpay to do (type not handled, not a mentorpay payment, another Stripe mode
    or a connected account's event). ``deferred``: arrived before the payment it refers to;
    applied automatically when that is recorded. ``needs_review``: the payment disagreed with
    its booking; its money sits on the suspense account until an operator resolves it.
    ``rejected``: the event can never apply as it is (recorded with its reason; replayable).
    """

    status: WebhookStatus
    event_id: str | None
    event_type: str | None
    http_status: int = 200
    #: Business effects committed by this delivery (also sent to the after-commit callbacks).
    effects: tuple[Effect, ...] = field(default=(), compare=False)
    #: For ``deferred``: the payment intent the event waits for.
    waiting_for: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON body an adapter returns with ``http_status``."""
        return {"status": self.status, "event_id": self.event_id, "event_type": self.event_type}


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """One stored event, as ``mentorpay events list`` shows it (without the payload)."""

    id: int
    event_id: str
    type: str
    status: str
    waiting_for: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    processed_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, timestamps in ISO 8601."""
        return {
            "id": self.id,
            "event_id": self.event_id,
            "type": self.type,
            "status": self.status,
            "waiting_for": self.waiting_for,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(),
            "processed_at": self.processed_at.isoformat() if self.processed_at else None,
        }


@dataclass(slots=True)
class _Outcome:
    """What one event transaction committed (built afresh on every retry of the transaction)."""

    status: WebhookStatus
    effects: list[Effect]
    waiting_for: str | None = None
    #: Drains cut at ``drain_batch``: waiting_for -> last row applied; continued after commit.
    more_deferred: dict[str, int] = field(default_factory=dict)


# -- the fields mentorpay reads from Stripe objects ---------------------------------------------


def _clean_id(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refusing it here keeps a hostile body a 400, not a 500.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _expanded_id(value: Any) -> Any:
    # Events never expand references, but objects fetched from the API by reconciliation may.
    if isinstance(value, Mapping):
        return value.get("id")
    return value


StripeId = Annotated[str, Field(min_length=1, max_length=_ID_MAX), AfterValidator(_clean_id)]
StripeRef = Annotated[StripeId | None, BeforeValidator(_expanded_id)]
Amount = Annotated[StrictInt, Field(ge=0, le=_AMOUNT_MAX)]


class _StripeObject(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: StripeId
    metadata: dict[str, str] | None = None


class _CheckoutSessionObject(_StripeObject):
    mode: str | None = None
    payment_status: str | None = None
    payment_intent: StripeRef = None
    amount_total: Amount | None = None
    currency: str | None = None


class _TransferData(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    destination: StripeRef = None


class _ChargeList(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    data: list[_StripeObject] = Field(default_factory=list, max_length=100)


class _PaymentIntentObject(_StripeObject):
    amount: Amount
    amount_received: Amount | None = None
    currency: str
    latest_charge: StripeRef = None
    #: API versions before 2022-11-15 list the charges instead of naming the latest one.
    charges: _ChargeList | None = None
    last_payment_error: dict[str, Any] | None = None
    transfer_data: _TransferData | None = None
    application_fee_amount: Amount | None = None


class _ChargeObject(_StripeObject):
    payment_intent: StripeRef = None
    amount_refunded: Amount
    currency: str


class _DisputeObject(_StripeObject):
    charge: StripeRef = None
    payment_intent: StripeRef = None
    amount: Amount
    currency: str
    status: str


class _CheckoutTerms(NamedTuple):
    """What mentorpay's checkout row asked Stripe to charge (see ``_checkout_terms``)."""

    id: str
    booking_id: str
    mentor_id: str
    mentee_id: str
    currency: str
    amount: int
    platform_fee: int


@dataclass(frozen=True, slots=True)
class _Booking:
    """The ids a payment's metadata names. They only locate the booking: who is credited and
    how much come from mentorpay's checkout row or the host's booking (payment_truth)."""

    booking_id: str
    mentor_id: str
    mentee_id: str


def _booking(metadata: Mapping[str, str] | None, env: EventEnvelope) -> _Booking | None:
    """The booking named in the metadata Checkout set, or None if this is not mentorpay's."""
    if not metadata:
        return None
    values = [metadata.get(k) for k in ("booking_id", "mentor_id", "mentee_id")]
    if not all(values):
        return None
    for value in values:
        assert value is not None
        if len(value) > _ID_MAX or "\x00" in value:
            raise WebhookPayloadError(
                f"{env.type} event {env.id}: booking metadata value is not a usable id",
                event_id=env.id,
                event_type=env.type,
            )
    booking_id, mentor_id, mentee_id = (str(v) for v in values)
    return _Booking(booking_id, mentor_id, mentee_id)


def _fee(amount: int | None, gross: Money, env: EventEnvelope) -> Money | None:
    """The application fee Stripe kept on a destination charge, checked against the gross."""
    if amount is None:
        return None
    if amount > gross.amount:
        raise WebhookPayloadError(
            f"{env.type} event {env.id}: application fee {amount} exceeds the payment {gross}",
            event_id=env.id,
            event_type=env.type,
        )
    return Money(amount, gross.currency)


def _parse_object(model: type[M], env: EventEnvelope) -> M:
    try:
        return model.model_validate(env.data.object)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "object" for e in exc.errors()})
        raise WebhookPayloadError(
            f"{env.type} event {env.id}: data.object lacks or garbles {', '.join(fields)}",
            event_id=env.id,
            event_type=env.type,
            fields=fields,
        ) from None


def _money(amount: int, currency: str | None, env: EventEnvelope) -> Money:
    try:
        if currency is None:
            raise InvalidAmountError("no currency")
        return Money(amount, currency)
    except InvalidAmountError as exc:
        raise WebhookPayloadError(
            f"{env.type} event {env.id}: unusable amount or currency ({exc.message})",
            event_id=env.id,
            event_type=env.type,
        ) from None


def _lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for a payment intent (collisions only cost a wait)."""
    digest = hashlib.blake2b(f"mentorpay:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _verifies(payload: str, header: str, secret: str, tolerance: int | None) -> bool:
    """Whether ``header`` signs ``payload`` with ``secret``; any malformed header is False.

    The SDK raises TypeError from ``hmac.compare_digest`` on non-ASCII signatures and may raise
    ValueError on odd timestamps: to an unauthenticated caller these are all just "not signed".
    """
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=tolerance)
    except (stripe.SignatureVerificationError, TypeError, ValueError, UnicodeError):
        return False
    return True


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _ERROR_MAX else text[: _ERROR_MAX - 1] + "…"


# -- the processor ------------------------------------------------------------------------------


class WebhookProcessor:
    """Verify, parse and apply Stripe events exactly once. Thread-safe; share one per process.

    ``register`` and ``on`` are meant for start-up, before deliveries arrive.
    """

    #: Deferred events applied per transaction (the payment's own, then follow-ups).
    drain_batch: int = 100

    def __init__(
        self,
        config: MentorpayConfig,
        engine: Engine,
        ledger: LedgerService,
        *,
        bookings: BookingSource | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not config.webhook_secrets:  # the config refuses this too; never accept unsigned
            raise ConfigurationError("no webhook secret configured: refusing unsigned webhooks")
        self._config = config
        self._engine = engine
        self._ledger = ledger
        #: The host's bookings: the truth for payments mentorpay did not create a session for.
        #: Without one, such payments are parked for review (metadata alone is never trusted).
        self._bookings = bookings
        self._clock = clock
        self._dialect = engine.dialect.name
        self._retries = config.db_retries
        self._handlers: dict[str, Handler] = {
            "checkout.session.completed": self._on_checkout_completed,
            "checkout.session.async_payment_succeeded": self._on_checkout_async_succeeded,
            "checkout.session.async_payment_failed": self._on_checkout_async_failed,
            "checkout.session.expired": self._on_checkout_expired,
            "payment_intent.succeeded": self._on_payment_intent_succeeded,
            "payment_intent.payment_failed": self._on_payment_intent_failed,
            "charge.refunded": self._on_charge_refunded,
            "charge.dispute.created": self._on_dispute_created,
            "charge.dispute.closed": self._on_dispute_closed,
        }
        #: Effects are stored here in the event's transaction and delivered after commit.
        self.outbox = Outbox(engine, clock=clock, retries=self._retries)
        self._build_statements()

    # -- registration ---------------------------------------------------------------------------

    def register(self, event_type: str, handler: Handler, *, replace: bool = False) -> None:
        """Handle ``event_type`` with ``handler`` (e.g. ``transfer.*`` from the payout service).

        The handler runs inside the event's transaction and must not commit. Registering a type
        that already has a handler is refused unless ``replace=True``.
        """
        if not event_type or len(event_type) > _TYPE_MAX:
            raise ConfigurationError(f"not an event type: {event_type!r}")
        if event_type in self._handlers and not replace:
            raise ConfigurationError(
                f"{event_type} already has a handler; pass replace=True to override it"
            )
        self._handlers[event_type] = handler

    def on(self, effect_kind: EffectKind, callback: Callable[[Effect], None]) -> None:
        """Call ``callback(effect)`` after commit, once per committed effect of that kind."""
        if effect_kind not in EFFECT_KINDS:
            raise ConfigurationError(
                f"unknown effect kind {effect_kind!r}; expected one of {', '.join(EFFECT_KINDS)}"
            )
        self.outbox.on(effect_kind, callback)

    # -- entry points ---------------------------------------------------------------------------

    def process(self, raw_body: bytes, signature_header: str | None) -> WebhookResult:
        """Verify and apply one delivery: the raw request body and its Stripe-Signature header.

        Raises PayloadTooLargeError (413), WebhookSignatureError / WebhookPayloadError (400),
        WebhookProcessingError (500: rolled back, Stripe retries) or DatabaseBusyError (503).
        """
        limit = self._config.max_payload_bytes
        if len(raw_body) > limit:
            raise PayloadTooLargeError(
                f"webhook body of {len(raw_body)} bytes exceeds the {limit}-byte limit",
                size=len(raw_body),
                limit=limit,
            )
        text = self._decode(raw_body)
        self._verify(text, signature_header)
        return self._handle_text(text)

    def process_trusted(self, event: Mapping[str, Any] | bytes | str) -> WebhookResult:
        """Apply an event without a signature, for replay and reconciliation only.

        ``event`` is a Stripe-shaped event: a mapping (as reconciliation builds from API
        objects) or its JSON text. Never pass a request body here: use :meth:`process`.
        """
        if isinstance(event, bytes | bytearray):
            text = self._decode(bytes(event))
        elif isinstance(event, str):
            text = event
        else:
            try:
                text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                raise WebhookPayloadError(f"event is not JSON-serializable: {exc}") from None
        return self._handle_text(text)

    def replay(self, event_id: str) -> WebhookResult:
        """Run a stored event through the same path again (``mentorpay events replay --id``).

        Events stored as ``failed`` or ``deferred`` are applied again; ``processed`` and
        ``ignored`` ones answer ``already_processed``. Raises NotFoundError for an unknown id.
        """
        with read_connection(self._engine) as conn:
            payload = conn.execute(
                select(_inbox.c.payload).where(_inbox.c.event_id == event_id)
            ).scalar()
        if payload is None:
            raise NotFoundError(f"no stored webhook event {event_id!r}", event_id=event_id)
        return self.process_trusted(payload)

    def replay_failed(self, *, include_deferred: bool = False) -> list[WebhookResult]:
        """Replay every ``failed`` event (and ``deferred`` ones if asked), oldest first.

        An event that fails again is logged, keeps its ``failed`` row (attempts and last_error
        updated) and is left out of the returned list; see ``list_events(status="failed")``.
        """
        statuses = ("failed", "deferred") if include_deferred else ("failed",)
        with read_connection(self._engine) as conn:
            ids = list(
                conn.execute(
                    select(_inbox.c.event_id)
                    .where(_inbox.c.status.in_(statuses))
                    .order_by(_inbox.c.id)
                ).scalars()
            )
        results: list[WebhookResult] = []
        for event_id in ids:
            try:
                results.append(self.replay(event_id))
            except (WebhookProcessingError, WebhookPayloadError, DatabaseBusyError) as exc:
                logger.warning("replay of %s failed again: %s", event_id, exc.message)
        return results

    def list_events(
        self, status: str | None = None, limit: int = 100, *, event_type: str | None = None
    ) -> list[InboxEvent]:
        """Stored events, newest first, optionally only those with one status and/or type."""
        if not 1 <= limit <= 10_000:
            raise InvalidRequestError("limit must be between 1 and 10000", limit=limit)
        if status is not None and status not in INBOX_STATUSES:
            raise InvalidRequestError(
                f"status must be one of {', '.join(INBOX_STATUSES)}", status=status
            )
        query = select(
            _inbox.c.id,
            _inbox.c.event_id,
            _inbox.c.type,
            _inbox.c.status,
            _inbox.c.waiting_for,
            _inbox.c.attempts,
            _inbox.c.last_error,
            _inbox.c.created_at,
            _inbox.c.processed_at,
        )
        if status is not None:
            query = query.where(_inbox.c.status == status)
        if event_type is not None:
            query = query.where(_inbox.c.type == event_type)
        query = query.order_by(_inbox.c.id.desc()).limit(limit)
        with read_connection(self._engine) as conn:
            rows = conn.execute(query).all()
        return [InboxEvent(**row._mapping) for row in rows]

    def apply_deferred(self, waiting_for: str) -> list[Effect]:
        """Apply the deferred events waiting for ``waiting_for``, ``drain_batch`` per transaction.

        Recording a payment already does this for its payment intent; services whose handlers
        defer on something else (a transfer, say) call this after creating it. Callbacks run.
        """
        return self._drain_from(waiting_for, 0)

    def _drain_from(self, waiting_for: str, after: int) -> list[Effect]:
        """Drain deferred rows past ``after`` in bounded transactions, delivering each batch."""
        effects: list[Effect] = []
        cursor: int | None = after
        while cursor is not None:
            batch, cursor = run_in_transaction(
                self._engine,
                functools.partial(self._drain_batch, waiting_for=waiting_for, after=cursor),
                retries=self._retries,
            )
            self.outbox.deliver(batch)
            effects.extend(batch)
        return effects

    def _drain_batch(
        self, conn: Connection, *, waiting_for: str, after: int
    ) -> tuple[list[Effect], int | None]:
        """One bounded drain transaction: its effects and where to continue (None: done)."""
        conn.info.pop(_MORE_DEFERRED, None)
        self._serialize_on(conn, waiting_for)
        batch = self._drain(conn, waiting_for, self._clock(), after=after)
        self.outbox.stage(conn, batch)
        more: dict[str, int] = conn.info.pop(_MORE_DEFERRED, None) or {}
        return batch, more.get(waiting_for)

    def defer_until_recorded(
        self, conn: Connection, payment_intent_id: str, apply: Callable[[], HandlerResult]
    ) -> HandlerResult:
        """For handlers registered from other modules: ``apply()`` if the payment is recorded,
        else answer ``deferred`` on it (applied when it is recorded), or ``ignored`` if the
        payment is known not to be mentorpay's. ``apply`` raises PaymentNotFoundError when the
        payment is missing."""
        return self._defer(conn, payment_intent_id, apply)

    # -- the pipeline ---------------------------------------------------------------------------

    @staticmethod
    def _decode(raw_body: bytes) -> str:
        try:
            return raw_body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookPayloadError(
                f"webhook body is not UTF-8 (invalid byte at offset {exc.start})",
                offset=exc.start,
            ) from None

    def _verify(self, payload: str, header: str | None) -> None:
        if header is None or not header.strip():
            self._reject("missing_header", "no Stripe-Signature header", None)
        assert header is not None
        tolerance = self._config.webhook_tolerance
        for secret in self._config.webhook_secrets:
            if _verifies(payload, header, secret.get_secret_value(), tolerance):
                return
        self._diagnose(payload, header)

    def _diagnose(self, payload: str, header: str) -> NoReturn:
        """Every secret failed: work out why, for the log. Never logs a secret or signature."""
        timestamp: int | None = None
        has_v1 = False
        for item in header.split(","):
            key, _, value = item.strip().partition("=")
            if key == "t" and timestamp is None:
                with contextlib.suppress(ValueError):
                    timestamp = int(value)
            elif key == "v1" and value:
                has_v1 = True
        if timestamp is None:
            self._reject("malformed_header", "the header has no t=<timestamp>", None)
        if not has_v1:
            self._reject("no_v1_signature", "the header carries no v1 signature", timestamp)
        assert timestamp is not None
        if timestamp < time.time() - self._config.webhook_tolerance:
            # Stripe's SDK checks the signature before the timestamp: a stale delivery signed
            # with a known secret verifies without the tolerance. That tells clock skew (or a
            # replayed request) apart from a wrong secret.
            for secret in self._config.webhook_secrets:
                if not _verifies(payload, header, secret.get_secret_value(), None):
                    continue
                self._reject(
                    "timestamp_outside_tolerance",
                    "the signature is valid but its timestamp is older than the tolerance "
                    "(clock skew, or a replayed request)",
                    timestamp,
                )
        self._reject(
            "no_secret_matched",
            "no configured secret produced this signature (wrong whsec_ secret for this "
            "endpoint, or the body was modified or re-serialized before verification)",
            timestamp,
        )

    def _reject(self, reason: str, detail: str, timestamp: int | None) -> NoReturn:
        age = None if timestamp is None else int(time.time()) - timestamp
        logger.warning(
            "webhook signature rejected: %s (%s); timestamp age %s s, tolerance %s s, "
            "%d secret(s) tried",
            reason,
            detail,
            age,
            self._config.webhook_tolerance,
            len(self._config.webhook_secrets),
        )
        raise WebhookSignatureError(
            f"webhook signature verification failed: {detail}", reason=reason
        )

    @staticmethod
    def _parse(text: str) -> EventEnvelope:
        try:
            env = EventEnvelope.model_validate_json(text)
        except ValidationError as exc:
            errors = exc.errors()
            if any(e["type"] == "json_invalid" for e in errors):
                raise WebhookPayloadError("webhook body is not valid JSON") from None
            fields = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in errors})
            raise WebhookPayloadError(
                f"webhook body is not a Stripe event: missing or invalid {', '.join(fields)}",
                fields=fields,
            ) from None
        if not 0 < len(env.id) <= _ID_MAX or "\x00" in env.id:
            raise WebhookPayloadError("event id is empty, too long or contains NUL")
        if not 0 < len(env.type) <= _TYPE_MAX or "\x00" in env.type:
            raise WebhookPayloadError("event type is empty, too long or contains NUL")
        return env

    def _handle_text(self, text: str) -> WebhookResult:
        env = self._parse(text)
        if self._peek(env.id) in _FINAL:
            return WebhookResult("already_processed", env.id, env.type)
        try:
            outcome = run_in_transaction(
                self._engine, lambda conn: self._apply(conn, env, text), retries=self._retries
            )
        except DatabaseBusyError as exc:
            self._record_failure(env, text, exc)
            raise
        except MentorpayError as exc:
            # A typed error from a handler is about the event itself (another currency than
            # its payment, a field it cannot use): retrying it for three days changes nothing.
            return self._reject_event(env, text, exc)
        except Exception as exc:
            self._record_failure(env, text, exc)
            raise WebhookProcessingError(
                f"processing {env.type} event {env.id} failed ({type(exc).__name__}); "
                "nothing was applied and Stripe will retry",
                event_id=env.id,
                event_type=env.type,
            ) from exc
        self._run_callbacks(outcome.effects)
        for waiting_for, after in outcome.more_deferred.items():
            try:
                self._drain_from(waiting_for, after)
            except Exception:
                # The payment is committed; what is left stays deferred (events list --stale,
                # replay_failed(include_deferred=True) applies it).
                logger.exception("continuing the deferred events of %s failed", waiting_for)
        return WebhookResult(
            outcome.status,
            env.id,
            env.type,
            effects=tuple(outcome.effects),
            waiting_for=outcome.waiting_for,
        )

    def _peek(self, event_id: str) -> str | None:
        """The stored status of an event, read outside any transaction (cheap duplicates).

        Uses the pooled DBAPI connection directly: through SQLAlchemy, SQLite's ``begin``
        hook would take the write lock (BEGIN IMMEDIATE) for this read, and psycopg would open
        a transaction. A stale answer is harmless: the claim's unique constraint decides.
        """
        raw = raw_connection(self._engine)  # a refused connection: DatabaseUnavailableError
        try:
            driver = raw.driver_connection
            autocommit = self._dialect == "postgresql"
            if autocommit:
                driver.autocommit = True  # type: ignore[union-attr]
            try:
                cursor = raw.cursor()
                try:
                    cursor.execute(self._peek_sql, (event_id,))
                    row = cursor.fetchone()
                finally:
                    cursor.close()
            finally:
                if autocommit:
                    driver.autocommit = False  # type: ignore[union-attr]
        except Exception:
            # A failed read must never fail the delivery: the transaction decides anyway.
            logger.debug("duplicate peek failed; falling back to the claim", exc_info=True)
            raw.invalidate()
            return None
        finally:
            raw.close()
        return None if row is None else str(row[0])

    def _apply(self, conn: Connection, env: EventEnvelope, text: str) -> _Outcome:
        conn.info.pop(_MORE_DEFERRED, None)  # left by an earlier attempt on this connection
        now = self._clock()
        stamp = self._bind_time(now) if self._bind_time is not None else now
        claimed = driver_execute(conn, self._claim_sql, (env.id, env.type, text, stamp, stamp))
        row_id = claimed[0][0] if claimed else None
        if row_id is None:
            row_id = conn.execute(self._reclaim, {"b_event_id": env.id, "b_now": now}).scalar()
            if row_id is None:
                return _Outcome("already_processed", [])
        handler = self._handlers.get(env.type)
        refusal = self._origin_refusal(env) if handler is not None else None
        if handler is None:
            result = HandlerResult("ignored")
        elif refusal is not None:
            logger.warning("webhook %s (%s) ignored: %s", env.id, env.type, refusal)
            result = HandlerResult("ignored", reason=refusal)
        else:
            result = handler(conn, env)
        status = _INBOX_STATUS[result.status]
        if status != "processed" or result.reason is not None:
            # The claim wrote "processed" optimistically; only other outcomes cost a statement.
            conn.execute(
                self._finish,
                {
                    "b_id": row_id,
                    "b_status": status,
                    "b_waiting_for": result.waiting_for,
                    "b_processed_at": None if status == "deferred" else now,
                    "b_last_error": result.reason,
                },
            )
        effects = with_ids(env.id, result.effects)
        self.outbox.stage(conn, effects)
        more: dict[str, int] = conn.info.pop(_MORE_DEFERRED, None) or {}
        return _Outcome(result.status, effects, result.waiting_for, more)

    def _origin_refusal(self, env: EventEnvelope) -> str | None:
        """Why an event may not move money here: another Stripe mode, or a connected account.

        Money moves only on the platform account's own events in the configured mode: a test
        card must never credit live money, and a connected account (a mentor's Standard account
        sending to a Connect endpoint) must never vouch for the platform's payments.
        """
        if env.type in _NO_MONEY_TYPES:
            return None
        if env.livemode != self._config.livemode:
            mode = "live" if self._config.livemode else "test"
            return f"livemode={str(env.livemode).lower()} event reached a {mode}-mode configuration"
        if env.account is not None:
            return f"event from connected account {env.account}, not the platform account"
        return None

    def _reject_event(self, env: EventEnvelope, text: str, exc: MentorpayError) -> WebhookResult:
        """Record an event that can never apply as ``rejected`` (200: Stripe stops retrying).

        Its effects were rolled back; it stays replayable (``events replay --id``) after a fix,
        and an ``event_rejected`` effect tells the host.
        """
        effects = with_ids(
            env.id,
            [
                Effect(
                    "event_rejected",
                    {
                        "event_id": env.id,
                        "event_type": env.type,
                        "error": type(exc).__name__,
                        "reason": exc.message,
                    },
                )
            ],
        )
        self._record_failure(env, text, exc, status="rejected", effects=effects)
        self._run_callbacks(effects)
        return WebhookResult("rejected", env.id, env.type, effects=tuple(effects))

    def _record_failure(
        self,
        env: EventEnvelope,
        text: str,
        exc: BaseException,
        *,
        status: str = "failed",
        effects: list[Effect] | None = None,
    ) -> None:
        """Store the failure in its own transaction; the event's transaction was rolled back.

        ``effects`` (the alert of a rejection) are staged in the outbox in that transaction.
        """
        error = _describe(exc)
        if isinstance(exc, MentorpayError):
            # Expected kinds of failure: the message says it all, a traceback adds noise.
            logger.warning("webhook %s (%s) failed: %s", env.id, env.type, error)
        else:
            logger.error("webhook %s (%s) failed: %s", env.id, env.type, error, exc_info=exc)

        def do(conn: Connection) -> None:
            conn.execute(
                self._failure_upsert,
                {
                    "b_event_id": env.id,
                    "b_type": env.type,
                    "b_payload": text,
                    "b_error": error,
                    "b_status": status,
                    "b_now": self._clock(),
                },
            )
            if effects:
                self.outbox.stage(conn, effects)

        try:
            run_in_transaction(self._engine, do, retries=self._retries)
        except Exception:
            logger.exception("could not record the failure of webhook %s", env.id)

    def emit(self, effects: list[Effect]) -> None:
        """Deliver committed effects to the callbacks (for services settling outside webhooks).

        Call only after the effects' transaction committed. Effects stored with
        ``outbox.stage`` in that transaction are marked delivered (or left for
        ``outbox.deliver_pending`` if a callback raises); others are delivered once, in-process.
        """
        self._run_callbacks(effects)

    def _run_callbacks(self, effects: list[Effect]) -> None:
        self.outbox.deliver(effects)

    # -- deferred events ----------------------------------------------------------------------

    def _serialize_on(self, conn: Connection, key: str) -> None:
        """On PostgreSQL, serialize "is the payment recorded?" decisions about one intent.

        At READ COMMITTED, a refund deciding to defer and the payment's transaction deciding
        nothing waits for it could each miss the other's uncommitted row. A transaction-scoped
        advisory lock taken by both before deciding makes one of them see the other's commit.
        """
        if self._dialect == "postgresql":
            driver_execute(conn, self._lock_sql, (_lock_key(key),))

    def _drain(
        self, conn: Connection, waiting_for: str, now: datetime, *, after: int = 0
    ) -> list[Effect]:
        """Apply up to ``drain_batch`` events deferred on ``waiting_for`` inside ``conn``.

        In Stripe's order within the batch, batches in arrival order. A full batch leaves
        ``waiting_for`` and its last row in ``conn.info``, so the caller continues after commit
        in further transactions instead of holding one open for thousands of events.
        """
        rows = driver_execute(conn, self._deferred_sql, (waiting_for, after, self.drain_batch))
        if not rows:
            return []
        if len(rows) >= self.drain_batch:
            conn.info.setdefault(_MORE_DEFERRED, {})[waiting_for] = max(r[0] for r in rows)
        parsed: list[tuple[int, int, EventEnvelope | None, str | None]] = []
        for row_id, payload in rows:
            try:
                envelope = EventEnvelope.model_validate_json(payload)
                parsed.append((envelope.created, row_id, envelope, None))
            except ValidationError as exc:
                parsed.append((0, row_id, None, _describe(exc)))
        parsed.sort(key=lambda item: (item[0], item[1]))
        effects: list[Effect] = []
        for _, row_id, env, error in parsed:
            values: dict[str, Any]
            if env is None:
                values = {"status": "failed", "last_error": error}
            else:
                try:
                    # A savepoint per event: one bad deferred event must not block the payment.
                    with conn.begin_nested():
                        handler = self._handlers.get(env.type)
                        result = (
                            handler(conn, env) if handler is not None else HandlerResult("ignored")
                        )
                except Exception as exc:
                    if is_retryable(exc):
                        raise
                    logger.error("deferred webhook %s failed: %s", env.id, _describe(exc))
                    permanent = isinstance(exc, MentorpayError)
                    values = {
                        "status": "rejected" if permanent else "failed",
                        "last_error": _describe(exc),
                    }
                else:
                    status = _INBOX_STATUS[result.status]
                    values = {
                        "status": status,
                        "waiting_for": result.waiting_for if status == "deferred" else waiting_for,
                        "processed_at": None if status == "deferred" else now,
                    }
                    effects.extend(with_ids(env.id, result.effects))
            values["attempts"] = _inbox.c.attempts + 1
            conn.execute(update(_inbox).where(_inbox.c.id == row_id).values(**values))
        return effects

    def _defer(
        self, conn: Connection, pi: str, apply: Callable[[], HandlerResult]
    ) -> HandlerResult:
        """Run ``apply`` if the payment is recorded, else answer deferred on ``pi``."""
        try:
            return apply()
        except PaymentNotFoundError:
            pass
        if self._dialect == "postgresql":
            # Take the lock the payment's transaction also takes, then look again: a payment
            # committed meanwhile is visible now, and one still in flight will see our row.
            self._serialize_on(conn, pi)
            try:
                return apply()
            except PaymentNotFoundError:
                pass
        if driver_execute(conn, self._ignored_payment_sql, (pi,)):
            logger.info("payment %s is not mentorpay's; event ignored", pi)
            return HandlerResult("ignored")
        return HandlerResult("deferred", waiting_for=pi)

    def _settle_orphans(self, conn: Connection, pi: str, now: datetime) -> None:
        """Deferred events for a payment that turned out not to be mentorpay's: ignore them."""
        conn.execute(
            update(_inbox)
            .where(_inbox.c.waiting_for == pi, _inbox.c.status == "deferred")
            .values(
                status="ignored",
                processed_at=now,
                last_error=f"payment {pi} has no mentorpay booking metadata",
            )
        )

    # -- handlers: payments ---------------------------------------------------------------------

    def _mark_checkout(
        self,
        conn: Connection,
        session_id: str,
        status: str,
        now: datetime,
        *,
        unless: tuple[str, ...] = (),
    ) -> dict[str, Any] | None:
        """Set the status of mentorpay's checkout row if there is one; its fields if changed.

        ``unless``: statuses that a late, older event must not overwrite (a ``completed``
        with an unpaid delayed method arriving after the payment settled, say).
        """
        row = conn.execute(
            self._checkout_status,
            {"b_id": session_id, "b_status": status, "b_now": now, "b_keep": list(unless)},
        ).first()
        return None if row is None else dict(row._mapping)

    def _checkout_terms(
        self,
        conn: Connection,
        pi: str,
        session_id: str | None,
        booking_id: str | None,
        gross: Money,
    ) -> tuple[_CheckoutTerms | None, str | None]:
        """mentorpay's own checkout terms for this payment, and who already paid its booking.

        One prebuilt statement (one round trip): the checkout row by session id, else by the
        booking the metadata names (a payment intent does not name its Checkout Session: the
        newest session of that booking that asked for this amount, else its newest, which then
        disagrees and goes to review), and beside it another payment intent that already paid
        that booking (refunded or reviewed ones do not count).
        """
        if session_id is not None:
            rows = driver_execute(conn, self._terms_by_session, (booking_id, pi, session_id))
        elif booking_id is not None:
            rows = driver_execute(conn, self._terms_by_booking, (booking_id, pi, booking_id))
        else:
            return None, None  # names no booking and no session: nothing to look up
        paid_by: str | None = rows[0][0] if rows else None
        found = [_CheckoutTerms(*r[1:]) for r in rows if r[1] is not None]
        for terms in found:
            if (terms.amount, terms.currency) == (gross.amount, gross.currency):
                return terms, paid_by
        return (found[0] if found else None), paid_by

    def _expected(
        self, row: _CheckoutTerms | None, claimed: _Booking | None
    ) -> tuple[Expected | None, BookingInfo | None]:
        """What mentorpay asked for (its checkout row, else the host's booking) and the booking."""
        booking_id = row.booking_id if row is not None else claimed.booking_id if claimed else None
        if booking_id is None:
            return None, None
        booking = self._bookings.get_booking(booking_id) if self._bookings is not None else None
        if row is not None:
            price = Money(row.amount, row.currency)
            return Expected(booking_id, row.mentor_id, row.mentee_id, price, "checkout"), booking
        assert claimed is not None
        if booking is None:
            return (
                Expected(booking_id, claimed.mentor_id, claimed.mentee_id, None, "booking"),
                None,
            )
        return (
            Expected(booking_id, booking.mentor_id, booking.mentee_id, booking.price, "booking"),
            booking,
        )

    def _record_payment(
        self,
        conn: Connection,
        env: EventEnvelope,
        *,
        pi: str | None,
        amount: int | None,
        currency: str | None,
        metadata: Mapping[str, str] | None,
        session_id: str | None,
        charge_id: str | None,
        destination: str | None = None,
        platform_fee: int | None = None,
    ) -> HandlerResult:
        claimed = _booking(metadata, env)
        if pi is None:
            # Subscription and setup sessions have no payment intent; not a booking payment.
            logger.info("%s %s has no payment intent; ignored", env.type, env.id)
            return HandlerResult("ignored")
        now = self._clock()
        if amount is None:
            if claimed is None:
                return self._orphan(conn, pi, now)
            raise WebhookPayloadError(
                f"{env.type} event {env.id}: the amount is missing",
                event_id=env.id,
                event_type=env.type,
            )
        gross = _money(amount, currency, env)
        row, paid_by = self._checkout_terms(
            conn, pi, session_id, claimed.booking_id if claimed else None, gross
        )
        if row is None and claimed is None:
            return self._orphan(conn, pi, now)
        if not gross.is_positive():
            logger.warning("payment %s of %s recorded nothing; ignored", pi, gross)
            return HandlerResult("ignored", reason="a payment of zero moves no money")
        expected, booking = self._expected(row, claimed)
        assert expected is not None
        reasons = disagreements(
            expected,
            Claim(
                gross,
                claimed.booking_id if claimed else None,
                claimed.mentor_id if claimed else None,
                claimed.mentee_id if claimed else None,
            ),
            booking,
            paid_by=paid_by,
        )
        if destination is None and self._config.connect_destination_charges:
            # Checkout asked Stripe to send the mentor's share to the booking's account.
            destination = booking.mentor_stripe_account if booking is not None else None
        if destination is not None:
            if booking is None or destination != booking.mentor_stripe_account:
                reasons.append(
                    f"destination_mismatch: Stripe sent the mentor's share to {destination}, "
                    "not the booking mentor's connected account"
                )
            if platform_fee is None and row is not None:
                platform_fee = row.platform_fee
        review = "; ".join(reasons) if reasons else None
        outcome = self._ledger.record_payment(
            payment_intent_id=pi,
            booking_id=expected.booking_id,
            mentor_id=expected.mentor_id if review is None or booking is not None else "",
            mentee_id=expected.mentee_id,
            gross=gross,
            policy=self._config.policy_for(expected.mentor_id),
            checkout_session_id=row.id if row is not None else session_id,
            charge_id=charge_id,
            release_due_at=now + self._config.hold_period,
            destination=destination,
            platform_fee=None if review else _fee(platform_fee, gross, env),
            review_reason=review,
            conn=conn,
        )
        if not outcome.created:
            return HandlerResult("payment_already_processed")
        data: dict[str, Any] = {
            "event_id": env.id,
            "payment_intent_id": pi,
            "checkout_session_id": session_id,
            "booking_id": expected.booking_id,
            "mentor_id": outcome.payment.mentor_id,
            "mentee_id": expected.mentee_id,
            "currency": gross.currency,
            "amount": gross.amount,
        }
        if review is not None:
            logger.warning("payment %s parked for review: %s", pi, review)
            effects = [Effect("payment_needs_review", {**data, "reason": review})]
        else:
            split = outcome.split
            data.update(
                platform_fee=split.platform_fee.amount,
                mentor_payout=split.mentor_payout.amount,
                rate_bps=split.rate_bps,
            )
            effects = [Effect("payment_succeeded", data)]
        self._serialize_on(conn, pi)
        effects.extend(self._drain(conn, pi, now))
        if review is not None:
            return HandlerResult("needs_review", effects, reason=review)
        return HandlerResult("success", effects)

    def _orphan(self, conn: Connection, pi: str, now: datetime) -> HandlerResult:
        """A payment mentorpay did not ask for and whose metadata names no booking: ignored."""
        logger.info("payment %s has no mentorpay booking metadata; ignored", pi)
        self._serialize_on(conn, pi)
        self._settle_orphans(conn, pi, now)
        # Stored on the ignored row, so later refunds and disputes of it are ignored too
        # instead of waiting forever for a payment mentorpay will never record.
        return HandlerResult("ignored", waiting_for=pi)

    def _on_checkout_completed(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """Completed Checkout: record the payment when paid; async methods pay later."""
        session = _parse_object(_CheckoutSessionObject, env)
        if session.payment_status == "unpaid":
            # A delayed method (bank debit) settles days later: the booking is neither paid
            # nor free for a second checkout until async_payment_succeeded or _failed.
            self._mark_checkout(
                conn,
                session.id,
                "awaiting_payment",
                self._clock(),
                unless=("complete", "payment_failed"),
            )
        else:
            self._mark_checkout(conn, session.id, "complete", self._clock())
        if session.mode not in (None, "payment"):
            return HandlerResult("ignored")
        if session.payment_status != "paid":
            # unpaid: async_payment_succeeded records it later.
            # no_payment_required: nothing was charged, so nothing to credit.
            return HandlerResult("success")
        return self._record_session_payment(conn, env, session)

    def _on_checkout_async_succeeded(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """A delayed payment method settled: record the payment."""
        session = _parse_object(_CheckoutSessionObject, env)
        self._mark_checkout(conn, session.id, "complete", self._clock())
        if session.mode not in (None, "payment"):
            return HandlerResult("ignored")
        return self._record_session_payment(conn, env, session)

    def _record_session_payment(
        self, conn: Connection, env: EventEnvelope, session: _CheckoutSessionObject
    ) -> HandlerResult:
        return self._record_payment(
            conn,
            env,
            pi=session.payment_intent,
            amount=session.amount_total,
            currency=session.currency,
            metadata=session.metadata,
            session_id=session.id,
            charge_id=None,
        )

    def _on_payment_intent_succeeded(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """The payment intent succeeded: record the payment (amount actually received)."""
        intent = _parse_object(_PaymentIntentObject, env)
        received = intent.amount_received
        return self._record_payment(
            conn,
            env,
            pi=intent.id,
            amount=received if received else intent.amount,
            currency=intent.currency,
            metadata=intent.metadata,
            session_id=None,
            # Stripe lists newest first: the first charge is the one that succeeded.
            charge_id=intent.latest_charge
            or (intent.charges.data[0].id if intent.charges and intent.charges.data else None),
            destination=intent.transfer_data.destination if intent.transfer_data else None,
            platform_fee=intent.application_fee_amount,
        )

    def _on_checkout_async_failed(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """A delayed payment method failed: the booking is free again; tell the host."""
        session = _parse_object(_CheckoutSessionObject, env)
        self._mark_checkout(conn, session.id, "payment_failed", self._clock(), unless=("complete",))
        booking = _booking(session.metadata, env)
        if booking is None:
            return HandlerResult("ignored")
        return HandlerResult(
            "success",
            [
                Effect(
                    "payment_failed",
                    {
                        "event_id": env.id,
                        "payment_intent_id": session.payment_intent,
                        "checkout_session_id": session.id,
                        "booking_id": booking.booking_id,
                        "mentor_id": booking.mentor_id,
                        "mentee_id": booking.mentee_id,
                        "reason": None,
                    },
                )
            ],
        )

    def _on_payment_intent_failed(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """A payment attempt failed: tell the host (one effect per attempt); no ledger change."""
        intent = _parse_object(_PaymentIntentObject, env)
        booking = _booking(intent.metadata, env)
        if booking is None:
            return HandlerResult("ignored")
        error = intent.last_payment_error or {}
        reason = error.get("message") or error.get("code")
        return HandlerResult(
            "success",
            [
                Effect(
                    "payment_failed",
                    {
                        "event_id": env.id,
                        "payment_intent_id": intent.id,
                        "checkout_session_id": None,
                        "booking_id": booking.booking_id,
                        "mentor_id": booking.mentor_id,
                        "mentee_id": booking.mentee_id,
                        "reason": str(reason)[:500] if reason else None,
                    },
                )
            ],
        )

    def _on_checkout_expired(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """The session expired unpaid: mark mentorpay's row and tell the host."""
        session = _parse_object(_CheckoutSessionObject, env)
        row = self._mark_checkout(conn, session.id, "expired", self._clock())
        booking = _booking(session.metadata, env)
        if row is None and booking is None:
            return HandlerResult("ignored")
        data: dict[str, Any] = {"event_id": env.id, "checkout_session_id": session.id}
        if booking is not None:
            data.update(
                booking_id=booking.booking_id,
                mentor_id=booking.mentor_id,
                mentee_id=booking.mentee_id,
            )
        elif row is not None:
            data.update(row)
        return HandlerResult("success", [Effect("checkout_expired", data)])

    # -- handlers: refunds and disputes -------------------------------------------------------

    def _intent_for(self, conn: Connection, pi: str | None, charge_id: str | None) -> str | None:
        """The payment intent a charge or dispute refers to (by the charge id as a fallback)."""
        if pi is not None:
            return pi
        if charge_id is None:
            return None
        found: str | None = conn.execute(
            select(_payments.c.payment_intent_id).where(_payments.c.charge_id == charge_id)
        ).scalar()
        return found

    def _on_charge_refunded(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """Bring the ledger up to the charge's cumulative ``amount_refunded``."""
        charge = _parse_object(_ChargeObject, env)
        pi = self._intent_for(conn, charge.payment_intent, charge.id)
        if pi is None:
            logger.info("refund of charge %s has no payment intent; ignored", charge.id)
            return HandlerResult("ignored")
        total = _money(charge.amount_refunded, charge.currency, env)

        def apply() -> HandlerResult:
            posting = self._ledger.apply_refund_total(pi, total, conn=conn)
            if not posting.created:
                return HandlerResult("success")
            amount = posting.amount.amount if posting.amount is not None else None
            return HandlerResult(
                "success",
                [
                    Effect(
                        "refund_applied",
                        {
                            "event_id": env.id,
                            "payment_intent_id": pi,
                            "charge_id": charge.id,
                            "currency": total.currency,
                            "amount": amount,
                            "amount_refunded": total.amount,
                        },
                    )
                ],
            )

        return self._defer(conn, pi, apply)

    def _on_dispute_created(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """Hold the mentor's share of the disputed amount."""
        dispute = _parse_object(_DisputeObject, env)
        pi = self._intent_for(conn, dispute.payment_intent, dispute.charge)
        if pi is None:
            logger.info("dispute %s has no payment intent; ignored", dispute.id)
            return HandlerResult("ignored")
        amount = _money(dispute.amount, dispute.currency, env)

        def apply() -> HandlerResult:
            return HandlerResult("success", self._open(conn, env, pi, dispute, amount))

        return self._defer(conn, pi, apply)

    def _on_dispute_closed(self, conn: Connection, env: EventEnvelope) -> HandlerResult:
        """Won (or an inquiry closed, or prevented): release the hold. Lost: reverse it."""
        dispute = _parse_object(_DisputeObject, env)
        if dispute.status in ("won", "warning_closed", "prevented"):
            won = True
        elif dispute.status == "lost":
            won = False
        else:
            logger.warning(
                "dispute %s closed with unexpected status %r; ignored", dispute.id, dispute.status
            )
            return HandlerResult("ignored")
        pi = self._intent_for(conn, dispute.payment_intent, dispute.charge)
        if pi is None:
            logger.info("dispute %s has no payment intent; ignored", dispute.id)
            return HandlerResult("ignored")
        amount = _money(dispute.amount, dispute.currency, env)

        def apply() -> HandlerResult:
            # Opening first makes a "closed" that overtook its "created" net out correctly.
            effects = self._open(conn, env, pi, dispute, amount)
            posting = self._ledger.close_dispute(pi, dispute.id, won=won, conn=conn)
            if posting.created:
                effects.append(
                    Effect(
                        "dispute_closed",
                        {
                            "event_id": env.id,
                            "payment_intent_id": pi,
                            "dispute_id": dispute.id,
                            "status": dispute.status,
                            "won": won,
                            "currency": amount.currency,
                            "amount": amount.amount,
                            "held": posting.amount.amount if posting.amount else None,
                        },
                    )
                )
            return HandlerResult("success", effects)

        return self._defer(conn, pi, apply)

    def _open(
        self,
        conn: Connection,
        env: EventEnvelope,
        pi: str,
        dispute: _DisputeObject,
        amount: Money,
    ) -> list[Effect]:
        posting = self._ledger.open_dispute(pi, dispute.id, amount, conn=conn)
        if not posting.created:
            return []
        return [
            Effect(
                "dispute_opened",
                {
                    "event_id": env.id,
                    "payment_intent_id": pi,
                    "dispute_id": dispute.id,
                    "currency": amount.currency,
                    "amount": amount.amount,
                    "held": posting.amount.amount if posting.amount else None,
                },
            )
        ]

    # -- statements, built once -----------------------------------------------------------------

    def _build_statements(self) -> None:
        """Pre-build the hot-path statements so each event only binds parameters."""
        insert: Callable[[Table], Any]
        deferred = (
            "SELECT id, payload FROM mentorpay_webhook_events"
            " WHERE waiting_for = {p} AND status = 'deferred' AND id > {p} ORDER BY id LIMIT {p}"
        )
        if self._dialect == "sqlite":
            insert = sqlite.insert
            self._peek_sql = "SELECT status FROM mentorpay_webhook_events WHERE event_id = ?"
            # No FOR UPDATE on SQLite: BEGIN IMMEDIATE already made this the only writer.
            self._deferred_sql = deferred.format(p="?")
        elif self._dialect in ("postgresql", "cockroachdb"):
            insert = postgresql.insert
            self._peek_sql = "SELECT status FROM mentorpay_webhook_events WHERE event_id = %s"
            # FOR UPDATE: a concurrent replay of one of these rows waits, then sees it applied.
            self._deferred_sql = deferred.format(p="%s") + " FOR UPDATE"
        else:
            raise ConfigurationError(
                f"mentorpay supports PostgreSQL(-compatible) databases and SQLite, "
                f"not {self._dialect}"
            )
        now: Any = bindparam("b_now")
        # The claim runs on every fresh event, so it goes straight to the driver (through Core
        # it costs several times the round trip on psycopg). Timestamps still go through the
        # column type's own bind processor, so SQLite stores them exactly as Core would.
        claim = (
            "INSERT INTO mentorpay_webhook_events (event_id, type, status, waiting_for, payload,"
            " attempts, last_error, created_at, processed_at) VALUES ({p}, {p}, 'processed',"
            " NULL, {p}, 1, NULL, {p}, {p}) ON CONFLICT (event_id) DO NOTHING RETURNING id"
        )
        self._claim_sql = claim.format(p="?" if self._dialect == "sqlite" else "%s")
        self._bind_time = time_binder(self._engine.dialect)
        self._reclaim = (
            update(_inbox)
            .where(_inbox.c.event_id == bindparam("b_event_id"), _inbox.c.status.in_(_RECLAIMABLE))
            .values(status="processed", attempts=_inbox.c.attempts + 1, processed_at=now)
            .returning(_inbox.c.id)
        )
        failed = insert(_inbox).values(
            event_id=bindparam("b_event_id"),
            type=bindparam("b_type"),
            status=bindparam("b_status"),
            waiting_for=None,
            payload=bindparam("b_payload"),
            attempts=1,
            last_error=bindparam("b_error"),
            created_at=now,
            processed_at=None,
        )
        self._failure_upsert = failed.on_conflict_do_update(
            index_elements=["event_id"],
            set_={
                "status": failed.excluded.status,
                "attempts": _inbox.c.attempts + 1,
                "last_error": failed.excluded.last_error,
            },
            # Never turn a committed success (a concurrent winner) back into a failure.
            where=_inbox.c.status.in_(_RECLAIMABLE),
        )
        self._finish = (
            update(_inbox)
            .where(_inbox.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                waiting_for=bindparam("b_waiting_for"),
                processed_at=bindparam("b_processed_at"),
                last_error=bindparam("b_last_error"),
            )
        )
        self._checkout_status = (
            update(_checkouts)
            .where(
                _checkouts.c.id == bindparam("b_id"),
                _checkouts.c.status != bindparam("b_status"),
                _checkouts.c.status.not_in(bindparam("b_keep", expanding=True)),
            )
            .values(status=bindparam("b_status"), updated_at=now)
            .returning(_checkouts.c.booking_id, _checkouts.c.mentor_id, _checkouts.c.mentee_id)
        )
        self._lock_sql = "SELECT pg_advisory_xact_lock(%s)"
        ignored = (
            "SELECT 1 FROM mentorpay_webhook_events WHERE waiting_for = {p}"
            " AND status = 'ignored' LIMIT 1"
        )
        self._ignored_payment_sql = ignored.format(p=placeholder(self._engine))
        # A payment's truth in one round trip: the checkout row(s) and, in the same statement,
        # another payment intent that already paid the booking (see _checkout_terms). The
        # one-row derived table keeps "paid by" answered when no checkout row exists.
        p = placeholder(self._engine)
        unpaid = ", ".join(f"'{status}'" for status in UNPAID_PAYMENT_STATUSES)
        terms = (  # built from constants only; every value is bound
            "SELECT (SELECT p.payment_intent_id FROM mentorpay_payments p"  # noqa: S608
            f" WHERE p.booking_id = COALESCE(c.booking_id, {p}) AND p.payment_intent_id <> {p}"
            f" AND p.status NOT IN ({unpaid}) LIMIT 1),"
            " c.id, c.booking_id, c.mentor_id, c.mentee_id, c.currency, c.amount, c.platform_fee"
            " FROM (SELECT 1 AS one) v LEFT JOIN mentorpay_checkout_sessions c ON "
        )
        self._terms_by_session = terms + f"c.id = {p}"
        self._terms_by_booking = (
            terms + f"c.booking_id = {p} AND c.status NOT IN ('creating', 'abandoned')"
            " ORDER BY c.created_at DESC"
        )
