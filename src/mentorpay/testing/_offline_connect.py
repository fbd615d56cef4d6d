"""OfflineConnect: a local page standing in for Stripe's hosted Connect onboarding.

With no Stripe account, the examples use :class:`FakeGateway` whose account links point to this
page (``account_link_template``). Pressing "Complete onboarding" plays the mentor filling in
Stripe's forms: the fake account gets charges and payouts enabled and nothing due, and the app
receives the signed ``account.updated`` Stripe would send from that connected account; the
browser then goes to the link's ``return_url``. Like Stripe's, a link works once: a used one
offers its ``refresh_url`` for a fresh link. Stateless (the fake gateway keeps the links), so an
adapter may build one per request. Framework-agnostic: adapters only route to it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from mentorpay.errors import ConflictError, GatewayError, GatewayInvalidRequestError, NotFoundError
from mentorpay.testing._events import encode_event, make_event, sign_payload
from mentorpay.testing._gateway import FakeGateway
from mentorpay.testing._offline import SignedEvent, WebhookDeliverer, _require_local, post_webhook

__all__ = ["OfflineConnect", "OnboardedAccount"]


@dataclass(frozen=True, slots=True)
class OnboardedAccount:
    """The outcome of completing onboarding: where to send the browser, which webhook to send."""

    account_id: str
    return_url: str
    event: SignedEvent


class OfflineConnect:
    """Renders the fake onboarding page and turns "Complete" into a signed ``account.updated``."""

    def __init__(self, gateway: FakeGateway, webhook_secret: str) -> None:
        self._gateway = gateway
        self._secret = webhook_secret

    def _link(self, account_id: str, nonce: str) -> dict[str, Any]:
        try:
            link = dict(self._gateway.account_link_args(nonce))
        except GatewayInvalidRequestError:
            link = {}
        if link.get("account_id") != account_id:
            raise NotFoundError(
                f"there is no offline onboarding link {nonce} for {account_id}; the offline "
                "gateway keeps links in memory, so they are gone after a restart: start again",
                account_id=account_id,
            )
        return link

    def page_html(self, account_id: str, nonce: str, complete_action: str) -> str:
        """The onboarding page of one account link; its form POSTs to ``complete_action``."""
        link = self._link(account_id, nonce)
        account = self._gateway.account(account_id)
        esc = html.escape
        due = account["requirements"].get("currently_due") or []
        if link.get("used"):
            body = (
                "<p id='status'>This onboarding link was already used.</p>"
                f"<p><a id='refresh' href='{esc(str(link['refresh_url']))}'>Get a new link</a></p>"
            )
        else:
            body = (
                "<p>Stripe would now ask for: "
                f"<span id='due'>{esc(', '.join(due) or 'nothing')}</span>.</p>"
                f'<form method="post" action="{esc(complete_action)}">'
                '<button id="complete" type="submit">Complete onboarding</button></form>'
            )
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<title>Offline Connect onboarding (not Stripe)</title>"
            "<style>body{font-family:sans-serif;max-width:32rem;margin:3rem auto}"
            "button{font-size:1.2rem;padding:.6rem 1.4rem}</style></head><body>"
            "<h1>Offline Connect onboarding</h1>"
            "<p>This page stands in for Stripe's hosted onboarding. Nothing is sent to Stripe.</p>"
            f"<p>Mentor <b id='mentor'>{esc(str(account['metadata'].get('mentor_id', '?')))}</b>"
            f", account <b id='account'>{esc(account_id)}</b></p>{body}</body></html>"
        )

    def complete(self, account_id: str, nonce: str) -> OnboardedAccount:
        """Enable the account and build the signed ``account.updated`` Stripe would send."""
        link = self._link(account_id, nonce)
        if not self._gateway.use_account_link(nonce):
            raise ConflictError(
                "this onboarding link was already used; ask for a new one", account_id=account_id
            )
        account = self._gateway.complete_onboarding(account_id)
        body = encode_event(make_event("account.updated", account, account=account_id))
        event = SignedEvent("account.updated", body, sign_payload(body, self._secret))
        return OnboardedAccount(account_id, str(link["return_url"]), event)

    def complete_and_deliver(
        self,
        account_id: str,
        nonce: str,
        webhook_url: str,
        deliver: WebhookDeliverer = post_webhook,
    ) -> OnboardedAccount:
        """:meth:`complete`, then send the event to ``webhook_url`` as Stripe would.

        Raises :class:`~mentorpay.errors.GatewayError` (502) when the app does not answer 2xx.
        """
        if deliver is post_webhook:
            _require_local(webhook_url)
        done = self.complete(account_id, nonce)
        status = deliver(webhook_url, done.event)
        if not 200 <= status < 300:
            raise GatewayError(
                f"the app answered HTTP {status} to the offline onboarding's account.updated "
                f"webhook at {webhook_url}; check the webhook secret it signs with",
                webhook_status=status,
                account_id=account_id,
            )
        return done
