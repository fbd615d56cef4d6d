"""What the Flask and FastAPI examples share: setup, demo data, input parsing, tiny HTML pages.

No payments logic lives here (mentorpay decides everything about money); this module only:

- builds the :class:`~mentorpay.MentorPay` from the environment and applies its migrations;
- stands in for the host application (demo bookings and plans, the demo sign-in header);
- turns query strings and JSON bodies into mentorpay's types, raising mentorpay's own errors so
  the adapters render every failure the same way (``err.to_dict()`` with ``err.http_status``);
- renders the demo's two pages (index, success) and the JSON both adapters answer.

Environment (read once, by :func:`build_example`):

``MENTORPAY_DATABASE_URL``
    Default ``sqlite:///mentorpay-examples.db``, a file in the current directory.
``STRIPE_SECRET_KEY``
    Set: real Stripe Checkout (use test keys). Unset: a ``FakeGateway`` whose checkout URLs
    open a local page standing in for Stripe's; pressing Pay there sends the app the signed
    webhooks Stripe would send. ``STRIPE_API_BASE`` points the real gateway elsewhere
    (``stripe-mock``, an emulator, an egress proxy).
``MENTORPAY_PAYOUT_MODE``
    ``stripe_transfer``: payouts are Stripe transfers to the account the mentor onboarded on
    ``/mentor/account``; unset: ``manual`` (the platform pays by bank and marks them paid).
``MENTORPAY_OPERATORS``
    DEMO ONLY: comma-separated user ids allowed on the operator pages (default ``ops``).
``STRIPE_WEBHOOK_SECRET``
    Required, except in explicit offline mode: ``MENTORPAY_OFFLINE=1`` (no Stripe key, a SQLite
    database) falls back to :data:`OFFLINE_WEBHOOK_SECRET`, a public value that protects
    nothing. Anything else without a secret refuses to start.

``MENTORPAY_WEBHOOK_MODE``
    ``process`` (default): the webhook route applies each event before answering
    (``mp.webhooks.process``). ``ingest``: the fast-acknowledge mode. The route only verifies
    and stores the event (``mp.webhooks.ingest``, answered ``received`` as soon as it is
    durable) and a background thread of the app applies stored events in batches
    (``mp.webhooks.work``); in production run ``mentorpay worker --app yourapp:mp`` instead,
    in as many processes as you like. Same exactly-once effects either way.

Request bodies are read in chunks of :data:`READ_CHUNK` bytes and cut off as soon as they pass
``max_payload_bytes`` (413), so a huge or endless chunked upload never sits in memory.
"""

from __future__ import annotations

import html
import json
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import quote, urlencode, urljoin

from mentorpay import (
    BalanceView,
    BookingInfo,
    BookingNotFoundError,
    CheckoutSessionInfo,
    ConfigurationError,
    InvalidRequestError,
    MentorPay,
    MentorpayConfig,
    MentorpayError,
    Money,
    NotFoundError,
    Page,
    PayloadTooLargeError,
    PaymentRecord,
    PlanInfo,
    Split,
    WebhookResult,
)
from mentorpay.db import make_engine
from mentorpay.testing import (
    FakeClock,
    FakeGateway,
    InMemoryBookings,
    InMemoryPlans,
    OfflineCheckout,
    WebhookDeliverer,
    post_webhook,
)

__all__ = [
    "DEMO_MENTEE",
    "DEMO_MENTOR",
    "DEMO_USER_HEADER",
    "EXAMPLES_DATABASE_URL",
    "OFFLINE_CHECKOUT_PATH",
    "OFFLINE_CONNECT_PATH",
    "OFFLINE_ENV",
    "OFFLINE_WEBHOOK_SECRET",
    "PAYOUT_MODE_ENV",
    "READ_CHUNK",
    "WEBHOOK_PATH",
    "AuthenticationRequiredError",
    "Example",
    "Role",
    "balances_as_dict",
    "booking_as_dict",
    "booking_id_from_json",
    "build_example",
    "cancel_url",
    "check_content_length",
    "check_content_length_value",
    "checkout_as_dict",
    "current_user",
    "demo_bookings",
    "demo_plans",
    "history_as_dict",
    "history_query",
    "index_html",
    "money_query",
    "pay_action",
    "read_capped",
    "read_capped_async",
    "split_as_dict",
    "success_html",
    "success_url",
    "webhook_url",
]

