"""The read side of :class:`~mentorpay.gateway.PaymentGateway`, written once.

``retrieve_*`` and ``list_*`` differ only in the Stripe resource they read, so they are one
table of :class:`Resource` and two descriptors over two primitives an implementation provides:
``_retrieve(resource, object_id, method)`` and ``_list(resource, created_gte, created_lt,
method)``. :class:`GatewayReads` is the mixin that carries the eleven public methods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, Self, TypeVar, overload

from mentorpay.stripe_objects import (
    GatewayBalanceTransaction,
    GatewayCharge,
    GatewayCheckoutSession,
    GatewayDispute,
    GatewayObject,
    GatewayPaymentIntent,
    GatewayRefund,
    GatewayTransfer,
)

__all__ = [
    "BALANCE_TRANSACTIONS",
    "CHARGES",
    "CHECKOUT_SESSIONS",
    "DISPUTES",
    "PAYMENT_INTENTS",
    "REFUNDS",
    "TRANSFERS",
    "GatewayReads",
    "Resource",
]

M = TypeVar("M", bound=GatewayObject)
M_co = TypeVar("M_co", bound=GatewayObject, covariant=True)


@dataclass(frozen=True, slots=True)
class Resource(Generic[M]):
    """One kind of Stripe object the gateway reads."""

    model: type[M]
    #: Stripe's name for it (the ``object`` field), as in "No such payment_intent".
    object: str
    #: In messages: "retrieve payment intent pi_1", "list payment intents".
    noun: str
    #: Its API collection under ``StripeClient.v1`` (also its path under ``/v1/``).
    path: str
    #: The parameter name of its ``retrieve_*`` method.
    id_arg: str


CHECKOUT_SESSIONS = Resource(
    GatewayCheckoutSession,
    "checkout.session",
    "checkout session",
    "checkout.sessions",
    "session_id",
)
PAYMENT_INTENTS = Resource(
    GatewayPaymentIntent, "payment_intent", "payment intent", "payment_intents", "payment_intent_id"
)
CHARGES = Resource(GatewayCharge, "charge", "charge", "charges", "charge_id")
REFUNDS = Resource(GatewayRefund, "refund", "refund", "refunds", "refund_id")
DISPUTES = Resource(GatewayDispute, "dispute", "dispute", "disputes", "dispute_id")
TRANSFERS = Resource(GatewayTransfer, "transfer", "transfer", "transfers", "transfer_id")
BALANCE_TRANSACTIONS = Resource(
    GatewayBalanceTransaction,
    "balance_transaction",
    "balance transaction",
    "balance_transactions",
    "balance_transaction_id",
)


class _Method(Generic[M]):
    """A public method of :class:`GatewayReads`, named by the attribute it is assigned to."""

    def __init__(self, resource: Resource[M]) -> None:
        self.resource = resource
        self.name = ""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name


class _Retrieve(_Method[M]):
    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(self, obj: GatewayReads, owner: type[Any]) -> Callable[[str], M]: ...

    def __get__(self, obj: GatewayReads | None, owner: type[Any]) -> Self | Callable[[str], M]:
        if obj is None:
            return self
        resource, name = self.resource, self.name

        def retrieve(*args: str, **kwargs: str) -> M:
            # One argument, by position or by its protocol name, as the explicit method took.
            given = [*args, *kwargs.values()]
            if len(given) != 1 or not set(kwargs) <= {resource.id_arg}:
                raise TypeError(f"{name}() takes one argument, {resource.id_arg}")
            return obj._retrieve(resource, given[0], name)

        retrieve.__name__ = name
        retrieve.__doc__ = f"One {resource.noun}."
        return retrieve


class _List(_Method[M]):
    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(self, obj: GatewayReads, owner: type[Any]) -> _Listing[M]: ...

    def __get__(self, obj: GatewayReads | None, owner: type[Any]) -> Self | _Listing[M]:
        if obj is None:
            return self
        resource, name = self.resource, self.name

        def listing(*, created_gte: datetime, created_lt: datetime | None = None) -> Iterator[M]:
            return obj._list(resource, created_gte, created_lt, name)

        listing.__name__ = name
        listing.__doc__ = f"Every {resource.noun} created in ``[created_gte, created_lt)``."
        return listing


class _Listing(Protocol[M_co]):
    """The type of a ``list_*`` method (keyword-only bounds), for the type checker."""

    def __call__(
        self, *, created_gte: datetime, created_lt: datetime | None = None
    ) -> Iterator[M_co]: ...


class GatewayReads:
    """Mixin: the ``retrieve_*`` and ``list_*`` methods of ``PaymentGateway``."""

    retrieve_checkout_session = _Retrieve(CHECKOUT_SESSIONS)
    retrieve_payment_intent = _Retrieve(PAYMENT_INTENTS)
    retrieve_charge = _Retrieve(CHARGES)
    retrieve_dispute = _Retrieve(DISPUTES)
    retrieve_transfer = _Retrieve(TRANSFERS)
    retrieve_balance_transaction = _Retrieve(BALANCE_TRANSACTIONS)
    list_payment_intents = _List(PAYMENT_INTENTS)
    list_checkout_sessions = _List(CHECKOUT_SESSIONS)
    list_charges = _List(CHARGES)
    list_refunds = _List(REFUNDS)
    list_disputes = _List(DISPUTES)
    list_transfers = _List(TRANSFERS)

    def _retrieve(self, resource: Resource[M], object_id: str, method: str) -> M:
        """One object of ``resource`` by id; ``method`` names the public method called."""
        raise NotImplementedError

    def _list(
        self, resource: Resource[M], gte: datetime, lt: datetime | None, method: str
    ) -> Iterator[M]:
        """Every object of ``resource`` created in ``[gte, lt)``."""
        raise NotImplementedError
