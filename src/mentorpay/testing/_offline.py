"""OfflineCheckout: a local page standing in for Stripe's hosted checkout.

With no Stripe account, the examples use :class:`FakeGateway`, whose checkout URLs point to this
page. The page offers Stripe's test scenarios (:data:`~mentorpay.testing.SCENARIOS`): a card that
works or is declined, a bank debit that settles or fails days later, an inquiry or a dispute
after the payment. Pressing one completes (or declines) the fake session and sends the app the
signed webhooks Stripe would send, then the browser is redirected to the session's success URL
(back to the page after a decline). What Stripe does later waits on a
:class:`~mentorpay.testing.FakeClock`: :meth:`OfflineCheckout.advance` moves it on and delivers
what fell due. Plan sessions work too (:mod:`mentorpay.testing._offline_plans`): a package is
paid like a booking, a subscription through :class:`~mentorpay.testing.FakeBilling`, whose
renewals :meth:`OfflineCheckout.advance` delivers when they fall due. Framework-agnostic:
adapters only route to it.

Errors are mentorpay's own, so adapters render them like any other: an unknown session is a
:class:`~mentorpay.errors.NotFoundError` (404), paying a session that is no longer open a
:class:`~mentorpay.errors.ConflictError` (409), and a webhook the app did not accept a
:class:`~mentorpay.errors.GatewayError` (502).
"""

from __future__ import annotations

import html
import ipaddress
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from mentorpay.errors import (
    ConfigurationError,
    ConflictError,
    GatewayConnectionError,
    GatewayError,
    GatewayInvalidRequestError,
    NotFoundError,
)
from mentorpay.money import Money
from mentorpay.plans.info import PlanSource
from mentorpay.testing._events import encode_event, make_event, sign_payload
from mentorpay.testing._fake_renewals import FakeBilling
from mentorpay.testing._gateway import FakeGateway
from mentorpay.testing._offline_plans import (
    plan_description_html,
    plan_scenarios,
    subscribe,
    subscription_steps,
)
from mentorpay.testing._scenarios import FakeClock, Outcome, Scenario, Step, play

__all__ = ["OfflineCheckout", "PaidSession", "SignedEvent", "WebhookDeliverer", "post_webhook"]


@dataclass(frozen=True, slots=True)
class SignedEvent:
    """A webhook request as Stripe would send it: raw body and Stripe-Signature header."""

    event_type: str
    body: bytes
    signature: str