log = logging.getLogger("examples")

#: DEMO ONLY: the header naming the signed-in user (see :func:`current_user`).
DEMO_USER_HEADER: Final = "X-Demo-User"
#: Offline mode's webhook secret when STRIPE_WEBHOOK_SECRET is unset. Public: it protects nothing.
OFFLINE_WEBHOOK_SECRET: Final = "whsec_offline_demo_PUBLIC_NOT_A_SECRET"
EXAMPLES_DATABASE_URL: Final = "sqlite:///mentorpay-examples.db"
#: Set to 1 for explicit offline mode: no Stripe key, SQLite, the public webhook secret allowed.
OFFLINE_ENV: Final = "MENTORPAY_OFFLINE"
#: Payout mode of the examples: ``manual`` (default) or ``stripe_transfer``.
PAYOUT_MODE_ENV: Final = "MENTORPAY_PAYOUT_MODE"
#: ``process`` (apply before answering) or ``ingest`` (store, answer, apply in the background).
WEBHOOK_MODE_ENV: Final = "MENTORPAY_WEBHOOK_MODE"
WEBHOOK_MODES: Final = ("process", "ingest")
#: How much of a request body is read at a time: at most this much is read past the limit.
READ_CHUNK: Final = 64 * 1024
WEBHOOK_PATH: Final = "/payments/webhook"
#: Relative on purpose: each response makes it absolute with the request's own host and port.
OFFLINE_CHECKOUT_PATH: Final = "/fake-checkout/{session_id}"
#: The offline Connect onboarding page (examples/accounts_pages.py), relative like checkout's.
OFFLINE_CONNECT_PATH: Final = "/fake-connect/{account_id}/{nonce}"
DEMO_MENTEE: Final = "7"
DEMO_MENTOR: Final = "3"

Role = Literal["mentor", "mentee"]


class AuthenticationRequiredError(MentorpayError):
    """Nobody is signed in (in the examples: the X-Demo-User header is missing)."""

    http_status = 401
    code = "authentication_required"


def current_user(header_value: str | None) -> str:
    """The signed-in user's id, from the value of the ``X-Demo-User`` header.

    DEMO ONLY: trusting a header lets you act as any user with curl. A host application replaces
    this with its own authentication: the user id from its session (``flask_login``), a verified
    JWT or OAuth2 token (a FastAPI dependency), ... passed as ``str(user.id)``, raising
    :class:`AuthenticationRequiredError` (401) when nobody is signed in.
    """
    user = (header_value or "").strip()
    if not user:
        raise AuthenticationRequiredError(
            f"sign in first: this demo takes the user id from the {DEMO_USER_HEADER} header",
            header=DEMO_USER_HEADER,
        )
    return user


# -- setup -------------------------------------------------------------------------------------


def demo_bookings() -> InMemoryBookings:
    """The host application's bookings, stood in for by mentorpay's in-memory BookingSource."""
    gbp50 = Money.parse("50.00", "gbp")
    return InMemoryBookings(
        [
            BookingInfo("42", mentee_id="7", mentor_id="3", price=gbp50, status="confirmed"),
            BookingInfo(
                "43", mentee_id="7", mentor_id="3", price=Money.parse("80", "usd"), status="pending"
            ),
            BookingInfo("44", mentee_id="7", mentor_id="3", price=gbp50, status="cancelled"),
        ]
    )


def demo_plans() -> InMemoryPlans:
    """The host application's plans: one monthly plan and one package per demo mentor."""
    return InMemoryPlans(
        [
            PlanInfo(
                f"monthly-{DEMO_MENTOR}",
                DEMO_MENTOR,
                "subscription",
                Money.parse("80.00", "gbp"),
                4,
                name=f"Monthly mentoring with mentor {DEMO_MENTOR}",
            ),
            PlanInfo(
                f"pack5-{DEMO_MENTOR}",
                DEMO_MENTOR,
                "package",
                Money.parse("200.00", "gbp"),
                5,
                name=f"5 sessions with mentor {DEMO_MENTOR}",
                validity=timedelta(days=90),
            ),
        ]
    )


