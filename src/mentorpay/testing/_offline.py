"""OfflineCheckout: a local page standing in for Stripe's hosted checkout.

With no Stripe account, the examples use :class:`FakeGateway`, whose checkout URLs point to this
page. Pressing Pay completes the fake session and sends the app the same signed webhooks Stripe
would send (``checkout.session.completed`` and ``payment_intent.succeeded``), then the browser is
redirected to the session's success URL. Framework-agnostic: adapters only route to it.

Errors are mentorpay's own, so adapters render them like any other: an unknown session is a
:class:`~mentorpay.errors.NotFoundError` (404), paying a session that is no longer open a
:class:`~mentorpay.errors.ConflictError` (409), and a webhook the app did not accept a
:class:`~mentorpay.errors.GatewayError` (502).
"""

from __future__ import annotations

import html
import ipaddress
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mentorpay.errors import (
    ConfigurationError,
    ConflictError,
    GatewayConnectionError,
    GatewayError,
    GatewayInvalidRequestError,
    NotFoundError,
)
from mentorpay.money import Money
from mentorpay.testing._events import encode_event, make_event, sign_payload
from mentorpay.testing._gateway import FakeGateway

__all__ = ["OfflineCheckout", "PaidSession", "SignedEvent", "WebhookDeliverer", "post_webhook"]


@dataclass(frozen=True, slots=True)
class SignedEvent:
    """A webhook request as Stripe would send it: raw body and Stripe-Signature header."""

    event_type: str
    body: bytes
    signature: str


@dataclass(frozen=True, slots=True)
class PaidSession:
    """The outcome of pressing Pay: where to send the browser and which webhooks to deliver."""

    session_id: str
    payment_intent_id: str
    success_url: str
    events: list[SignedEvent]


#: Sends one signed event to a webhook URL and returns the HTTP status the app answered.
WebhookDeliverer = Callable[[str, SignedEvent], int]


def post_webhook(url: str, event: SignedEvent, timeout: float = 10.0) -> int:
    """POST one signed event to a webhook URL on this machine; returns the HTTP status.

    Any status is returned, 4xx and 5xx included; an unreachable app raises
    :class:`~mentorpay.errors.GatewayConnectionError`, and a URL off this machine (loopback
    http only) :class:`~mentorpay.errors.ConfigurationError`.
    """
    _require_local(url)
    request = urllib.request.Request(  # noqa: S310 - scheme and host checked above
        url,
        data=event.body,
        headers={"Content-Type": "application/json", "Stripe-Signature": event.signature},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:  # a 4xx/5xx answer is a status, not a failure here
        code: int = exc.code
        exc.close()
        return code
    except OSError as exc:  # URLError, refused connection, timeout
        raise GatewayConnectionError(
            f"could not deliver {event.event_type} to {url}: {exc}", url=url
        ) from exc


def _require_local(url: str) -> None:
    if not _is_local_http(url):
        raise ConfigurationError(
            f"the offline checkout only delivers webhooks to this machine, not to {url}: open "
            "the app at http://127.0.0.1:<port>/ or http://localhost:<port>/",
            url=url,
        )


def _is_local_http(url: str) -> bool:
    """http:// to this machine only (loopback), whatever the Host header of a request said."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


@contextmanager
def _known_session(session_id: str) -> Iterator[None]:
    """The fake's refusals as the errors an adapter should answer: 404 unknown, 409 not open."""
    try:
        yield
    except GatewayInvalidRequestError as exc:
        code = exc.details.get("stripe_code")
        if code == "checkout_session_not_open":
            raise ConflictError(
                f"checkout session {session_id} is no longer open (paid or expired), so it "
                "cannot be paid again",
                session_id=session_id,
            ) from None
        if code != "resource_missing":
            raise
        raise NotFoundError(
            f"there is no offline checkout session {session_id}; the offline gateway keeps its "
            "sessions in memory, so they are gone after the app restarts: start a new checkout",
            session_id=session_id,
        ) from None


class OfflineCheckout:
    """Renders the fake checkout page and turns "Pay" into signed webhook events."""

    def __init__(self, gateway: FakeGateway, webhook_secret: str) -> None:
        self._gateway = gateway
        self._secret = webhook_secret

    def page_html(self, session_id: str, pay_action: str) -> str:
        """The checkout page for one session; its form POSTs to ``pay_action``."""
        with _known_session(session_id):
            session = self._gateway.session(session_id)
        amount = Money(session["amount_total"], session["currency"])
        meta = session.get("metadata") or {}
        status = session["status"]
        esc = html.escape
        button = (
            f'<form method="post" action="{esc(pay_action)}">'
            f'<button id="pay" type="submit">Pay {esc(str(amount))}</button></form>'
            if status == "open"
            else f"<p id='status'>This checkout is {esc(status)}.</p>"
        )
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<title>Offline checkout (not Stripe)</title>"
            "<style>body{font-family:sans-serif;max-width:32rem;margin:3rem auto}"
            "button{font-size:1.2rem;padding:.6rem 1.4rem}</style></head><body>"
            "<h1>Offline checkout</h1>"
            "<p>This page stands in for Stripe Checkout. No card is charged.</p>"
            f"<p>Booking <b id='booking'>{esc(str(meta.get('booking_id', '?')))}</b> with "
            f"mentor {esc(str(meta.get('mentor_id', '?')))}: "
            f"<b id='amount'>{esc(str(amount))}</b></p>"
            f"{button}"
            f"<p><a href='{esc(session.get('cancel_url') or '/')}'>Cancel</a></p>"
            "</body></html>"
        )

    def pay(self, session_id: str) -> PaidSession:
        """Complete the session and build the signed webhooks Stripe would send for it."""
        with _known_session(session_id):
            session = self._gateway.complete_checkout_session(session_id)
        intent_id = str(session["payment_intent"])
        intent = self._gateway.payment_intent(intent_id)
        events = []
        for event_type, obj in (
            ("checkout.session.completed", session),
            ("payment_intent.succeeded", intent),
        ):
            body = encode_event(make_event(event_type, obj))
            events.append(SignedEvent(event_type, body, sign_payload(body, self._secret)))
        success_url = str(session.get("success_url") or "/").replace(
            "{CHECKOUT_SESSION_ID}", session_id
        )
        return PaidSession(session_id, intent_id, success_url, events)

    def pay_and_deliver(
        self, session_id: str, webhook_url: str, deliver: WebhookDeliverer = post_webhook
    ) -> PaidSession:
        """:meth:`pay`, then send each event to ``webhook_url`` in order, as Stripe would.

        Raises :class:`~mentorpay.errors.GatewayError` (502) when the app answers an event
        with anything but a 2xx status (a secret that does not match, a failing handler).
        """
        if deliver is post_webhook:
            _require_local(webhook_url)  # before paying: a refused URL must not spend the session
        paid = self.pay(session_id)
        for event in paid.events:
            status = deliver(webhook_url, event)
            if not 200 <= status < 300:
                raise GatewayError(
                    f"the app answered HTTP {status} to the offline checkout's "
                    f"{event.event_type} webhook at {webhook_url}; check that the webhook "
                    "secret the offline checkout signs with is one the app accepts",
                    event_type=event.event_type,
                    webhook_status=status,
                    session_id=session_id,
                )
        return paid
