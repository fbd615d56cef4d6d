"""The webhook processor: exactly-once ledger effects from Stripe's at-least-once deliveries.

One event goes ``size check -> verify -> parse -> claim -> dispatch -> commit -> callbacks``:

1. **Size**: a body above ``config.max_payload_bytes`` is refused before anything reads it (413).
2. **Verify**: the Stripe-Signature header against each configured secret (``_signature``).
3. **Parse**: ``EventEnvelope.model_validate_json`` once; each handler then validates only the
   fields it reads from ``data.object`` into a small pydantic model (unknown fields ignored).
4. **Duplicate peek**: one indexed read of the inbox by event id, outside any write transaction.
   An event already ``processed`` or ``ignored`` is answered ``already_processed`` right there.
5. **Claim** (inside one transaction, retried on serialization failures and deadlocks):
   ``INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING id`` (``_inbox``). A concurrent
   duplicate blocks on the unique index and then loses. A row left ``failed``, ``deferred`` or
   ``rejected`` by an earlier attempt is re-claimed with a conditional ``UPDATE``, so a retry
   is processed again but two retries cannot both win.
6. **Dispatch**: the handler registered for the event type (``handlers/``, the registry)
   applies ledger postings through ``conn`` (the ledger never commits), and reports effects.
   The claim wrote the inbox row as ``processed``, so the common case needs no second statement.
7. **Commit**, then the host's after-commit callbacks (the effect bus, :mod:`mentorpay.effects`),
   once per business effect.

Exactly-once rests on database facts, not on the peek: the inbox's unique event id (one
delivery wins), the payments' unique intent id (one of the sibling events records a payment),
and the ledger's unique business keys (a refund is keyed by the cumulative amount refunded, a
dispute by its id and phase). Out-of-order events wait in the inbox (``_deferral``).

Origin: before any handler runs, an event from the other Stripe mode (``livemode`` differing
from ``config.livemode``) or from a connected account (``account`` set) is stored ``ignored``
with its reason and moves no money. ``account.updated`` (which moves none) is the reverse: it is
accepted only from a connected account, and in the configured mode too.

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
outbox in the event's transaction, so a crash between commit and callback, or a raising
callback (logged, changes nothing), leaves them pending for ``outbox.deliver_pending()`` /
``mentorpay outbox run``: at least once, each with a stable ``Effect.id`` to deduplicate on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from mentorpay._clock import utcnow
from mentorpay.bookings import BookingSource
from mentorpay.config import MentorpayConfig
from mentorpay.db import ID_MAX, run_in_transaction
from mentorpay.effects import EffectBus
from mentorpay.errors import (
    ConfigurationError,
    DatabaseBusyError,
    InvalidRequestError,
    MentorpayError,
    NotFoundError,
    PayloadTooLargeError,
    WebhookPayloadError,
    WebhookProcessingError,
)
from mentorpay.events import Effect, EffectKind, EventEnvelope, Handler, HandlerResult
from mentorpay.ledger import LedgerService
from mentorpay.outbox import Outbox, with_ids
from mentorpay.webhooks._deferral import INBOX_STATUS, MORE_DEFERRED, Deferrals
from mentorpay.webhooks._inbox import FINAL, INBOX_STATUSES, InboxEvent, InboxStore
from mentorpay.webhooks._ingest import IngestWriter
from mentorpay.webhooks._registry import _TYPE_MAX, HandlerRegistry
from mentorpay.webhooks._signature import verify
from mentorpay.webhooks._worker import InboxWorker, WorkSummary
from mentorpay.webhooks.handlers.disputes import DisputeHandlers
from mentorpay.webhooks.handlers.payments import PaymentHandlers, PaymentRecorder
from mentorpay.webhooks.handlers.refunds import ChargeRefundHandlers

__all__ = ["WebhookProcessor", "WebhookResult", "WebhookStatus"]

logger = logging.getLogger("mentorpay.webhooks")

WebhookStatus = Literal[
    "success",
    "already_processed",
    "payment_already_processed",
    "ignored",
    "deferred",
    "needs_review",
    "rejected",
    "received",
]
#: Event types that move no money, so they are accepted from connected accounts too.
_NO_MONEY_TYPES: Final = frozenset({"account.updated"})


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
    ``received``: stored by :meth:`WebhookProcessor.ingest`, applied later by ``work``.
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


@dataclass(slots=True)
class _Outcome:
    """What one event transaction committed (built afresh on every retry of the transaction)."""

    status: WebhookStatus
    effects: list[Effect]
    waiting_for: str | None = None
    #: Drains cut at ``drain_batch``: waiting_for -> last row applied; continued after commit.
    more_deferred: dict[str, int] = field(default_factory=dict)


def _decode(raw_body: bytes) -> str:
    try:
        return raw_body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookPayloadError(
            f"webhook body is not UTF-8 (invalid byte at offset {exc.start})",
            offset=exc.start,
        ) from None


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
    if not 0 < len(env.id) <= ID_MAX or "\x00" in env.id:
        raise WebhookPayloadError("event id is empty, too long or contains NUL")
    if not 0 < len(env.type) <= _TYPE_MAX or "\x00" in env.type:
        raise WebhookPayloadError("event type is empty, too long or contains NUL")
    return env


def _origin_refusal(config: MentorpayConfig, env: EventEnvelope) -> str | None:
    """Why an event may not move money here: another Stripe mode, or a connected account.

    Money moves only on the platform account's own events in the configured mode: a test
    card must never credit live money, and a connected account (a mentor's Standard account
    sending to a Connect endpoint) must never vouch for the platform's payments.
    """
    if env.livemode != config.livemode:
        mode = "live" if config.livemode else "test"
        return f"livemode={str(env.livemode).lower()} event reached a {mode}-mode configuration"
    if env.type in _NO_MONEY_TYPES:
        # Only a connected account's own: the platform's account.updated is not a mentor's.
        if env.account is None:
            return f"{env.type} from the platform account, not a connected account"
        return None
    if env.account is not None:
        return f"event from connected account {env.account}, not the platform account"
    return None


def _rejected_effects(env: EventEnvelope, exc: MentorpayError) -> list[Effect]:
    """The ``event_rejected`` alert for an event that can never apply as it is."""
    data = {
        "event_id": env.id,
        "event_type": env.type,
        "error": type(exc).__name__,
        "reason": exc.message,
    }
    return with_ids(env.id, [Effect("event_rejected", data)])


class WebhookProcessor:
    """Verify, parse and apply Stripe events exactly once. Thread-safe; share one per process.

    ``register`` and ``on`` are meant for start-up, before deliveries arrive. ``effects``: the
    process's effect bus (one is made if not given).
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
        effects: EffectBus | None = None,
    ) -> None:
        if not config.webhook_secrets:  # the config refuses this too; never accept unsigned
            raise ConfigurationError("no webhook secret configured: refusing unsigned webhooks")
        self._config = config
        self._engine = engine
        self._clock = clock
        self._retries = config.db_retries
        if effects is None:
            effects = EffectBus(Outbox(engine, clock=clock, retries=self._retries))
        self._bus = effects
        #: Effects are stored here in the event's transaction and delivered after commit.
        self.outbox = self._bus.outbox
        # Refuses databases other than PostgreSQL(-compatible) ones and SQLite.
        self._inbox = InboxStore(engine, clock=clock, retries=self._retries)
        self._peek_sql = self._inbox.peek_sql
        self._handlers = HandlerRegistry()
        self._deferrals = Deferrals(
            engine, self._inbox, self._handlers, self._bus, retries=self._retries
        )
        recorder = self.payment_recorder = PaymentRecorder(
            config,
            engine,
            ledger,
            bookings,
            clock=clock,
            serialize_on=self._deferrals.serialize_on,
            # Looked up per call, so the drain stays one seam (tests inject failures there).
            drain=lambda conn, pi, now: self._drain(conn, pi, now),  # noqa: PLW0108
            settle_orphans=self._deferrals.settle_orphans,
        )
        defer = self._deferrals.defer
        self._handlers.include(PaymentHandlers(recorder, clock=clock).webhook_handlers())
        self._handlers.include(ChargeRefundHandlers(ledger, defer=defer).webhook_handlers())
        self._handlers.include(DisputeHandlers(ledger, defer=defer).webhook_handlers())
        #: The fast-acknowledge mode: ``ingest`` (group commit), then ``work`` (batches).
        self.ingester = IngestWriter(engine, self._inbox, clock=clock, retries=self._retries)
        self._worker = InboxWorker(
            engine, self._inbox, self._bus, self._dispatch, _rejected_effects,
            lambda pi, after: self._deferrals.drain_from(pi, after, self._drain, self._clock),
            clock, self._retries,
        )  # fmt: skip

    # -- registration -------------------------------------------------------------------------

    def register(self, event_type: str, handler: Handler, *, replace: bool = False) -> None:
        """Handle ``event_type`` with ``handler`` (e.g. ``transfer.*`` from the payout service).

        The handler runs inside the event's transaction and must not commit. Registering a type
        that already has a handler is refused unless ``replace=True``.
        """
        self._handlers.register(event_type, handler, replace=replace)

    def on(self, effect_kind: EffectKind, callback: Callable[[Effect], None]) -> None:
        """Call ``callback(effect)`` after commit, once per committed effect of that kind."""
        self._bus.on(effect_kind, callback)

    def emit(self, effects: list[Effect]) -> None:
        """Deliver committed effects to the callbacks (for services settling outside webhooks).

        Call only after the effects' transaction committed. Effects stored with
        ``outbox.stage`` in that transaction are marked delivered (or left for
        ``outbox.deliver_pending`` if a callback raises); others are delivered once, in-process.
        """
        self._bus.emit(effects)

    # -- entry points ---------------------------------------------------------------------------

    def process(self, raw_body: bytes, signature_header: str | None) -> WebhookResult:
        """Verify and apply one delivery: the raw request body and its Stripe-Signature header.

        Raises PayloadTooLargeError (413), WebhookSignatureError / WebhookPayloadError (400),
        WebhookProcessingError (500: rolled back, Stripe retries) or DatabaseBusyError (503).
        """
        return self._handle_text(self._verified(raw_body, signature_header))

    def ingest(self, raw_body: bytes, signature_header: str | None) -> WebhookResult:
        """Fast acknowledge: verify and parse as :meth:`process`, store the event durably as
        ``received`` and answer at once (``received``, or ``already_processed`` if final);
        :meth:`work` / ``mentorpay worker`` apply it. Same errors as :meth:`process` before
        the store; concurrent calls share commits (:mod:`._ingest`)."""
        text = self._verified(raw_body, signature_header)
        env = _parse(text)
        # A redelivery of an applied event is answered from one read, without a write.
        if self._peek(env.id) not in FINAL and self.ingester.store(env.id, env.type, text):
            return WebhookResult("received", env.id, env.type)
        return WebhookResult("already_processed", env.id, env.type)

    def work(self, limit: int | None = None, *, batch: int = 100) -> WorkSummary:
        """Apply stored ``received`` events, ``batch`` per transaction, one savepoint each, with
        the effects and final state of :meth:`process` (:mod:`._worker`); safe to run in
        several processes. Callbacks run after each batch's commit."""
        return self._worker.run(limit=limit, batch=batch)

    def _verified(self, raw_body: bytes, signature_header: str | None) -> str:
        """The body as text, once its size and signature are checked (413, 400)."""
        limit = self._config.max_payload_bytes
        if len(raw_body) > limit:
            raise PayloadTooLargeError(
                f"webhook body of {len(raw_body)} bytes exceeds the {limit}-byte limit",
                size=len(raw_body),
                limit=limit,
            )
        text = _decode(raw_body)
        verify(self._config, text, signature_header)
        return text

    def process_trusted(self, event: Mapping[str, Any] | bytes | str) -> WebhookResult:
        """Apply an event without a signature, for replay and reconciliation only.

        ``event`` is a Stripe-shaped event: a mapping (as reconciliation builds from API
        objects) or its JSON text. Never pass a request body here: use :meth:`process`.
        """
        if isinstance(event, bytes | bytearray):
            text = _decode(bytes(event))
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
        payload = self._inbox.payload(event_id)
        if payload is None:
            raise NotFoundError(f"no stored webhook event {event_id!r}", event_id=event_id)
        return self.process_trusted(payload)

    def replay_failed(self, *, include_deferred: bool = False) -> list[WebhookResult]:
        """Replay every ``failed`` event (and ``deferred`` ones if asked), oldest first.

        An event that fails again is logged, keeps its ``failed`` row (attempts and last_error
        updated) and is left out of the returned list; see ``list_events(status="failed")``.
        """
        statuses = ("failed", "deferred") if include_deferred else ("failed",)
        results: list[WebhookResult] = []
        for event_id in self._inbox.event_ids(statuses):
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
        return self._inbox.events(status, limit, event_type)

    def apply_deferred(self, waiting_for: str) -> list[Effect]:
        """Apply the deferred events waiting for ``waiting_for``, ``drain_batch`` per transaction.

        Recording a payment already does this for its payment intent; services whose handlers
        defer on something else (a transfer, say) call this after creating it. Callbacks run.
        """
        return self._deferrals.drain_from(waiting_for, 0, self._drain, self._clock)

    def defer_until_recorded(
        self, conn: Connection, payment_intent_id: str, apply: Callable[[], HandlerResult]
    ) -> HandlerResult:
        """For handlers registered from other modules: ``apply()`` if the payment is recorded,
        else answer ``deferred`` on it (applied when it is recorded), or ``ignored`` if the
        payment is known not to be mentorpay's. ``apply`` raises PaymentNotFoundError when the
        payment is missing."""
        return self._deferrals.defer(conn, payment_intent_id, apply)

    # -- the pipeline ---------------------------------------------------------------------------

    def _handle_text(self, text: str) -> WebhookResult:
        env = _parse(text)
        if self._peek(env.id) in FINAL:
            return WebhookResult("already_processed", env.id, env.type)
        try:
            outcome = run_in_transaction(
                self._engine, lambda conn: self._apply(conn, env, text), retries=self._retries
            )
        except DatabaseBusyError as exc:
            self._inbox.record_failure(env, text, exc)
            raise
        except MentorpayError as exc:
            # A typed error from a handler is about the event itself (another currency than
            # its payment, a field it cannot use): retrying it for three days changes nothing.
            effects = _rejected_effects(env, exc)
            self._inbox.record_failure(
                env, text, exc, status="rejected", effects=effects, stage=self._bus.stage
            )
            self._bus.emit(effects)
            return WebhookResult("rejected", env.id, env.type, effects=tuple(effects))
        except Exception as exc:
            self._inbox.record_failure(env, text, exc)
            raise WebhookProcessingError(
                f"processing {env.type} event {env.id} failed ({type(exc).__name__}); "
                "nothing was applied and Stripe will retry",
                event_id=env.id,
                event_type=env.type,
            ) from exc
        self._bus.emit(outcome.effects)
        for waiting_for, after in outcome.more_deferred.items():
            try:
                self._deferrals.drain_from(waiting_for, after, self._drain, self._clock)
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
        """The stored status of an event, read outside any transaction (see InboxStore.peek)."""
        return self._inbox.peek(event_id, self._peek_sql)

    def _drain(
        self, conn: Connection, waiting_for: str, now: datetime, *, after: int = 0
    ) -> list[Effect]:
        """Apply the events deferred on ``waiting_for`` inside ``conn`` (see Deferrals.drain)."""
        return self._deferrals.drain(conn, waiting_for, now, after=after, batch=self.drain_batch)

    def _apply(self, conn: Connection, env: EventEnvelope, text: str) -> _Outcome:
        conn.info.pop(MORE_DEFERRED, None)  # left by an earlier attempt on this connection
        now = self._clock()
        row_id = self._inbox.claim(conn, env.id, env.type, text, now)
        if row_id is None:
            return _Outcome("already_processed", [])
        return self._dispatch(conn, env, row_id, now)

    def _dispatch(
        self, conn: Connection, env: EventEnvelope, row_id: int, now: datetime
    ) -> _Outcome:
        """Apply a claimed event (its row marked ``processed``): origin, handler, outcome."""
        handler = self._handlers.get(env.type)
        refusal = _origin_refusal(self._config, env) if handler is not None else None
        if handler is None:
            result = HandlerResult("ignored")
        elif refusal is not None:
            logger.warning("webhook %s (%s) ignored: %s", env.id, env.type, refusal)
            result = HandlerResult("ignored", reason=refusal)
        else:
            result = handler(conn, env)
        status = INBOX_STATUS[result.status]
        if status != "processed" or result.reason is not None:
            # The claim wrote "processed" optimistically; only other outcomes cost a statement.
            conn.execute(
                self._inbox.finish,
                {
                    "b_id": row_id,
                    "b_status": status,
                    "b_waiting_for": result.waiting_for,
                    "b_processed_at": None if status == "deferred" else now,
                    "b_last_error": result.reason,
                },
            )
        effects = with_ids(env.id, result.effects)
        self._bus.stage(conn, effects)
        more: dict[str, int] = conn.info.pop(MORE_DEFERRED, None) or {}
        return _Outcome(result.status, effects, result.waiting_for, more)