class BackgroundWorker:
    """The ingest mode's worker inside the app: applies stored events soon after they arrive.

    Woken by each ingested event (and every second anyway, for events a previous run left).
    A daemon thread: events it had not applied yet stay stored and apply on the next start.
    """

    def __init__(self, mp: MentorPay) -> None:
        self._mp = mp
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mentorpay-worker", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """An event was stored: apply it now rather than at the next tick."""
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            try:
                self._mp.webhooks.work()
            except Exception:  # the database may be down for a while: try again next tick
                log.exception("the background webhook worker failed; retrying")


@dataclass(frozen=True, slots=True)
class Example:
    """One example application's collaborators; ``offline`` is None with a real Stripe key."""

    mp: MentorPay
    bookings: InMemoryBookings
    offline: OfflineCheckout | None
    #: How the offline checkout sends its webhooks (tests swap in their test client).
    deliver: WebhookDeliverer = post_webhook
    #: DEMO ONLY: the user ids allowed on the operator pages (MENTORPAY_OPERATORS).
    operators: frozenset[str] = frozenset({"ops"})
    #: The ingest mode's in-app worker (None in process mode).
    worker: BackgroundWorker | None = None
    #: The host's plans for sale (examples/plan_pages.py).
    plans: InMemoryPlans = field(default_factory=InMemoryPlans)

    def accept_webhook(self, body: bytes, signature: str | None) -> WebhookResult:
        """The webhook route's work: apply now (process mode) or store and answer (ingest)."""
        if self.worker is None:
            return self.mp.webhooks.process(body, signature)
        result = self.mp.webhooks.ingest(body, signature)
        if result.status == "received":  # a duplicate of an applied event gives no work
            self.worker.wake()
        return result

    def new_demo_booking(self) -> BookingInfo:
        """A fresh booking of mentee 7 with mentor 3 for 50.00 GBP (the index page's button)."""
        booking = BookingInfo(
            id=f"demo-{uuid.uuid4().hex[:12]}",
            mentee_id=DEMO_MENTEE,
            mentor_id=DEMO_MENTOR,
            price=Money.parse("50.00", "gbp"),
            status="confirmed",
            # Tomorrow: cancelling now is a late cancellation (see examples/cancel_pages.py).
            starts_at=datetime.now(UTC) + timedelta(hours=30),
        )
        self.bookings.add(booking)
        return booking

    def booking(self, booking_id: str) -> BookingInfo:
        """A booking of the demo host, or BookingNotFoundError (404)."""
        booking = self.bookings.get_booking(booking_id)
        if booking is None:
            raise BookingNotFoundError(f"there is no booking {booking_id}", booking_id=booking_id)
        return booking

    def advance_clock(self, delta: timedelta, webhook_url: str) -> None:
        """Offline: move the fake clock on, deliver what fell due (plan renewals too), release
        what is due and lapse the plan credits past their end (the host's daily jobs)."""
        self.offline_checkout().advance(delta, webhook_url, self.deliver)
        self.mp.ledger.release_due()
        self.mp.plans.expire_due()

    def offline_checkout(self) -> OfflineCheckout:
        """The local checkout page, or NotFoundError (404) when real Stripe is configured."""
        if self.offline is None:
            raise NotFoundError(
                "the offline checkout is off because STRIPE_SECRET_KEY is set: pay on Stripe"
            )
        return self.offline


