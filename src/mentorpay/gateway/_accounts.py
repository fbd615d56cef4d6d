"""The Stripe Connect calls of the gateway: Express accounts, onboarding and dashboard links.

- :class:`GatewayAccount`: a connected account as mentorpay reads it (the fields are those of
  the SDK's typed ``stripe.Account``; ``tests/test_accounts_shapes.py`` checks them).
- :class:`GatewayLink`: an account link (onboarding) or a login link (Express dashboard).
- :class:`StripeAccountCalls`: the four methods on ``stripe.StripeClient``, mixed into
  :class:`~mentorpay.gateway.StripeGateway`. Each POST carries its idempotency key in the
  request options (:mod:`mentorpay.gateway.keys`), never in the params.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, cast

from pydantic import Field, PlainValidator

from mentorpay.gateway._reads import Resource
from mentorpay.stripe_objects import GatewayObject, LooseMetadata, Timestamp

if TYPE_CHECKING:
    import stripe
    from stripe.params import AccountCreateParams, AccountLinkCreateParams

__all__ = [
    "ACCOUNTS",
    "LINK_TYPES",
    "GatewayAccount",
    "GatewayLink",
    "LinkType",
    "StripeAccountCalls",
]

#: The account link types mentorpay asks for (Express accounts take only onboarding links).
LinkType = Literal["account_onboarding"]
LINK_TYPES: Final[frozenset[str]] = frozenset({"account_onboarding"})


def _flag(value: Any) -> bool:
    return value is True


def _ids(value: Any) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return ()
    return tuple(str(v) for v in value)


Flag = Annotated[bool, PlainValidator(_flag)]
Due = Annotated[tuple[str, ...], PlainValidator(_ids)]


def _requirements(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


class GatewayAccount(GatewayObject):
    """A connected account: whether it can take charges and receive payouts, and what is due."""

    charges_enabled: Flag = False
    payouts_enabled: Flag = False
    details_submitted: Flag = False
    livemode: Flag = False
    created: Timestamp = None
    metadata: LooseMetadata = Field(default_factory=dict)
    requirements: Annotated[dict[str, Any], PlainValidator(_requirements)] = Field(
        default_factory=dict
    )

    @property
    def currently_due(self) -> tuple[str, ...]:
        """``requirements.currently_due``: what the mentor must provide now."""
        return _ids(self.requirements.get("currently_due"))

    @property
    def past_due(self) -> tuple[str, ...]:
        """``requirements.past_due``: overdue, so the account is restricted."""
        return _ids(self.requirements.get("past_due"))

    @property
    def disabled_reason(self) -> str | None:
        """``requirements.disabled_reason``, when Stripe disabled something."""
        reason = self.requirements.get("disabled_reason")
        return reason if isinstance(reason, str) else None


@dataclass(frozen=True, slots=True)
class GatewayLink:
    """A single-use URL Stripe made for the mentor: onboarding or the Express dashboard."""

    url: str
    created: datetime | None
    #: Account links expire within minutes; login links carry no expiry.
    expires_at: datetime | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GatewayLink:
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
        self,
        account_id: str,
        *,
        refresh_url: str,
        return_url: str,
        idempotency_key: str,
        link_type: LinkType = "account_onboarding",
    ) -> GatewayLink:
        """A fresh onboarding link for ``account_id`` (single-use, expires within minutes)."""
        body = {
            "account": account_id,
            "refresh_url": refresh_url,
            "return_url": return_url,
            "type": link_type,
        }
        params = cast("AccountLinkCreateParams", body)
        send = functools.partial(self._client.v1.account_links.create, params)
        obj = self._link(f"create account link for {account_id}", idempotency_key, send)
        return GatewayLink.from_dict(_plain(obj))

    def create_login_link(self, account_id: str, *, idempotency_key: str) -> GatewayLink:
        """A single-use link into the Express dashboard of ``account_id``."""
        send = functools.partial(self._client.v1.accounts.login_links.create, account_id, None)
        obj = self._link(f"create login link for {account_id}", idempotency_key, send)
        return GatewayLink.from_dict(_plain(obj))

    def retrieve_account(self, account_id: str) -> GatewayAccount:
        """One connected account, as Stripe has it now."""
        account: GatewayAccount = self._retrieve(ACCOUNTS, account_id, "retrieve_account")
        return account


def _plain(obj: Any) -> dict[str, Any]:
    to_dict = getattr(obj, "to_dict", None)
    result = to_dict() if callable(to_dict) else obj
    return dict(result) if isinstance(result, Mapping) else {}
