"""The Connect part of :class:`~mentorpay.testing.FakeGateway`: Express accounts in memory.

An account starts as Stripe starts an Express account: nothing enabled, details not submitted,
``requirements.currently_due`` listing what onboarding collects. :meth:`FakeAccountCalls.
complete_onboarding` plays the mentor finishing Stripe's hosted onboarding (the offline Connect
page calls it); :meth:`FakeAccountCalls.update_account` sets any state a test needs. Both return
the account object, ready for ``make_event("account.updated", obj, account=obj["id"])``.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar, Unpack

from mentorpay.gateway._accounts import ACCOUNTS, AccountLinkRequest, ConnectLink
from mentorpay.gateway._check import check_request
from mentorpay.stripe_objects import GatewayAccount
from mentorpay.testing._fake_stripe import FakeStripe, _invalid, _new_id

__all__ = ["ONBOARDING_DUE", "FakeAccountCalls"]

T = TypeVar("T")

#: What Stripe asks of a new Express individual account before it can take charges and payouts.
ONBOARDING_DUE: Final[tuple[str, ...]] = (
    "business_type",
    "external_account",
    "individual.dob.day",
    "individual.first_name",
    "individual.last_name",
    "tos_acceptance.date",
)

DEFAULT_ACCOUNT_LINK_TEMPLATE = "https://connect.stripe.test/setup/e/{account_id}/{nonce}"


class FakeAccountCalls:
    """Accounts, account links and login links for the fake (mixed into ``FakeGateway``)."""

    _stripe: FakeStripe
    _lock: threading.RLock
    _call: Callable[..., Any]
    _retrieve: Callable[..., Any]
    #: ``{account_id}`` and ``{nonce}`` are replaced; the examples point it at their own page.
    account_link_template: str = DEFAULT_ACCOUNT_LINK_TEMPLATE

    # -- test hooks -----------------------------------------------------------------------------

    def account(self, account_id: str) -> dict[str, Any]:
        """The Account object as Stripe would return it now."""
        with self._lock:
            return copy.deepcopy(self._stripe.stored("account", account_id))

    @property
    def accounts(self) -> list[dict[str, Any]]:
        """Every connected account created, oldest first."""
        with self._lock:
            return self._stripe.all("account")

    def update_account(
        self,
        account_id: str,
        *,
        charges_enabled: bool | None = None,
        payouts_enabled: bool | None = None,
        details_submitted: bool | None = None,
        currently_due: Iterable[str] | None = None,
        past_due: Iterable[str] | None = None,
        disabled_reason: str | None = None,
    ) -> dict[str, Any]:
        """Change the account as Stripe would after the mentor (or Stripe's review) acted."""
        with self._lock:
            account = self._stripe.stored("account", account_id)
            for name, value in (
                ("charges_enabled", charges_enabled),
                ("payouts_enabled", payouts_enabled),
                ("details_submitted", details_submitted),
            ):
                if value is not None:
                    account[name] = value
            requirements = account["requirements"]
            if currently_due is not None:
                requirements["currently_due"] = list(currently_due)
                requirements["eventually_due"] = list(currently_due)
            if past_due is not None:
                requirements["past_due"] = list(past_due)
            requirements["disabled_reason"] = disabled_reason
            return copy.deepcopy(account)

    def complete_onboarding(self, account_id: str) -> dict[str, Any]:
        """The mentor finished onboarding: everything enabled, nothing due."""
        return self.update_account(
            account_id,
            charges_enabled=True,
            payouts_enabled=True,
            details_submitted=True,
            currently_due=(),
            past_due=(),
        )

    # -- PaymentGateway -------------------------------------------------------------------------

    def create_account(
        self, *, mentor_id: str, idempotency_key: str, country: str | None = None
    ) -> GatewayAccount:
        """A new Express account with nothing enabled yet."""
        args = {"mentor_id": mentor_id, "country": country}

        def act() -> GatewayAccount:
            account = {
                "type": "express",
                "country": country or "GB",
                "charges_enabled": False,
                "payouts_enabled": False,
                "details_submitted": False,
                "created": self._stripe.now(),
                "metadata": {"mentor_id": mentor_id},
                "requirements": {
                    "currently_due": list(ONBOARDING_DUE),
                    "eventually_due": list(ONBOARDING_DUE),
                    "past_due": [],
                    "disabled_reason": "requirements.past_due",
                },
            }
            return GatewayAccount.from_dict(self._stripe.add("account", _new_id("acct"), account))

        result: GatewayAccount = self._call("create_account", args, idempotency_key, act)
        return result

    def create_account_link(
        self, account_id: str, **request: Unpack[AccountLinkRequest]
    ) -> ConnectLink:
        """An onboarding link; its URL follows :attr:`account_link_template`."""
        check_request("create_account_link", request, AccountLinkRequest)
        idempotency_key = request["idempotency_key"]
        args = {
            "account_id": account_id,
            "refresh_url": request["refresh_url"],
            "return_url": request["return_url"],
            "link_type": request.get("link_type", "account_onboarding"),
        }

        def act() -> ConnectLink:
            self._stripe.stored("account", account_id)  # resource_missing when unknown
            nonce = _new_id("al")
            url = self.account_link_template.format(account_id=account_id, nonce=nonce)
            now = self._stripe.now()
            self._stripe.add("account_link", nonce, {**args, "url": url, "created": now})
            return ConnectLink.from_dict({"url": url, "created": now, "expires_at": now + 300})

        result: ConnectLink = self._call("create_account_link", args, idempotency_key, act)
        return result

    def create_login_link(self, account_id: str, *, idempotency_key: str) -> ConnectLink:
        """A dashboard link; refused, as by Stripe, before onboarding was submitted."""

        def act() -> ConnectLink:
            account = self._stripe.stored("account", account_id)
            if not account["details_submitted"]:
                raise _invalid(
                    f"Cannot create a login link for account {account_id} that has not "
                    "completed onboarding"
                )
            url = f"https://connect.stripe.test/express/{account_id}/{_new_id('ll')}"
            return ConnectLink.from_dict({"url": url, "created": self._stripe.now()})

        args = {"account_id": account_id}
        result: ConnectLink = self._call("create_login_link", args, idempotency_key, act)
        return result

    def use_account_link(self, nonce: str) -> bool:
        """Mark an onboarding link used (Stripe's work once); False if it already was."""
        with self._lock:
            link = self._stripe.stored("account_link", nonce)
            fresh = not link.get("used")
            link["used"] = True
            return fresh

    def retrieve_account(self, account_id: str) -> GatewayAccount:
        """The account as Stripe has it now."""
        account: GatewayAccount = self._retrieve(ACCOUNTS, account_id, "retrieve_account")
        return account

    def account_link_args(self, nonce: str) -> Mapping[str, Any]:
        """The request an onboarding link was made for (its account, refresh and return URLs)."""
        with self._lock:
            return copy.deepcopy(self._stripe.stored("account_link", nonce))