def build_example(
    environ: Mapping[str, str] | None = None, *, deliver: WebhookDeliverer = post_webhook
) -> Example:
    """Build mentorpay from ``environ`` (default: ``os.environ``) and apply its migrations."""
    env = dict(os.environ if environ is None else environ)
    if not env.get("MENTORPAY_DATABASE_URL"):
        env["MENTORPAY_DATABASE_URL"] = EXAMPLES_DATABASE_URL
    offline_mode = env.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    webhook_mode = env.get(WEBHOOK_MODE_ENV, "").strip().lower() or "process"
    if webhook_mode not in WEBHOOK_MODES:
        raise ConfigurationError(
            f"{WEBHOOK_MODE_ENV} must be one of {', '.join(WEBHOOK_MODES)}, not {webhook_mode!r}"
        )
    on_sqlite = env["MENTORPAY_DATABASE_URL"].startswith("sqlite")
    # Checked before anything connects: a misconfigured app must not touch the database.
    if offline_mode and env.get("STRIPE_SECRET_KEY"):
        raise ConfigurationError(
            f"{OFFLINE_ENV}=1 and STRIPE_SECRET_KEY are both set: unset {OFFLINE_ENV} to use "
            "Stripe, or unset STRIPE_SECRET_KEY to click through offline"
        )
    if offline_mode and not on_sqlite:
        raise ConfigurationError(
            f"{OFFLINE_ENV}=1 runs only on a SQLite database (its webhook secret is public); "
            "unset MENTORPAY_DATABASE_URL or point it at sqlite:///..., or set "
            f"STRIPE_WEBHOOK_SECRET and unset {OFFLINE_ENV}"
        )
    if not env.get("STRIPE_WEBHOOK_SECRET"):
        if not offline_mode:
            raise ConfigurationError(
                "STRIPE_WEBHOOK_SECRET is not set: the example refuses to accept unsigned "
                "webhooks. Set it (from `stripe listen` or your webhook endpoint), or set "
                f"{OFFLINE_ENV}=1 to click through offline on SQLite with a public demo secret"
            )
        env["STRIPE_WEBHOOK_SECRET"] = OFFLINE_WEBHOOK_SECRET
    bookings, plans = demo_bookings(), demo_plans()
    offline: OfflineCheckout | None = None
    if env.get("STRIPE_SECRET_KEY"):
        # Real Stripe: MentorPay builds a StripeGateway (STRIPE_API_BASE applies). What
        # MentorPay.from_env does, plus the plans.
        config = MentorpayConfig.from_env(env, **_payout_mode(env))
        engine = make_engine(config.database_url, pooler=config.pooler)
        mp = MentorPay(config, engine, bookings=bookings, plans=plans)
    else:
        # Stripe's later steps and mentorpay's hold periods follow one clock the pages move on.
        clock = FakeClock()
        gateway = FakeGateway(
            checkout_url_template=OFFLINE_CHECKOUT_PATH,
            account_link_template=OFFLINE_CONNECT_PATH,
            clock=clock,
        )
        # offline is SQLite only: the URL suffices
        config = MentorpayConfig.from_env(env, **_payout_mode(env))
        mp = MentorPay(
            config,
            config.database_url,
            bookings=bookings,
            gateway=gateway,
            clock=clock,
            plans=plans,
        )
        secret = config.webhook_secrets[0].get_secret_value()
        offline = OfflineCheckout(gateway, secret, clock=clock, plans=plans)
        log.warning(
            "mentorpay example in OFFLINE mode: no STRIPE_SECRET_KEY, so checkout is a local "
            "page and no card is charged; open / in a browser to click through"
        )
    mp.upgrade_schema()
    operators = frozenset(u.strip() for u in env.get("MENTORPAY_OPERATORS", "ops").split(","))
    worker = BackgroundWorker(mp) if webhook_mode == "ingest" else None
    return Example(mp, bookings, offline, deliver, operators, worker, plans)


def _payout_mode(env: Mapping[str, str]) -> dict[str, Any]:
    """``MENTORPAY_PAYOUT_MODE=stripe_transfer``: payouts are transfers to the mentor's account
    (onboarded on the mentor's page); default manual (the platform pays by bank)."""
    mode = env.get(PAYOUT_MODE_ENV, "").strip()
    return {"payout_mode": mode} if mode else {}


# -- input -------------------------------------------------------------------------------------


def check_content_length(mp: MentorPay, content_length: int | str | None) -> None:
    """Refuse a body whose declared size is over the limit before reading any of it (413).

    A chunked upload declares no size: :func:`read_capped` cuts it off while reading.
    """
    check_content_length_value(mp.config.max_payload_bytes, content_length)


