"""The in-memory Stripe behind :class:`~mentorpay.testing.FakeGateway`: one store of objects and
the Stripe rules that change them.

Objects are plain dicts with the fields Stripe's API returns that mentorpay reads, kept in one
store keyed by Stripe's object name (``checkout.session``, ``payment_intent``, ``charge``...).
The rules are Stripe's as mentorpay relies on them: refunds never exceed what remains on the
charge, reversals never exceed what remains on the transfer, only an open Checkout Session can
be expired or completed, and an unknown id is ``resource_missing``. Not thread-safe on its own:
the gateway calls it under its lock.
"""

from __future__ import annotations

import copy
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from mentorpay.errors import GatewayInvalidRequestError
from mentorpay.gateway.protocol import REFUND_REASONS, CheckoutSessionParams, PlanCheckoutParams
from mentorpay.money import Money

__all__ = ["SESSION", "FakeStripe"]

SESSION = "checkout.session"


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


def _check_checkout(params: CheckoutSessionParams | PlanCheckoutParams, now: datetime) -> None:
    """Refuse what Stripe refuses: amount, expiry window, fee and destination."""
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


def _new_id(prefix: str) -> str:
    # Random, not a counter: a demo database outlives the fake, so ids must never repeat.
    return f"{prefix}_test_{uuid.uuid4().hex[:24]}"


def _session(
    params: CheckoutSessionParams, url: str, created: int, livemode: bool
) -> dict[str, Any]:
    return {
        "mode": "payment",
        "url": url,
        "status": "open",
        "payment_status": "unpaid",
        "payment_intent": None,
        "amount_total": params.amount.amount,
        "currency": params.amount.currency.lower(),
        "client_reference_id": params.booking_id,
        "success_url": params.success_url,
        "cancel_url": params.cancel_url,
        "expires_at": int(params.expires_at.timestamp()),
        "created": created,
        "metadata": dict(params.metadata),
        "livemode": livemode,
    }


def _refuse_plan_session(stripe: FakeStripe, session_id: str) -> None:
    """Paying a subscription-mode session (a subscription and its first invoice) is the
    offline checkout's part, not this store's."""
    if session_id in stripe.plan_params:
        raise _invalid(
            f"Checkout Session {session_id} sells a plan; the fake pays only booking sessions "
            "and package sessions (complete_checkout_session)",
            "checkout_session_not_supported",
        )


def _intent(
    params: CheckoutSessionParams | PlanCheckoutParams, charge_id: str, created: int, livemode: bool
) -> dict[str, Any]:
    """The succeeded PaymentIntent of a paid session (with its Connect fee and destination)."""
    fee, destination = params.application_fee, params.destination
    return {
        "amount": params.amount.amount,
        "amount_received": params.amount.amount,
        "currency": params.amount.currency.lower(),
        "status": "succeeded",
        "latest_charge": charge_id,
        "metadata": dict(params.metadata),
        "created": created,
        "livemode": livemode,
        "application_fee_amount": fee.amount if fee else None,
        "transfer_data": {"destination": destination} if destination else None,
    }


def _charge(pi: Mapping[str, Any], amount: int, created: int, livemode: bool) -> dict[str, Any]:
    """The succeeded charge of a PaymentIntent, carrying its metadata."""
    return {
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "refunded": False,
        "currency": pi["currency"],
        "status": "succeeded",
        "paid": True,
        "payment_intent": pi["id"],
        "metadata": dict(pi.get("metadata") or {}),
        "created": created,
        "livemode": livemode,
    }


#: The fake's processing fee: 1.5% (rounded half up) + 20 minor units, Stripe's standard UK
#: card pricing as of 2026; the dispute fee is a flat 15.00 in the dispute's currency.
PROCESSING_FEE_BPS = 150
PROCESSING_FEE_FIXED = 20
DISPUTE_FEE = 1500


def processing_fee(amount: int) -> int:
    """What the fake Stripe keeps of a charge of ``amount``."""
    return (amount * PROCESSING_FEE_BPS * 2 + 10_000) // 20_000 + PROCESSING_FEE_FIXED


def _balance_transaction(
    source: str, amount: int, fee: int, currency: str, *, created: int, category: str
) -> dict[str, Any]:
    """A BalanceTransaction in Stripe's shape (``fee_details`` itemize ``fee``)."""
    return {
        "amount": amount,
        "fee": fee,
        "net": amount - fee,
        "currency": currency,
        "type": "charge" if category == "charge" else "adjustment",
        "reporting_category": category,
        "source": source,
        "status": "pending",
        "created": created,
        "available_on": created,
        "description": None,
        "exchange_rate": None,
        "fee_details": [
            {
                "amount": fee,
                "application": None,
                "currency": currency,
                "description": "Stripe processing fees" if category == "charge" else "Dispute fee",
                "type": "stripe_fee",
            }
        ],
    }


