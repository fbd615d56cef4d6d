"""The mentee's cancellation page, framework-neutral: the Flask and FastAPI adapters only route
to it (``GET`` and ``POST /bookings/<booking_id>/cancel``). No payments logic lives here:
``mp.bookings.cancel`` decides what is refunded.

``GET`` shows the booking, when its session starts and the cancellation policy; its button
POSTs as the signed-in user (the demo's ``X-Demo-User`` header): the booking's mentee cancels
under the policy's windows, its mentor with a full refund; anyone else is refused (403). In
offline mode the refund happens at the :class:`~mentorpay.testing.FakeGateway`, and this module
then delivers the ``charge.refunded`` webhook Stripe would send to the app's own webhook route,
so the ledger follows exactly as it would with Stripe and the page shows the mentor's balance
after the refund. With real Stripe the webhook comes from Stripe.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

from examples.common import _HEAD, DEMO_USER_HEADER, Example
from mentorpay import (
    CancellationResult,
    CancelledBy,
    GatewayError,
    MentorPay,
    NotBookingOwnerError,
)
from mentorpay.cancellation import describe_notice
from mentorpay.testing import FakeGateway, SignedEvent, encode_event, make_event, sign_payload

__all__ = ["cancel_action", "cancel_booking", "cancel_page_html"]


def cancel_action(booking_id: str) -> str:
    """The page's own path, which its button POSTs to."""
    return f"/bookings/{quote(booking_id, safe='')}/cancel"


def _policy_lines(mp: MentorPay) -> str:
    policy = mp.bookings.policy
    items = [
        f"<li>at least {html.escape(describe_notice(w.notice))} ahead: "
        f"{w.refund_bps // 100}.{w.refund_bps % 100:02d}% back</li>"
        for w in policy.windows
    ]
    late = policy.late_refund_bps
    items.append(f"<li>later: {late // 100}.{late % 100:02d}% back</li>")
    if policy.keep_fee_on_late:
        items.append("<li>on a late cancellation the platform keeps its commission</li>")
    items.append("<li>a cancellation by the mentor refunds everything</li>")
    return "<ul id='policy'>" + "".join(items) + "</ul>"


_CANCEL_JS = """
document.getElementById("cancel").onclick = async () => {
  const error = document.getElementById("error");
  try {
    const response = await fetch(location.pathname, {
      method: "POST", headers: {"%s": %s},
    });
    const body = await response.json();
    if (!response.ok) { error.textContent = body.message; return; }
    document.getElementById("refund").textContent = body.refund_display;
    document.getElementById("rule").textContent = body.rule;
    document.getElementById("mentor-pending").textContent = body.mentor_pending || "";
    document.getElementById("result").hidden = false;
    document.getElementById("cancel").disabled = true;
  } catch (e) { error.textContent = String(e); }
};
"""


def cancel_page_html(ex: Example, booking_id: str) -> str:
    """The cancellation page of one booking (shown to anyone; cancelling needs the mentee)."""
    booking = ex.booking(booking_id)
    esc = html.escape
    when = booking.starts_at
    starts = when.strftime("%Y-%m-%d %H:%M UTC") if when else "not scheduled"
    done = ex.mp.bookings.cancellation(booking_id)
    status = (
        f"<p id='status'>Already cancelled by the {esc(done.cancelled_by)}.</p>"
        if done is not None
        else ""
    )
    return (
        _HEAD.format(title="Cancel a booking")
        + f"<h1>Cancel booking <b id='booking'>{esc(booking.id)}</b></h1>"
        + f"<p>Session with mentor {esc(booking.mentor_id)} at "
        f"<span id='starts-at'>{esc(starts)}</span>, price {esc(str(booking.price))}.</p>"
        + _policy_lines(ex.mp)
        + status
        + "<button id='cancel' type='button'>Cancel booking</button>"
        + "<p id='error' role='alert'></p>"
        + "<div id='result' hidden><p>Refunded: <b id='refund'></b></p>"
        + "<p>Why: <span id='rule'></span></p>"
        + "<p>Mentor's pending balance now: <span id='mentor-pending'></span></p></div>"
        + f"<script>{_CANCEL_JS % (DEMO_USER_HEADER, json.dumps(booking.mentee_id))}</script>"
        + "</body></html>"
    )


def cancel_booking(
    ex: Example, booking_id: str, *, user: str, webhook_url: str, at: datetime | None = None
) -> dict[str, Any]:
    """Cancel as ``user`` (the booking's mentee or mentor; else 403) and, offline, deliver the
    refund's webhook; the JSON the page renders."""
    booking = ex.booking(booking_id)
    by: CancelledBy
    if user == booking.mentee_id:
        by = "mentee"
    elif user == booking.mentor_id:
        by = "mentor"
    else:
        raise NotBookingOwnerError(
            "only the booking's mentee or mentor can cancel it", booking_id=booking_id
        )
    result = ex.mp.bookings.cancel(booking_id, by=by, at=at)
    if ex.offline is not None and result.refund is not None:
        _deliver_refund(ex, result, webhook_url)
    body = result.as_dict()
    currency = result.refund_amount.currency if result.refund_amount else None
    views = [v for v in ex.mp.ledger.balances(booking.mentor_id) if v.currency == currency]
    body["mentor_pending"] = str(views[0].pending) if views else None
    return body


def _deliver_refund(ex: Example, result: CancellationResult, webhook_url: str) -> None:
    """Send the app the ``charge.refunded`` Stripe would send for the offline refund."""
    gateway = ex.mp.gateway
    assert isinstance(gateway, FakeGateway)  # offline mode always runs on the fake
    assert result.payment_intent_id is not None
    charge = gateway.charge(gateway.payment_intent(result.payment_intent_id)["latest_charge"])
    body = encode_event(make_event("charge.refunded", charge))
    secret = ex.mp.config.webhook_secrets[0].get_secret_value()
    status = ex.deliver(
        webhook_url, SignedEvent("charge.refunded", body, sign_payload(body, secret))
    )
    if status >= 300:
        raise GatewayError(f"the app answered {status} to the offline charge.refunded webhook")