def check_content_length_value(limit: int, content_length: int | str | None) -> None:
    """:func:`check_content_length` against an explicit ``limit``."""
    try:
        size = int(content_length) if content_length is not None else 0
    except ValueError:
        return  # the server rejects a malformed Content-Length itself
    if size > limit:
        raise PayloadTooLargeError(
            f"request body of {size} bytes exceeds the {limit}-byte limit", size=size, limit=limit
        )


def _too_large(size: int, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"request body of more than {limit} bytes refused (read {size} before stopping)",
        size=size,
        limit=limit,
    )


def read_capped(chunks: Iterable[bytes], limit: int) -> bytes:
    """Join a body's chunks, stopping with :class:`PayloadTooLargeError` (413) as soon as they
    pass ``limit``: the rest of a chunked upload is never read."""
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise _too_large(len(body), limit)
    return bytes(body)


async def read_capped_async(chunks: AsyncIterable[bytes], limit: int) -> bytes:
    """:func:`read_capped` for an ASGI body stream."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise _too_large(len(body), limit)
    return bytes(body)


def booking_id_from_json(raw: bytes) -> str:
    """``{"booking_id": "42"}`` (an integer id is accepted too) -> ``"42"``; else 400."""
    try:
        data: Any = json.loads(raw)
    except ValueError:
        data = None
    booking_id = data.get("booking_id") if isinstance(data, dict) else None
    if isinstance(booking_id, int) and not isinstance(booking_id, bool):
        booking_id = str(booking_id)
    if not isinstance(booking_id, str) or not booking_id.strip():
        raise InvalidRequestError('send a JSON body like {"booking_id": "42"}', field="booking_id")
    return booking_id


def history_query(role: str | None, limit: str | None) -> tuple[Role, int]:
    """The ``role`` (default mentor) and ``limit`` (default 50) query parameters; else 400."""
    if role is None or role == "mentor":
        checked: Role = "mentor"
    elif role == "mentee":
        checked = "mentee"
    else:
        raise InvalidRequestError("role must be mentor or mentee", field="role", role=role)
    if limit is None or limit == "":
        return checked, 50
    try:
        return checked, int(limit)
    except ValueError:
        raise InvalidRequestError("limit must be an integer", field="limit") from None


def money_query(amount: str | None, currency: str | None) -> Money:
    """``?amount=100.00&currency=gbp`` as Money (GBP when no currency is given); else 400."""
    if amount is None or not amount.strip():
        raise InvalidRequestError(
            "give an amount, e.g. ?amount=100.00&currency=gbp", field="amount"
        )
    return Money.parse(amount, currency or "gbp")


# -- output ------------------------------------------------------------------------------------


def success_url(base_url: str, booking_id: str) -> str:
    """Where checkout sends the mentee after paying."""
    return urljoin(base_url, "/success?" + urlencode({"booking_id": booking_id}))


def cancel_url(base_url: str) -> str:
    """Where checkout sends the mentee who gives up."""
    return urljoin(base_url, "/")


def webhook_url(base_url: str) -> str:
    """This app's own webhook route, where the offline checkout delivers its events."""
    return urljoin(base_url, WEBHOOK_PATH)


def pay_action(session_id: str) -> str:
    """The offline checkout page's form target."""
    return f"/fake-checkout/{quote(session_id, safe='')}/pay"


def checkout_as_dict(info: CheckoutSessionInfo, base_url: str) -> dict[str, Any]:
    """The checkout JSON; an offline (relative) URL made absolute on this host."""
    body = info.as_dict()
    body["url"] = urljoin(base_url, info.url)
    return body


def balances_as_dict(mentor_id: str, views: list[BalanceView]) -> dict[str, Any]:
    """A mentor's balances, one entry per currency."""
    return {"mentor_id": mentor_id, "balances": [view.as_dict() for view in views]}


def history_as_dict(page: Page[PaymentRecord], role: Role) -> dict[str, Any]:
    """One page of payment history; pass ``next_cursor`` back as ``?cursor=``."""
    return {
        "role": role,
        "items": [record.as_dict(role) for record in page.items],
        "next_cursor": page.next_cursor,
    }


