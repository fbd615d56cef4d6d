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

One mechanism serves every method, as a mock transport would (:meth:`FakeGateway._call`):
the call is recorded, failed if a test asked for it, replayed or refused by the idempotency
table, and otherwise acts on the in-memory Stripe of :mod:`mentorpay.testing._fake_stripe`.
The read methods (``retrieve_*``, ``list_*``) are the shared ones of
:class:`~mentorpay.gateway._reads.GatewayReads` over that store.

Test hooks: :attr:`calls` records every call; :meth:`fail_next` makes the next call raise a
given error, either before Stripe acts (a refusal) or after (``performed=True``: the answer is
lost, the object exists); :meth:`complete_checkout_session`, :meth:`open_dispute` and
:meth:`close_dispute` play the customer's and the bank's part.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, Unpack

from mentorpay import stripe_objects as objects
from mentorpay._clock import utcnow
from mentorpay.errors import GatewayError, IdempotencyConflictError
from mentorpay.gateway._check import check_request
from mentorpay.gateway._reads import GatewayReads, Resource
from mentorpay.gateway.protocol import (
    CheckoutSessionParams,
    RefundRequest,
    ReversalRequest,
    TransferRequest,
)
from mentorpay.money import Money
from mentorpay.testing import _fake_methods as _methods
from mentorpay.testing._fake_accounts import DEFAULT_ACCOUNT_LINK_TEMPLATE, FakeAccountCalls
from mentorpay.testing._fake_billing import FakeBillingCalls
from mentorpay.testing._fake_stripe import SESSION, FakeStripe

__all__ = ["FakeGateway", "GatewayCall"]

T = TypeVar("T")
M = TypeVar("M", bound=objects.GatewayObject)

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


def _recorded(method: str, request: Mapping[str, Any], shape: Any) -> dict[str, Any]:
    """A POST's arguments as :attr:`FakeGateway.calls` records them: every keyword the method
    takes but the idempotency key, defaults filled in, ``metadata`` as a plain dict."""
    check_request(method, request, shape)
    args = {k: request.get(k) for k in shape.__annotations__ if k != "idempotency_key"}
    if "metadata" in args:
        args["metadata"] = dict(args["metadata"] or {})
    return args


