"""FakeGateway: an in-memory :class:`~mentorpay.gateway.PaymentGateway` that behaves like Stripe.

It keeps Stripe-shaped objects (plain dicts, exactly the fields Stripe's API returns that
mentorpay reads) so tests and the offline demo can build webhook events from them, and it
follows the Stripe rules mentorpay relies on:

* An idempotency key replays the first result for the same request; reused with different
  parameters it raises :class:`~mentorpay.errors.IdempotencyConflictError`.
* Refunds never exceed what remains on the charge; transfer reversals never exceed what remains
  on the transfer; only an open Checkout Session can be expired or completed.
* Unknown ids raise :class:`~mentorpay.errors.GatewayInvalidRequestError` with
  ``stripe_code="resource_missing"``.

Test hooks: :attr:`calls` records every call; :meth:`fail_next` makes the next call raise a
given error, either before Stripe acts (a refusal) or after (``performed=True``: the answer is
lost, the object exists); :meth:`complete_checkout_session`, :meth:`open_dispute` and
:meth:`close_dispute` play the customer's and the bank's part.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from mentorpay._clock import utcnow
from mentorpay.errors import (
    GatewayError,
    GatewayInvalidRequestError,
    IdempotencyConflictError,
)
from mentorpay.gateway import (
    REFUND_REASONS,
    CheckoutSessionParams,
    GatewayCharge,
    GatewayCheckoutSession,
    GatewayDispute,
    GatewayPaymentIntent,
    GatewayRefund,
    GatewayTransfer,
    GatewayTransferReversal,
)
from mentorpay.money import Money

__all__ = ["FakeGateway", "GatewayCall"]

T = TypeVar("T")

DEFAULT_CHECKOUT_URL_TEMPLATE = "https://checkout.stripe.test/c/pay/{session_id}"


@dataclass(frozen=True, slots=True)
class GatewayCall:
    """One call made to the fake: method name, arguments, and the idempotency key if any."""

    method: str
    args: Mapping[str, Any]
    idempotency_key: str | None = None


@dataclass(slots=True)
class _Failure:
    error: GatewayError
    method: str | None
    performed: bool


@dataclass(slots=True)
class _Saved:
    method: str
    args: Mapping[str, Any]
    result: Any


@dataclass(slots=True)
class _State:
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    session_params: dict[str, CheckoutSessionParams] = field(default_factory=dict)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    disputes: dict[str, dict[str, Any]] = field(default_factory=dict)
    transfers: dict[str, dict[str, Any]] = field(default_factory=dict)
    reversals: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, _Saved] = field(default_factory=dict)


def _missing(kind: str, object_id: str) -> GatewayInvalidRequestError:
    return GatewayInvalidRequestError(
        f"No such {kind}: '{object_id}'. Retrying will not help.",
        stripe_code="resource_missing",
        stripe_status=404,
    )


def _invalid(message: str, code: str = "parameter_invalid") -> GatewayInvalidRequestError:
    return GatewayInvalidRequestError(
        f"{message}. Retrying will not help.", stripe_code=code, stripe_status=400
    )


class FakeGateway:
    """In-memory Stripe for tests and the offline demo (thread-safe).

    ``checkout_url_template`` formats each session's ``url`` (``{session_id}`` is replaced),
    e.g. ``"http://127.0.0.1:8000/fake-checkout/{session_id}"`` for a local checkout page.
    ``latency`` (seconds) delays every call before it acts, to widen race windows in
    concurrency tests. ``clock`` stamps ``created`` and checks expiry windows.
    """

    def __init__(
        self,
        *,
        checkout_url_template: str = DEFAULT_CHECKOUT_URL_TEMPLATE,
        clock: Callable[[], datetime] = utcnow,
        latency: float = 0.0,
        livemode: bool = False,
    ) -> None:
        self.checkout_url_template = checkout_url_template
        self._clock = clock
        self._latency = latency
        self._livemode = livemode
        self._lock = threading.RLock()
        self._state = _State()
        self._failures: list[_Failure] = []
        #: Every call, in order.
        self.calls: list[GatewayCall] = []

    # -- test hooks -----------------------------------------------------------------------------

    def fail_next(
        self, error: GatewayError, *, method: str | None = None, performed: bool = False
    ) -> None:
        """Make the next call (of ``method``, or any) raise ``error``.

        ``performed=False``: Stripe refused, nothing happened. ``performed=True``: Stripe acted
        and the answer was lost (use a ``GatewayConnectionError``); a retry with the same
        idempotency key then returns the object created the first time.
        """
        with self._lock:
            self._failures.append(_Failure(error, method, performed))

    def calls_to(self, method: str) -> list[GatewayCall]:
        """The recorded calls of one method."""
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def session(self, session_id: str) -> dict[str, Any]:
        """The Checkout Session object as Stripe would return it now."""
        return self._get("sessions", "checkout.session", session_id)

    def payment_intent(self, payment_intent_id: str) -> dict[str, Any]:
        """The PaymentIntent object."""
        return self._get("payment_intents", "payment_intent", payment_intent_id)

    def charge(self, charge_id: str) -> dict[str, Any]:
        """The Charge object (``amount_refunded`` is cumulative, as in ``charge.refunded``)."""
        return self._get("charges", "charge", charge_id)

    def refund_object(self, refund_id: str) -> dict[str, Any]:
        """The Refund object."""
        return self._get("refunds", "refund", refund_id)

    def dispute(self, dispute_id: str) -> dict[str, Any]:
        """The Dispute object."""
        return self._get("disputes", "dispute", dispute_id)

    def transfer(self, transfer_id: str) -> dict[str, Any]:
        """The Transfer object."""
        return self._get("transfers", "transfer", transfer_id)

    @property
    def sessions(self) -> list[dict[str, Any]]:
        """Every Checkout Session created, oldest first."""
        with self._lock:
            return [copy.deepcopy(s) for s in self._state.sessions.values()]

    @property
    def transfers(self) -> list[dict[str, Any]]:
        """Every Transfer created, oldest first."""
        with self._lock:
            return [copy.deepcopy(t) for t in self._state.transfers.values()]

    def add_payment_intent(self, intent: Mapping[str, Any]) -> dict[str, Any]:
        """Register a succeeded PaymentIntent the host created itself (no Checkout Session),
        with its charge, so refunds of it work; returns the stored intent."""
        with self._lock:
            pi = copy.deepcopy(dict(intent))
            charge_id = pi.get("latest_charge") or self._new_id("ch")
            pi["latest_charge"] = charge_id
            amount = int(pi.get("amount_received") or pi["amount"])
            self._state.payment_intents[pi["id"]] = pi
            self._state.charges[charge_id] = {
                "id": charge_id,
                "object": "charge",
                "amount": amount,
                "amount_captured": amount,
                "amount_refunded": 0,
                "refunded": False,
                "currency": pi["currency"],
                "status": "succeeded",
                "paid": True,
                "payment_intent": pi["id"],
                "metadata": dict(pi.get("metadata") or {}),
                "created": self._now(),
                "livemode": self._livemode,
            }
            return copy.deepcopy(pi)

    def complete_checkout_session(self, session_id: str) -> dict[str, Any]:
        """The customer pays: the session completes and a succeeded PaymentIntent and Charge
        carrying the booking metadata (and the Connect fee and destination) appear.

        Returns the completed session; its ``payment_intent`` names the new PaymentIntent.
        """
        with self._lock:
            session = self._state.sessions.get(session_id)
            if session is None:
                raise _missing("checkout.session", session_id)
            if session["status"] != "open":
                raise _invalid(
                    f"Checkout Session {session_id} is {session['status']}, not open",
                    "checkout_session_not_open",
                )
            params = self._state.session_params[session_id]
            created = self._now()
            pi_id = self._new_id("pi")
            charge_id = self._new_id("ch")
            currency = params.amount.currency.lower()
            metadata = dict(params.metadata)
            pi: dict[str, Any] = {
                "id": pi_id,
                "object": "payment_intent",
                "amount": params.amount.amount,
                "amount_received": params.amount.amount,
                "currency": currency,
                "status": "succeeded",
                "latest_charge": charge_id,
                "metadata": metadata,
                "created": created,
                "livemode": self._livemode,
                "application_fee_amount": (
                    params.application_fee.amount if params.application_fee else None
                ),
                "transfer_data": (
                    {"destination": params.destination} if params.destination else None
                ),
            }
            charge: dict[str, Any] = {
                "id": charge_id,
                "object": "charge",
                "amount": params.amount.amount,
                "amount_captured": params.amount.amount,
                "amount_refunded": 0,
                "refunded": False,
                "currency": currency,
                "status": "succeeded",
                "paid": True,
                "payment_intent": pi_id,
                "metadata": dict(metadata),
                "created": created,
                "livemode": self._livemode,
            }
            self._state.payment_intents[pi_id] = pi
            self._state.charges[charge_id] = charge
            session.update(status="complete", payment_status="paid", payment_intent=pi_id)
            return copy.deepcopy(session)

    def open_dispute(
        self, payment_intent_id: str, amount: Money | None = None, reason: str = "fraudulent"
    ) -> dict[str, Any]:
        """The cardholder disputes a payment (the whole charge unless ``amount``)."""
        with self._lock:
            pi = self._state.payment_intents.get(payment_intent_id)
            if pi is None:
                raise _missing("payment_intent", payment_intent_id)
            charge = self._state.charges[pi["latest_charge"]]
            dispute_id = self._new_id("dp")
            dispute: dict[str, Any] = {
                "id": dispute_id,
                "object": "dispute",
                "amount": amount.amount if amount else charge["amount"] - charge["amount_refunded"],
                "currency": charge["currency"],
                "charge": charge["id"],
                "payment_intent": payment_intent_id,
                "status": "needs_response",
                "reason": reason,
                "created": self._now(),
                "livemode": self._livemode,
            }
            self._state.disputes[dispute_id] = dispute
            return copy.deepcopy(dispute)

    def close_dispute(self, dispute_id: str, *, won: bool) -> dict[str, Any]:
        """The bank decides the dispute."""
        with self._lock:
            dispute = self._state.disputes.get(dispute_id)
            if dispute is None:
                raise _missing("dispute", dispute_id)
            dispute["status"] = "won" if won else "lost"
            return copy.deepcopy(dispute)

    # -- plumbing -------------------------------------------------------------------------------

    def _now(self) -> int:
        return int(self._clock().timestamp())

    def _new_id(self, prefix: str) -> str:
        # Random, not a counter: a demo database outlives the fake, so ids must never repeat.
        return f"{prefix}_test_{uuid.uuid4().hex[:24]}"

    def _get(self, bucket: str, kind: str, object_id: str) -> dict[str, Any]:
        with self._lock:
            obj = getattr(self._state, bucket).get(object_id)
            if obj is None:
                raise _missing(kind, object_id)
            return copy.deepcopy(obj)

    def _call(
        self,
        method: str,
        args: Mapping[str, Any],
        idempotency_key: str | None,
        act: Callable[[], T],
    ) -> T:
        if self._latency:
            time.sleep(self._latency)
        with self._lock:
            self.calls.append(GatewayCall(method, dict(args), idempotency_key))
            failure = self._take_failure(method)
            if failure is not None and not failure.performed:
                raise failure.error
            result = self._idempotent(method, args, idempotency_key, act)
            if failure is not None:
                raise failure.error
            return result

    def _take_failure(self, method: str) -> _Failure | None:
        for index, failure in enumerate(self._failures):
            if failure.method is None or failure.method == method:
                return self._failures.pop(index)
        return None

    def _idempotent(
        self,
        method: str,
        args: Mapping[str, Any],
        idempotency_key: str | None,
        act: Callable[[], T],
    ) -> T:
        if idempotency_key is None:
            return act()
        saved = self._state.idempotency.get(idempotency_key)
        if saved is not None:
            if saved.method != method or saved.args != args:
                raise IdempotencyConflictError(
                    f"{method}: Stripe refused idempotency key {idempotency_key!r}: keys for "
                    "idempotent requests can only be used with the same parameters they were "
                    "first used with. Retrying the same call will not help.",
                    idempotency_key=idempotency_key,
                    stripe_code="idempotency_key_in_use",
                    stripe_status=400,
                )
            result: T = saved.result
            return result
        # Like Stripe, a refused request (validation error) stores nothing under its key.
        result = act()
        self._state.idempotency[idempotency_key] = _Saved(method, dict(args), result)
        return result

    def _list(
        self,
        bucket: str,
        created_gte: datetime,
        created_lt: datetime | None,
        method: str,
    ) -> list[dict[str, Any]]:
        gte = int(created_gte.timestamp())
        lt = int(created_lt.timestamp()) if created_lt is not None else None

        def act() -> list[dict[str, Any]]:
            objects = [
                copy.deepcopy(o)
                for o in getattr(self._state, bucket).values()
                if o["created"] >= gte and (lt is None or o["created"] < lt)
            ]
            # Stripe lists newest first.
            return list(reversed(objects))

        return self._call(method, {"created_gte": created_gte, "created_lt": created_lt}, None, act)

    # -- PaymentGateway: checkout ---------------------------------------------------------------

    def create_checkout_session(
        self, params: CheckoutSessionParams, *, idempotency_key: str
    ) -> GatewayCheckoutSession:
        """Create an open session; validated like Stripe (amount, fee, expiry window)."""

        def act() -> GatewayCheckoutSession:
            now = self._clock()
            if params.amount.amount <= 0:
                raise _invalid("unit_amount must be positive")
            window = params.expires_at - now
            if not timedelta(minutes=30) - timedelta(seconds=5) <= window <= timedelta(hours=24):
                raise _invalid(
                    "The `expires_at` timestamp must be between 30 minutes and 24 hours from "
                    "Checkout Session creation"
                )
            if params.application_fee is not None and params.application_fee > params.amount:
                raise _invalid("application_fee_amount cannot exceed the amount")
            if params.destination is not None and not params.destination.startswith("acct_"):
                raise _missing("destination", params.destination)
            session_id = self._new_id("cs")
            session: dict[str, Any] = {
                "id": session_id,
                "object": "checkout.session",
                "mode": "payment",
                "url": self.checkout_url_template.format(session_id=session_id),
                "status": "open",
                "payment_status": "unpaid",
                "payment_intent": None,
                "amount_total": params.amount.amount,
                "currency": params.amount.currency.lower(),
                "client_reference_id": params.booking_id,
                "success_url": params.success_url,
                "cancel_url": params.cancel_url,
                "expires_at": int(params.expires_at.timestamp()),
                "created": int(now.timestamp()),
                "metadata": dict(params.metadata),
                "livemode": self._livemode,
            }
            self._state.sessions[session_id] = session
            self._state.session_params[session_id] = params
            return GatewayCheckoutSession.from_dict(copy.deepcopy(session))

        return self._call("create_checkout_session", {"params": params}, idempotency_key, act)

    def expire_checkout_session(
        self, session_id: str, *, idempotency_key: str
    ) -> GatewayCheckoutSession:
        """Expire an open session; a completed or expired one is refused, as by Stripe."""

        def act() -> GatewayCheckoutSession:
            session = self._state.sessions.get(session_id)
            if session is None:
                raise _missing("checkout.session", session_id)
            if session["status"] != "open":
                raise _invalid(
                    f'Only Checkout Sessions with a status in ["open"] can be expired; '
                    f"{session_id} is {session['status']}",
                    "checkout_session_not_expirable",
                )
            session["status"] = "expired"
            return GatewayCheckoutSession.from_dict(copy.deepcopy(session))

        return self._call(
            "expire_checkout_session", {"session_id": session_id}, idempotency_key, act
        )

    def retrieve_checkout_session(self, session_id: str) -> GatewayCheckoutSession:
        """One session."""
        return self._call(
            "retrieve_checkout_session",
            {"session_id": session_id},
            None,
            lambda: GatewayCheckoutSession.from_dict(self.session(session_id)),
        )

    # -- PaymentGateway: refunds ----------------------------------------------------------------

    def create_refund(
        self,
        *,
        payment_intent_id: str,
        amount: Money | None,
        idempotency_key: str,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        reverse_transfer: bool | None = None,
        refund_application_fee: bool | None = None,
    ) -> GatewayRefund:
        """Refund the payment intent's charge; the charge's ``amount_refunded`` grows."""
        args = {
            "payment_intent_id": payment_intent_id,
            "amount": amount,
            "reason": reason,
            "metadata": dict(metadata or {}),
            "reverse_transfer": reverse_transfer,
            "refund_application_fee": refund_application_fee,
        }

        def act() -> GatewayRefund:
            pi = self._state.payment_intents.get(payment_intent_id)
            if pi is None:
                raise _missing("payment_intent", payment_intent_id)
            if reason is not None and reason not in REFUND_REASONS:
                raise _invalid(f"Invalid reason: {reason}")
            charge = self._state.charges[pi["latest_charge"]]
            remaining = charge["amount"] - charge["amount_refunded"]
            if remaining <= 0:
                raise _invalid(
                    f"Charge {charge['id']} has already been refunded.", "charge_already_refunded"
                )
            value = remaining if amount is None else amount.amount
            if amount is not None and amount.currency.lower() != charge["currency"]:
                raise _invalid("Refund currency must match the charge currency")
            if value <= 0 or value > remaining:
                raise _invalid(
                    f"Refund amount ({value}) is greater than unrefunded amount on charge "
                    f"({remaining})",
                    "amount_too_large",
                )
            refund_id = self._new_id("re")
            refund: dict[str, Any] = {
                "id": refund_id,
                "object": "refund",
                "amount": value,
                "currency": charge["currency"],
                "charge": charge["id"],
                "payment_intent": payment_intent_id,
                "status": "succeeded",
                "reason": reason,
                "metadata": dict(metadata or {}),
                "created": self._now(),
            }
            charge["amount_refunded"] += value
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            self._state.refunds[refund_id] = refund
            return GatewayRefund.from_dict(copy.deepcopy(refund))

        return self._call("create_refund", args, idempotency_key, act)

    # -- PaymentGateway: transfers --------------------------------------------------------------

    def create_transfer(
        self,
        *,
        amount: Money,
        destination: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        transfer_group: str | None = None,
        description: str | None = None,
    ) -> GatewayTransfer:
        """Transfer to a connected account (``acct_...``)."""
        args = {
            "amount": amount,
            "destination": destination,
            "metadata": dict(metadata or {}),
            "transfer_group": transfer_group,
            "description": description,
        }

        def act() -> GatewayTransfer:
            if amount.amount <= 0:
                raise _invalid("amount must be positive")
            if not destination.startswith("acct_"):
                raise _missing("destination", destination)
            transfer_id = self._new_id("tr")
            transfer: dict[str, Any] = {
                "id": transfer_id,
                "object": "transfer",
                "amount": amount.amount,
                "amount_reversed": 0,
                "currency": amount.currency.lower(),
                "destination": destination,
                "reversed": False,
                "transfer_group": transfer_group,
                "description": description,
                "metadata": dict(metadata or {}),
                "created": self._now(),
                "livemode": self._livemode,
            }
            self._state.transfers[transfer_id] = transfer
            return GatewayTransfer.from_dict(copy.deepcopy(transfer))

        return self._call("create_transfer", args, idempotency_key, act)

    def create_transfer_reversal(
        self,
        transfer_id: str,
        *,
        idempotency_key: str,
        amount: Money | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> GatewayTransferReversal:
        """Reverse (part of) a transfer; ``reversed`` becomes true once fully reversed."""
        args = {"transfer_id": transfer_id, "amount": amount, "metadata": dict(metadata or {})}

        def act() -> GatewayTransferReversal:
            transfer = self._state.transfers.get(transfer_id)
            if transfer is None:
                raise _missing("transfer", transfer_id)
            remaining = transfer["amount"] - transfer["amount_reversed"]
            value = remaining if amount is None else amount.amount
            if remaining <= 0 or value <= 0 or value > remaining:
                raise _invalid(
                    f"Transfer {transfer_id} has {remaining} left to reverse, asked for {value}"
                )
            reversal_id = self._new_id("trr")
            reversal: dict[str, Any] = {
                "id": reversal_id,
                "object": "transfer_reversal",
                "amount": value,
                "currency": transfer["currency"],
                "transfer": transfer_id,
                "metadata": dict(metadata or {}),
                "created": self._now(),
            }
            transfer["amount_reversed"] += value
            transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
            self._state.reversals[reversal_id] = reversal
            return GatewayTransferReversal.from_dict(copy.deepcopy(reversal))

        return self._call("create_transfer_reversal", args, idempotency_key, act)

    # -- PaymentGateway: retrieval and listings -------------------------------------------------

    def retrieve_payment_intent(self, payment_intent_id: str) -> GatewayPaymentIntent:
        """One PaymentIntent."""
        return self._call(
            "retrieve_payment_intent",
            {"payment_intent_id": payment_intent_id},
            None,
            lambda: GatewayPaymentIntent.from_dict(self.payment_intent(payment_intent_id)),
        )

    def retrieve_charge(self, charge_id: str) -> GatewayCharge:
        """One Charge."""
        return self._call(
            "retrieve_charge",
            {"charge_id": charge_id},
            None,
            lambda: GatewayCharge.from_dict(self.charge(charge_id)),
        )

    def retrieve_dispute(self, dispute_id: str) -> GatewayDispute:
        """One Dispute."""
        return self._call(
            "retrieve_dispute",
            {"dispute_id": dispute_id},
            None,
            lambda: GatewayDispute.from_dict(self.dispute(dispute_id)),
        )

    def retrieve_transfer(self, transfer_id: str) -> GatewayTransfer:
        """One Transfer."""
        return self._call(
            "retrieve_transfer",
            {"transfer_id": transfer_id},
            None,
            lambda: GatewayTransfer.from_dict(self.transfer(transfer_id)),
        )

    def list_payment_intents(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayPaymentIntent]:
        """PaymentIntents created in the period, newest first."""
        rows = self._list("payment_intents", created_gte, created_lt, "list_payment_intents")
        return iter([GatewayPaymentIntent.from_dict(r) for r in rows])

    def list_checkout_sessions(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayCheckoutSession]:
        """Checkout Sessions created in the period, newest first."""
        rows = self._list("sessions", created_gte, created_lt, "list_checkout_sessions")
        return iter([GatewayCheckoutSession.from_dict(r) for r in rows])

    def list_charges(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayCharge]:
        """Charges created in the period, newest first."""
        rows = self._list("charges", created_gte, created_lt, "list_charges")
        return iter([GatewayCharge.from_dict(r) for r in rows])

    def list_refunds(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayRefund]:
        """Refunds created in the period, newest first."""
        rows = self._list("refunds", created_gte, created_lt, "list_refunds")
        return iter([GatewayRefund.from_dict(r) for r in rows])

    def list_disputes(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayDispute]:
        """Disputes created in the period, newest first."""
        rows = self._list("disputes", created_gte, created_lt, "list_disputes")
        return iter([GatewayDispute.from_dict(r) for r in rows])

    def list_transfers(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[GatewayTransfer]:
        """Transfers created in the period, newest first."""
        rows = self._list("transfers", created_gte, created_lt, "list_transfers")
        return iter([GatewayTransfer.from_dict(r) for r in rows])