def _settle(obj: dict[str, Any], field: str, value: int) -> None:
    """Add ``value`` to a cumulative amount; the object is done once it covers the whole."""
    obj[f"amount_{field}"] += value
    obj[field] = obj[f"amount_{field}"] == obj["amount"]


class FakeStripe:
    """Stripe's objects in memory, and what each request does to them."""

    def __init__(self, clock: Callable[[], datetime], livemode: bool) -> None:
        self._clock = clock
        self._livemode = livemode
        #: Stripe's object name -> id -> the object, in creation order.
        self._objects: defaultdict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self._session_params: dict[str, CheckoutSessionParams] = {}
        #: What each plan session was created with (``_fake_billing``).
        self.plan_params: dict[str, PlanCheckoutParams] = {}

    # -- the store ------------------------------------------------------------------------------

    @property
    def livemode(self) -> bool:
        """Whether the objects are live-mode objects."""
        return self._livemode

    def session_params(self, session_id: str) -> CheckoutSessionParams:
        """What a session was created with (its intent and charge are built from it)."""
        self.stored(SESSION, session_id)
        _refuse_plan_session(self, session_id)
        return self._session_params[session_id]

    def now(self) -> int:
        """The clock as Stripe's ``created`` stamp."""
        return int(self._clock().timestamp())

    def stored(self, kind: str, object_id: str) -> dict[str, Any]:
        """The stored object itself, to change; an unknown id is ``resource_missing``."""
        obj = self._objects[kind].get(object_id)
        if obj is None:
            raise _missing(kind, object_id)
        return obj

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Copies of every object of ``kind``, oldest first."""
        return [copy.deepcopy(o) for o in self._objects[kind].values()]

    def add(self, kind: str, object_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Store a new object of ``kind``; returns a copy."""
        obj = {"id": object_id, "object": kind, **fields}
        self._objects[kind][object_id] = obj
        return copy.deepcopy(obj)

    def _with_fee(self, charge: dict[str, Any], charge_id: str) -> dict[str, Any]:
        """The charge with its balance transaction (Stripe's processing fee) stored."""
        amount = charge["amount"]
        txn = _balance_transaction(
            charge_id,
            amount,
            processing_fee(amount),
            charge["currency"],
            created=charge["created"],
            category="charge",
        )
        txn_id = _new_id("txn")
        self.add("balance_transaction", txn_id, txn)
        return {**charge, "balance_transaction": txn_id}

    # -- the customer's and the bank's part -----------------------------------------------------

    def add_payment_intent(self, intent: Mapping[str, Any]) -> dict[str, Any]:
        """Keep a PaymentIntent made elsewhere, with a charge so it can be refunded."""
        pi = copy.deepcopy(dict(intent))
        charge_id = pi.get("latest_charge") or _new_id("ch")
        pi["latest_charge"] = charge_id
        amount = int(pi.get("amount_received") or pi["amount"])
        self._objects["payment_intent"][pi["id"]] = pi
        self.add(
            "charge",
            charge_id,
            self._with_fee(_charge(pi, amount, self.now(), self._livemode), charge_id),
        )
        return copy.deepcopy(pi)

    def complete_session(self, session_id: str) -> dict[str, Any]:
        """Pay an open session: a succeeded PaymentIntent and Charge appear."""
        session = self.stored(SESSION, session_id)
        if session["status"] != "open":
            raise _invalid(
                f"Checkout Session {session_id} is {session['status']}, not open",
                "checkout_session_not_open",
            )
        params: CheckoutSessionParams | PlanCheckoutParams
        if session_id in self.plan_params:
            params = self.plan_params[session_id]
            if params.kind != "package":
                _refuse_plan_session(self, session_id)
        else:
            params = self._session_params[session_id]
        created = self.now()
        pi_id, charge_id = _new_id("pi"), _new_id("ch")
        pi = self.add("payment_intent", pi_id, _intent(params, charge_id, created, self._livemode))
        charge = _charge(pi, params.amount.amount, created, self._livemode)
        self.add("charge", charge_id, self._with_fee(charge, charge_id))
        session.update(status="complete", payment_status="paid", payment_intent=pi_id)
        return copy.deepcopy(session)

    def open_dispute(
        self, payment_intent_id: str, amount: Money | None, reason: str, inquiry: bool = False
    ) -> dict[str, Any]:
        """A dispute of the payment's charge (the whole unrefunded amount unless ``amount``);
        an ``inquiry`` (``warning_needs_response``) is a question that may never become one."""
        pi = self.stored("payment_intent", payment_intent_id)
        charge = self._objects["charge"][pi["latest_charge"]]
        dispute = {
            "amount": amount.amount if amount else charge["amount"] - charge["amount_refunded"],
            "currency": charge["currency"],
            "charge": charge["id"],
            "payment_intent": payment_intent_id,
            "status": "warning_needs_response" if inquiry else "needs_response",
            "reason": reason,
            "created": self.now(),
            "livemode": self._livemode,
        }
        dispute_id = _new_id("dp")
        txn = _balance_transaction(
            dispute_id,
            -dispute["amount"],
            DISPUTE_FEE,
            charge["currency"],
            created=self.now(),
            category="dispute",
        )
        dispute["balance_transactions"] = [self.add("balance_transaction", _new_id("txn"), txn)]
        return self.add("dispute", dispute_id, dispute)

    def close_dispute(self, dispute_id: str, won: bool) -> dict[str, Any]:
        """The bank's decision; an inquiry simply closes (``warning_closed``)."""
        dispute = self.stored("dispute", dispute_id)
        inquiry = str(dispute["status"]).startswith("warning_")
        dispute["status"] = "warning_closed" if inquiry else "won" if won else "lost"
        return copy.deepcopy(dispute)

    # -- what each request does -----------------------------------------------------------------

    def create_session(self, params: CheckoutSessionParams, url_template: str) -> dict[str, Any]:
        """An open Checkout Session, validated like Stripe."""
        now = self._clock()
        _check_checkout(params, now)
        session_id = _new_id("cs")
        url = url_template.format(session_id=session_id)
        self._session_params[session_id] = params
        session = _session(params, url, int(now.timestamp()), self._livemode)
        return self.add(SESSION, session_id, session)

    def expire_session(self, session_id: str) -> dict[str, Any]:
        """Expire an open session; any other is refused."""
        session = self.stored(SESSION, session_id)
        if session["status"] != "open":
            raise _invalid(
                f'Only Checkout Sessions with a status in ["open"] can be expired; '
                f"{session_id} is {session['status']}",
                "checkout_session_not_expirable",
            )
        session["status"] = "expired"
        return copy.deepcopy(session)

    def refund(
        self,
        payment_intent_id: str,
        amount: Money | None,
        reason: str | None,
        metadata: Mapping[str, str],
    ) -> dict[str, Any]:
        """Refund (part of) the payment's charge; its ``amount_refunded`` grows."""
        pi = self.stored("payment_intent", payment_intent_id)
        if reason is not None and reason not in REFUND_REASONS:
            raise _invalid(f"Invalid reason: {reason}")
        charge = self._objects["charge"][pi["latest_charge"]]
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
        refund = {
            "amount": value,
            "currency": charge["currency"],
            "charge": charge["id"],
            "payment_intent": payment_intent_id,
            "status": "succeeded",
            "reason": reason,
            "metadata": dict(metadata),
            "created": self.now(),
        }
        _settle(charge, "refunded", value)
        return self.add("refund", _new_id("re"), refund)

    def transfer(
        self,
        amount: Money,
        destination: str,
        metadata: Mapping[str, str],
        transfer_group: str | None,
        description: str | None,
    ) -> dict[str, Any]:
        """A transfer from the platform to a connected account (``acct_...``)."""
        if amount.amount <= 0:
            raise _invalid("amount must be positive")
        if not destination.startswith("acct_"):
            raise _missing("destination", destination)
        transfer = {
            "amount": amount.amount,
            "amount_reversed": 0,
            "currency": amount.currency.lower(),
            "destination": destination,
            "reversed": False,
            "transfer_group": transfer_group,
            "description": description,
            "metadata": dict(metadata),
            "created": self.now(),
            "livemode": self._livemode,
        }
        return self.add("transfer", _new_id("tr"), transfer)

    def reverse(
        self, transfer_id: str, amount: Money | None, metadata: Mapping[str, str]
    ) -> dict[str, Any]:
        """Reverse (part of) a transfer; ``reversed`` once fully reversed."""
        transfer = self.stored("transfer", transfer_id)
        remaining = transfer["amount"] - transfer["amount_reversed"]
        value = remaining if amount is None else amount.amount
        if remaining <= 0 or value <= 0 or value > remaining:
            raise _invalid(
                f"Transfer {transfer_id} has {remaining} left to reverse, asked for {value}"
            )
        reversal = {
            "amount": value,
            "currency": transfer["currency"],
            "transfer": transfer_id,
            "metadata": dict(metadata),
            "created": self.now(),
        }
        _settle(transfer, "reversed", value)
        return self.add("transfer_reversal", _new_id("trr"), reversal)