class FakeGateway(GatewayReads, FakeAccountCalls, FakeBillingCalls):
    """In-memory Stripe for tests and the offline demo (thread-safe).

    ``checkout_url_template`` formats each session's ``url`` (``{session_id}`` is replaced),
    e.g. ``"http://127.0.0.1:8000/fake-checkout/{session_id}"`` for a local checkout page.
    ``latency`` (seconds) delays every call before it acts, to widen race windows in
    concurrency tests. ``clock`` stamps ``created`` and checks expiry windows.
    ``account_link_template`` formats onboarding URLs (``{account_id}``, ``{nonce}``), e.g. the
    examples' offline Connect page; accounts are :class:`FakeAccountCalls`'. Plan sessions,
    subscriptions (:meth:`add_subscription`) and portal sessions are :class:`FakeBillingCalls`'.
    """

    def __init__(
        self,
        *,
        checkout_url_template: str = DEFAULT_CHECKOUT_URL_TEMPLATE,
        clock: Callable[[], datetime] = utcnow,
        latency: float = 0.0,
        livemode: bool = False,
        account_link_template: str = DEFAULT_ACCOUNT_LINK_TEMPLATE,
    ) -> None:
        self.checkout_url_template = checkout_url_template
        self.account_link_template = account_link_template
        self._latency = latency
        self._lock = threading.RLock()
        self._stripe = FakeStripe(clock, livemode)
        self._idempotency: dict[str, _Saved] = {}
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
        return self._get(SESSION, session_id)

    def payment_intent(self, payment_intent_id: str) -> dict[str, Any]:
        """The PaymentIntent object."""
        return self._get("payment_intent", payment_intent_id)

    def charge(self, charge_id: str) -> dict[str, Any]:
        """The Charge object (``amount_refunded`` is cumulative, as in ``charge.refunded``)."""
        return self._get("charge", charge_id)

    def refund_object(self, refund_id: str) -> dict[str, Any]:
        """The Refund object."""
        return self._get("refund", refund_id)

    def dispute(self, dispute_id: str) -> dict[str, Any]:
        """The Dispute object."""
        return self._get("dispute", dispute_id)

    def transfer(self, transfer_id: str) -> dict[str, Any]:
        """The Transfer object."""
        return self._get("transfer", transfer_id)

    @property
    def sessions(self) -> list[dict[str, Any]]:
        """Every Checkout Session created, oldest first."""
        with self._lock:
            return self._stripe.all(SESSION)

    @property
    def transfers(self) -> list[dict[str, Any]]:
        """Every Transfer created, oldest first."""
        with self._lock:
            return self._stripe.all("transfer")

    def add_payment_intent(self, intent: Mapping[str, Any]) -> dict[str, Any]:
        """Register a succeeded PaymentIntent the host created itself (no Checkout Session),
        with its charge, so refunds of it work; returns the stored intent."""
        with self._lock:
            return self._stripe.add_payment_intent(intent)

    def complete_checkout_session(
        self, session_id: str, *, delayed: bool = False
    ) -> dict[str, Any]:
        """The customer pays: the session completes and a succeeded PaymentIntent and Charge
        carrying the booking metadata (and the Connect fee and destination) appear.

        ``delayed``: a bank debit instead; the session completes with ``payment_status``
        ``unpaid`` and its PaymentIntent is ``processing`` until :meth:`settle_delayed_payment`.
        Returns the completed session; its ``payment_intent`` names the new PaymentIntent.
        """
        with self._lock:
            if delayed:
                return _methods.complete_delayed(self._stripe, session_id)
            return self._stripe.complete_session(session_id)

    def decline_checkout_session(self, session_id: str) -> dict[str, Any]:
        """The customer's card is declined (``generic_decline``): the session stays open;
        returns the failed PaymentIntent, as ``payment_intent.payment_failed`` carries it."""
        with self._lock:
            return _methods.decline(self._stripe, session_id)

    def settle_delayed_payment(
        self, session_id: str, *, succeeded: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The bank answers a pending debit: ``(session, payment intent)`` after it."""
        with self._lock:
            return _methods.settle_delayed(self._stripe, session_id, succeeded=succeeded)

    def open_dispute(
        self,
        payment_intent_id: str,
        amount: Money | None = None,
        reason: str = "fraudulent",
        *,
        inquiry: bool = False,
    ) -> dict[str, Any]:
        """The cardholder disputes a payment (the whole charge unless ``amount``); with
        ``inquiry``, only asks (``warning_needs_response``; closing it is ``warning_closed``)."""
        with self._lock:
            return self._stripe.open_dispute(payment_intent_id, amount, reason, inquiry)

    def close_dispute(self, dispute_id: str, *, won: bool) -> dict[str, Any]:
        """The bank decides the dispute."""
        with self._lock:
            return self._stripe.close_dispute(dispute_id, won)

    # -- the one mechanism ----------------------------------------------------------------------

    def _get(self, kind: str, object_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._stripe.stored(kind, object_id))

    def _call(
        self, method: str, args: Mapping[str, Any], key: str | None, act: Callable[[], T]
    ) -> T:
        """Record the call, fail it if a test asked to, then replay or run ``act``."""
        if self._latency:
            time.sleep(self._latency)
        with self._lock:
            call = GatewayCall(method, dict(args), key)
            self.calls.append(call)
            failure = next((f for f in self._failures if f.method in (None, method)), None)
            if failure is not None:
                self._failures.remove(failure)
                if not failure.performed:
                    raise failure.error
            result = self._idempotent(call, act)
            if failure is not None:
                raise failure.error
            return result

    def _idempotent(self, call: GatewayCall, act: Callable[[], T]) -> T:
        """Stripe's idempotency: the first result of a key again, or a conflict."""
        key = call.idempotency_key
        if key is None:
            return act()
        saved = self._idempotency.get(key)
        if saved is not None:
            if saved.method != call.method or saved.args != call.args:
                raise IdempotencyConflictError(
                    f"{call.method}: Stripe refused idempotency key {key!r}: keys for "
                    "idempotent requests can only be used with the same parameters they were "
                    "first used with. Retrying the same call will not help.",
                    idempotency_key=key,
                    stripe_code="idempotency_key_in_use",
                    stripe_status=400,
                )
            result: T = saved.result
            return result
        # Like Stripe, a refused request (validation error) stores nothing under its key.
        result = act()
        self._idempotency[key] = _Saved(call.method, call.args, result)
        return result

    def _retrieve(self, resource: Resource[M], object_id: str, method: str) -> M:
        def act() -> M:
            return resource.model.from_dict(self._get(resource.object, object_id))

        return self._call(method, {resource.id_arg: object_id}, None, act)

    def _list(
        self, resource: Resource[M], gte: datetime, lt: datetime | None, method: str
    ) -> Iterator[M]:
        start = int(gte.timestamp())
        end = int(lt.timestamp()) if lt is not None else None

        def act() -> list[M]:
            found = self._stripe.all(resource.object)
            # Stripe lists newest first.
            return [
                resource.model.from_dict(o)
                for o in reversed(found)
                if o["created"] >= start and (end is None or o["created"] < end)
            ]

        args = {"created_gte": gte, "created_lt": lt}
        return iter(self._call(method, args, None, act))

    # -- PaymentGateway: the POST methods -------------------------------------------------------

    def create_checkout_session(
        self, params: CheckoutSessionParams, *, idempotency_key: str
    ) -> objects.GatewayCheckoutSession:
        """Create an open session; validated like Stripe (amount, fee, expiry window)."""

        def act() -> objects.GatewayCheckoutSession:
            session = self._stripe.create_session(params, self.checkout_url_template)
            return objects.GatewayCheckoutSession.from_dict(session)

        return self._call("create_checkout_session", {"params": params}, idempotency_key, act)

    def expire_checkout_session(
        self, session_id: str, *, idempotency_key: str
    ) -> objects.GatewayCheckoutSession:
        """Expire an open session; a completed or expired one is refused, as by Stripe."""

        def act() -> objects.GatewayCheckoutSession:
            return objects.GatewayCheckoutSession.from_dict(self._stripe.expire_session(session_id))

        args = {"session_id": session_id}
        return self._call("expire_checkout_session", args, idempotency_key, act)

    def create_refund(self, **request: Unpack[RefundRequest]) -> objects.GatewayRefund:
        """Refund the payment intent's charge; the charge's ``amount_refunded`` grows."""
        args = _recorded("create_refund", request, RefundRequest)

        def act() -> objects.GatewayRefund:
            refund = self._stripe.refund(
                args["payment_intent_id"], args["amount"], args["reason"], args["metadata"]
            )
            return objects.GatewayRefund.from_dict(refund)

        return self._call("create_refund", args, request["idempotency_key"], act)

    def create_transfer(self, **request: Unpack[TransferRequest]) -> objects.GatewayTransfer:
        """Transfer to a connected account (``acct_...``)."""
        args = _recorded("create_transfer", request, TransferRequest)

        def act() -> objects.GatewayTransfer:
            return objects.GatewayTransfer.from_dict(self._stripe.transfer(**args))

        return self._call("create_transfer", args, request["idempotency_key"], act)

    def create_transfer_reversal(
        self, transfer_id: str, **request: Unpack[ReversalRequest]
    ) -> objects.GatewayTransferReversal:
        """Reverse (part of) a transfer; ``reversed`` becomes true once fully reversed."""
        args: dict[str, Any] = {"transfer_id": transfer_id}
        args.update(_recorded("create_transfer_reversal", request, ReversalRequest))

        def act() -> objects.GatewayTransferReversal:
            return objects.GatewayTransferReversal.from_dict(self._stripe.reverse(**args))

        return self._call("create_transfer_reversal", args, request["idempotency_key"], act)
