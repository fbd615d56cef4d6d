"""The Stripe Connect calls of the gateway: Express accounts, onboarding and dashboard links.

- :class:`~mentorpay.stripe_objects.GatewayAccount` (the lenient model, with the others):
  a connected account as mentorpay reads it.
- :class:`ConnectLink`: an account link (onboarding) or a login link (Express dashboard).
- :class:`StripeAccountCalls`: the four methods on ``stripe.StripeClient``, mixed into
  :class:`~mentorpay.gateway.StripeGateway`. Each POST carries its idempotency key in the
  request options (:mod:`mentorpay.gateway.keys`), never in the params.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, TypedDict, Unpack, cast

from mentorpay.gateway._check import check_request
from mentorpay.gateway._reads import Resource
from mentorpay.stripe_objects import GatewayAccount

if TYPE_CHECKING:
    import stripe
    from stripe.params import AccountCreateParams, AccountLinkCreateParams

__all__ = [
    "ACCOUNTS",
    "LINK_TYPES",
    "ConnectLink",
    "LinkType",
    "StripeAccountCalls",
]

#: The account link types mentorpay asks for (Express accounts take only onboarding links).
LinkType = Literal["account_onboarding"]
LINK_TYPES: Final[frozenset[str]] = frozenset({"account_onboarding"})


class _AccountLinkKeys(TypedDict):
    refresh_url: str
    return_url: str
    idempotency_key: str


class AccountLinkRequest(_AccountLinkKeys, total=False):
    """:meth:`PaymentGateway.create_account_link`'s keyword arguments (implementations take them
    as ``**request``, as the other POST methods do)."""

    link_type: LinkType


@dataclass(frozen=True, slots=True)
class ConnectLink:
    """A single-use URL Stripe made for the mentor: onboarding or the Express dashboard."""

    url: str
    created: datetime | None
    #: Account links expire within minutes; login links carry no expiry.
    expires_at: datetime | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ConnectLink:
        """Read an ``account_link`` or ``login_link`` object."""

        def when(value: Any) -> datetime | None:
            return datetime.fromtimestamp(value, UTC) if isinstance(value, int) else None

        return cls(str(d.get("url") or ""), when(d.get("created")), when(d.get("expires_at")))


ACCOUNTS = Resource(GatewayAccount, "account", "account", "accounts", "account_id")


class StripeAccountCalls:
    """The Connect calls on ``stripe.StripeClient`` (mixed into ``StripeGateway``)."""

    _client: stripe.StripeClient
    _options: Callable[..., stripe.RequestOptions]
    _call: Callable[..., Any]
    _retrieve: Callable[..., Any]

    def _link(self, action: str, key: str, send: Callable[[stripe.RequestOptions], Any]) -> Any:
        options = self._options(key)
        return self._call(action, key, lambda: send(options))

    def create_account(
        self, *, mentor_id: str, idempotency_key: str, country: str | None = None
    ) -> GatewayAccount:
        """Create the mentor's Express connected account, named by ``metadata[mentor_id]``."""
        body: dict[str, Any] = {"type": "express", "metadata": {"mentor_id": mentor_id}}
        if country is not None:
            body["country"] = country
        params = cast("AccountCreateParams", body)
        send = functools.partial(self._client.v1.accounts.create, params)
        obj = self._link(f"create account for mentor {mentor_id}", idempotency_key, send)
        return GatewayAccount.from_dict(_plain(obj))

    def create_account_link(
        self, account_id: str, **request: Unpack[AccountLinkRequest]
    ) -> ConnectLink:
        """A fresh onboarding link for ``account_id`` (single-use, expires within minutes)."""
        check_request("create_account_link", request, AccountLinkRequest)
        idempotency_key = request["idempotency_key"]
        body = {
            "account": account_id,
            "refresh_url": request["refresh_url"],
            "return_url": request["return_url"],
            "type": request.get("link_type", "account_onboarding"),
        }
        params = cast("AccountLinkCreateParams", body)
        send = functools.partial(self._client.v1.account_links.create, params)
        obj = self._link(f"create account link for {account_id}", idempotency_key, send)
        return ConnectLink.from_dict(_plain(obj))

    def create_login_link(self, account_id: str, *, idempotency_key: str) -> ConnectLink:
        """A single-use link into the Express dashboard of ``account_id``."""
        send = functools.partial(self._client.v1.accounts.login_links.create, account_id, None)
        obj = self._link(f"create login link for {account_id}", idempotency_key, send)
        return ConnectLink.from_dict(_plain(obj))

    def retrieve_account(self, account_id: str) -> GatewayAccount:
        """One connected account, as Stripe has it now."""
        account: GatewayAccount = self._retrieve(ACCOUNTS, account_id, "retrieve_account")
        return account


def _plain(obj: Any) -> dict[str, Any]:
    to_dict = getattr(obj, "to_dict", None)
    result = to_dict() if callable(to_dict) else obj
    return dict(result) if isinstance(result, Mapping) else {}