def split_as_dict(split: Split) -> dict[str, Any]:
    """A commission preview: minor-unit integers plus display strings."""
    return {
        "currency": split.gross.currency,
        "rate_bps": split.rate_bps,
        "amount": split.gross.amount,
        "platform_fee": split.platform_fee.amount,
        "mentor_payout": split.mentor_payout.amount,
        "amount_display": str(split.gross),
        "platform_fee_display": str(split.platform_fee),
        "mentor_payout_display": str(split.mentor_payout),
    }


def booking_as_dict(booking: BookingInfo) -> dict[str, Any]:
    """A demo booking, as ``POST /demo/bookings`` answers it."""
    price = booking.price
    return {
        "booking_id": booking.id,
        "mentee_id": booking.mentee_id,
        "mentor_id": booking.mentor_id,
        "status": booking.status,
        "price": str(price) if price is not None else None,
    }


# -- pages -------------------------------------------------------------------------------------

_HEAD = (
    "<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
    "<style>body{{font-family:sans-serif;max-width:36rem;margin:3rem auto}}"
    "button{{font-size:1.2rem;padding:.6rem 1.4rem}}td,th{{padding:.2rem .8rem}}</style>"
    "</head><body>"
)

# Creates a demo booking, then calls the real checkout route as mentee 7 and follows its URL.
_BOOK_AND_PAY_JS = """
document.getElementById("book").onclick = async () => {
  const error = document.getElementById("error");
  try {
    const booking = await (await fetch("/demo/bookings", {method: "POST"})).json();
    const response = await fetch("/payments/create-checkout-session", {
      method: "POST",
      headers: {"Content-Type": "application/json", "%s": booking.mentee_id},
      body: JSON.stringify({booking_id: booking.booking_id}),
    });
    const body = await response.json();
    if (response.ok) { location.href = body.url; } else { error.textContent = body.message; }
  } catch (e) { error.textContent = String(e); }
};
"""


def index_html(*, offline: bool) -> str:
    """The demo's start page: one button that books a session and starts checkout."""
    mode = (
        "Offline mode: no Stripe account needed, checkout is a local page and no card is charged."
        if offline
        else "Stripe mode: checkout happens on Stripe's hosted page (use test keys)."
    )
    return (
        _HEAD.format(title="mentorpay example")
        + "<h1>mentorpay example</h1>"
        + f"<p id='mode'>{html.escape(mode)}</p>"
        + f"<p>Mentee {DEMO_MENTEE} books a session with mentor {DEMO_MENTOR} for 50.00 GBP "
        "and pays for it; the mentor earns it minus the platform's commission.</p>"
        + "<button id='book' type='button'>Book and pay</button>"
        + "<p id='error' role='alert'></p>"
        + f"<script>{_BOOK_AND_PAY_JS % DEMO_USER_HEADER}</script></body></html>"
    )


def success_html(booking: BookingInfo, views: list[BalanceView]) -> str:
    """After checkout: the booking and its mentor's balance (shown to anyone in this demo)."""
    esc = html.escape
    if views:
        rows = "".join(
            f"<tr id='balance-{esc(v.currency)}'><td>{esc(v.currency)}</td>"
            f"<td class='pending'>{esc(str(v.pending))}</td>"
            f"<td class='available'>{esc(str(v.available))}</td>"
            f"<td class='total'>{esc(str(v.total_earned))}</td></tr>"
            for v in views
        )
        table = (
            "<table id='balance'><tr><th>Currency</th><th>Pending</th><th>Available</th>"
            f"<th>Total earned</th></tr>{rows}</table>"
        )
    else:
        table = (
            "<p id='no-balance'>No earnings recorded yet. With real Stripe the webhook may "
            "still be on its way: reload in a moment.</p>"
        )
    return (
        _HEAD.format(title="Payment received")
        + "<h1>Thank you!</h1>"
        + f"<p>Booking <b id='booking'>{esc(booking.id)}</b> is paid.</p>"
        + f"<h2>Mentor {esc(booking.mentor_id)}'s balance</h2>"
        + "<p><small>A real app shows this only to the mentor.</small></p>"
        + table
        + "<p><a href='/'>Book another session</a></p></body></html>"
    )