@dataclass(frozen=True, slots=True)
class PaidSession:
    """The outcome of pressing Pay: where to send the browser and which webhooks to deliver.

    ``outcome`` is ``paid``, ``declined`` (``success_url`` is then the checkout page again) or
    ``pending`` (a bank debit); ``scheduled`` names what Stripe will do later on the clock.
    """

    session_id: str
    payment_intent_id: str
    success_url: str
    events: list[SignedEvent]
    outcome: Outcome = "paid"
    scheduled: list[str] = field(default_factory=list)


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
    """Renders the fake checkout page and turns its buttons into signed webhook events.

    Pass the :class:`FakeClock` the :class:`FakeGateway` runs on as ``clock`` (one running
    with real time is made otherwise), so Stripe's ``created`` stamps follow it. ``plans``
    (the host's :class:`~mentorpay.PlanSource`) lets the page show a plan's sessions;
    ``billing`` plays subscriptions (one on the gateway and clock is made otherwise).
    """

    def __init__(
        self,
        gateway: FakeGateway,
        webhook_secret: str,
        *,
        clock: FakeClock | None = None,
        plans: PlanSource | None = None,
        billing: FakeBilling | None = None,
    ) -> None:
        self._gateway = gateway
        self._secret = webhook_secret
        self.clock = clock if clock is not None else FakeClock()
        self._plans = plans
        self.billing = billing if billing is not None else FakeBilling(gateway, self.clock)
        self._steps: list[Step] = []
        self._retry: list[SignedEvent] = []
        self._lock = threading.Lock()

    def page_html(self, session_id: str, pay_action: str, *, declined: bool = False) -> str:
        """The checkout page for one session: one button per scenario, each POSTing to
        ``pay_action?scenario=<name>`` (the plain card's button has the id ``pay``)."""
        with _known_session(session_id):
            session = self._gateway.session(session_id)
        amount = Money(session["amount_total"], session["currency"])
        meta = session.get("metadata") or {}
        status = session["status"]
        plan = self._gateway.plan_checkout(session_id)
        esc = html.escape
        buttons = "".join(
            f'<p><button id="{"pay" if name == "card" else "pay-" + name}" type="submit" '
            f'formaction="{esc(pay_action)}?scenario={name}">{esc(label)}</button></p>'
            for name, label in plan_scenarios(plan).items()
        )
        what = (
            plan_description_html(plan, self._plans)
            if plan is not None
            else f"<p>Booking <b id='booking'>{esc(str(meta.get('booking_id', '?')))}</b> with "
            f"mentor {esc(str(meta.get('mentor_id', '?')))}: "
            f"<b id='amount'>{esc(str(amount))}</b></p>"
        )
        body = (
            f'<form method="post" action="{esc(pay_action)}">'
            f"<p>Pay {esc(str(amount))} as:</p>{buttons}</form>"
            if status == "open"
            else f"<p id='status'>This checkout is {esc(status)}.</p>"
        )
        notice = (
            "<p id='declined' role='alert'>Your card was declined. Try another one.</p>"
            if declined and status == "open"
            else ""
        )
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<title>Offline checkout (not Stripe)</title>"
            "<style>body{font-family:sans-serif;max-width:32rem;margin:3rem auto}"
            "button{font-size:1rem;padding:.5rem 1rem}</style></head><body>"
            "<h1>Offline checkout</h1>"
            "<p>This page stands in for Stripe Checkout. No card is charged.</p>"
            f"{what}{notice}{body}"
            f"<p><a href='{esc(session.get('cancel_url') or '/')}'>Cancel</a></p>"
            "</body></html>"
        )

    def pay(self, session_id: str, scenario: Scenario = "card") -> PaidSession:
        """Play ``scenario`` on the session and build the signed webhooks Stripe would send
        now; what Stripe does later is scheduled on the clock (see :meth:`advance`)."""
        now = self.clock()
        with _known_session(session_id):
            plan = self._gateway.plan_checkout(session_id)
            later: list[Step] = []
            if plan is not None and plan.kind == "subscription":
                outcome: Outcome = "paid"
                found = subscribe(self.billing, session_id, scenario)
            else:
                outcome, found, later = play(self._gateway, session_id, scenario, now)
        with self._lock:
            self._steps.extend(later)
            self._steps.sort(key=lambda step: step.due)
        events = [self._signed(event_type, obj) for event_type, obj in found]
        intent_id = next(
            (str(obj["id"]) for t, obj in found if t.startswith("payment_intent.")), ""
        )
        session = self._gateway.session(session_id)
        if outcome == "declined":
            target = f"{session.get('url') or '/fake-checkout/' + session_id}?declined=1"
        else:
            target = str(session.get("success_url") or "/")
        success_url = target.replace("{CHECKOUT_SESSION_ID}", session_id)
        labels = [step.label for step in later]
        return PaidSession(session_id, intent_id, success_url, events, outcome, labels)

    def pay_and_deliver(
        self,
        session_id: str,
        webhook_url: str,
        deliver: WebhookDeliverer = post_webhook,
        *,
        scenario: Scenario = "card",
    ) -> PaidSession:
        """:meth:`pay`, then send each event to ``webhook_url`` in order, as Stripe would.

        Raises :class:`~mentorpay.errors.GatewayError` (502) when the app answers an event
        with anything but a 2xx status (a secret that does not match, a failing handler).
        """
        if deliver is post_webhook:
            _require_local(webhook_url)  # before paying: a refused URL must not spend the session
        paid = self.pay(session_id, scenario)
        for event in paid.events:
            _send(deliver, webhook_url, event, session_id=session_id)
        return paid

    def upcoming(self) -> list[tuple[Any, str]]:
        """``(due, label)`` of what Stripe will do later (subscriptions' renewals included),
        soonest first."""
        with self._lock:
            steps = [(step.due, step.label) for step in self._steps]
        return sorted(steps + subscription_steps(self._gateway), key=lambda item: item[0])

    def advance(
        self, delta: timedelta, webhook_url: str, deliver: WebhookDeliverer = post_webhook
    ) -> list[SignedEvent]:
        """Move the clock on by ``delta`` and deliver, in order, the events of every step that
        fell due, then the renewals of every subscription whose period ended; returns them. A
        step whose delivery the app refused stays due (Stripe retries), and
        :class:`~mentorpay.errors.GatewayError` is raised."""
        if deliver is post_webhook:
            _require_local(webhook_url)
        now = self.clock.advance(delta)
        sent: list[SignedEvent] = []
        while True:
            with self._lock:
                retry, self._retry = self._retry, []
                step = self._steps.pop(0) if self._steps and self._steps[0].due <= now else None
            renewals = self.billing.renew_due() if step is None and not retry else []
            if step is None and not retry and not renewals:
                return sent
            # Refused earlier: the same events (same ids), signed anew, as Stripe retries.
            events = [
                SignedEvent(e.event_type, e.body, sign_payload(e.body, self._secret)) for e in retry
            ]
            if step is not None:
                events += [self._signed(t, obj) for t, obj in step.act()]
            events += [self._signed(t, obj) for t, obj in renewals]
            for n, event in enumerate(events):
                try:
                    _send(deliver, webhook_url, event, session_id=None)
                except GatewayError:
                    with self._lock:
                        self._retry = events[n:] + self._retry
                    raise
                sent.append(event)

    def _signed(self, event_type: str, obj: dict[str, Any]) -> SignedEvent:
        created = int(self.clock().timestamp())
        body = encode_event(make_event(event_type, obj, created=created))
        # Signed with the real time: the app checks the signature's age against its own clock.
        return SignedEvent(event_type, body, sign_payload(body, self._secret))


def _send(
    deliver: WebhookDeliverer, webhook_url: str, event: SignedEvent, *, session_id: str | None
) -> None:
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
