"""mentorpay mounted in Flask: parse HTTP, call mentorpay, render its result. No payments logic.

Run from the repository root (offline mode without STRIPE_SECRET_KEY; see examples/common.py)::

    flask --app examples.flask_app run

The offline Pay route POSTs to this same app's webhook route, so the server must handle two
requests at once: ``flask run`` is threaded by default (keep it so), as are production servers.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache, partial
from typing import Any

from flask import Flask, Response, jsonify, redirect, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from examples import accounts_pages, cancel_pages, common, mentor_pages, plan_pages
from examples import operator_pages as pages
from mentorpay import MentorpayError
from mentorpay.testing import WebhookDeliverer, check_scenario, post_webhook


# Authentication, DEMO ONLY: the user id comes from the X-Demo-User header. A host plugs in its
# own here, e.g. ``return str(flask_login.current_user.id)`` (raising 401 when anonymous).
def current_user() -> str:
    """The signed-in user's id; 401 when there is none."""
    return common.current_user(request.headers.get(common.DEMO_USER_HEADER))


def read_body(limit: int) -> bytes:
    """The request body exactly as received, read in chunks and cut off past ``limit`` (413).

    ``request.get_data()`` would read a chunked upload whole before any size check.
    """
    common.check_content_length_value(limit, request.content_length)
    chunks = iter(partial(request.stream.read, common.READ_CHUNK), b"")
    return common.read_capped(chunks, limit)


def create_app(
    environ: Mapping[str, str] | None = None, *, deliver: WebhookDeliverer = post_webhook
) -> Flask:
    """The example app on the database and Stripe mode ``environ`` names (os.environ if None)."""
    ex = common.build_example(environ, deliver=deliver)
    mp = ex.mp
    app = Flask(__name__)
    app.extensions["mentorpay_example"] = ex  # for tests

    @app.errorhandler(MentorpayError)
    def mentorpay_error(exc: MentorpayError) -> tuple[Response, int]:
        return jsonify(exc.to_dict()), exc.http_status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:  # Flask's own 404/405 as JSON
        code = exc.code or 500
        return jsonify(
            error=(exc.name or "error").lower().replace(" ", "_"), message=exc.description
        ), code

    @app.post("/payments/create-checkout-session")
    def create_checkout_session() -> dict[str, Any]:
        user = current_user()
        body = read_body(mp.config.max_payload_bytes)
        base, booking_id = request.url_root, common.booking_id_from_json(body)
        info = mp.checkout.create_session(
            booking_id,
            user_id=user,
            success_url=common.success_url(base, booking_id),
            cancel_url=common.cancel_url(base),
        )
        return common.checkout_as_dict(info, base)

    @app.post("/payments/webhook")
    def webhook() -> tuple[dict[str, Any], int]:
        # The raw bytes, untouched: the signature covers them (never request.json here).
        body = read_body(mp.config.max_payload_bytes)
        result = ex.accept_webhook(body, request.headers.get("Stripe-Signature"))
        return result.as_dict(), result.http_status

    @app.get("/payments/balance")
    def balance() -> dict[str, Any]:
        user, mentor_id = current_user(), request.args.get("mentor_id")
        return common.balances_as_dict(mentor_id or user, mp.balances(user, mentor_id))

    @app.get("/payments/history")
    def history() -> dict[str, Any]:
        user, args = current_user(), request.args
        role, size = common.history_query(args.get("role"), args.get("limit"))
        page = mp.history(
            user, role=role, user_id=args.get("user_id"), limit=size, cursor=args.get("cursor")
        )
        return common.history_as_dict(page, role)

    @app.get("/payments/commission")
    @app.get("/payments/test-commission")  # the original application's name, kept as an alias
    def commission() -> dict[str, Any]:
        args = request.args
        money = common.money_query(args.get("amount"), args.get("currency"))
        return common.split_as_dict(mp.commission_preview(money, args.get("mentor_id")))

    # -- demo pages and the offline checkout (stand-ins for the host app and for Stripe) ------

    @app.get("/")
    def index() -> str:
        return common.index_html(offline=ex.offline is not None)

    @app.post("/demo/bookings")
    def new_demo_booking() -> tuple[dict[str, Any], int]:
        return common.booking_as_dict(ex.new_demo_booking()), 201

    @app.get("/success")
    def success() -> str:
        booking = ex.booking(request.args.get("booking_id", ""))
        views = mp.balances(booking.mentor_id)  # the demo shows it to anyone: viewer = mentor
        return common.success_html(booking, views)

    @app.get("/fake-checkout/<session_id>")
    def offline_checkout_page(session_id: str) -> str:
        declined = request.args.get("declined") == "1"
        action = common.pay_action(session_id)
        return ex.offline_checkout().page_html(session_id, action, declined=declined)

    @app.post("/fake-checkout/<session_id>/pay")
    def offline_pay(session_id: str) -> ResponseReturnValue:
        webhook_url = common.webhook_url(request.url_root)
        scenario = check_scenario(request.args.get("scenario"))
        offline = ex.offline_checkout()
        paid = offline.pay_and_deliver(session_id, webhook_url, ex.deliver, scenario=scenario)
        return redirect(paid.success_url, code=303)

    accounts_pages.mount_flask(app, ex, current_user, read_body)
    # -- the mentee's cancellation page (examples/cancel_pages.py) ------------------------------

    @app.get("/bookings/<booking_id>/cancel")
    def cancel_page(booking_id: str) -> str:
        return cancel_pages.cancel_page_html(ex, booking_id)

    @app.post("/bookings/<booking_id>/cancel")
    def cancel_booking(booking_id: str) -> dict[str, Any]:
        webhook_url = common.webhook_url(request.url_root)
        return cancel_pages.cancel_booking(
            ex, booking_id, user=current_user(), webhook_url=webhook_url
        )

    @app.post("/fake-checkout/advance")
    def offline_advance() -> ResponseReturnValue:
        days, webhook_url = (
            pages.days_query(request.args.get("days")),
            common.webhook_url(request.url_root),
        )
        ex.advance_clock(days, webhook_url)
        return redirect(pages.safe_next(request.args.get("next")), code=303)

    # -- operator and mentor pages (examples/operator_pages.py, examples/mentor_pages.py) ----

    def page_user() -> str:
        cookie = request.cookies.get(pages.DEMO_USER_COOKIE)
        return pages.page_user(request.headers.get(common.DEMO_USER_HEADER), cookie)

    def operator() -> str:  # THE OPERATOR CHECK, on every operator route
        return pages.require_operator(page_user(), ex.operators)

    @app.get("/demo/sign-in")
    def demo_sign_in() -> ResponseReturnValue:
        user = pages.sign_in_user(request.args.get("user"))
        response = redirect(pages.safe_next(request.args.get("next")), code=303)
        response.set_cookie(pages.DEMO_USER_COOKIE, user, httponly=True, samesite="Strict")
        return response

    @app.get("/operator")
    def operator_page() -> str:
        user, clock = operator(), pages.clock_section(ex, "/operator")
        return pages.operator_html(mp.dashboard.overview(), user=user, clock=clock)

    @app.post("/operator/payouts/<int:payout_id>/approve")
    def operator_approve(payout_id: int) -> ResponseReturnValue:
        mp.payouts.approve(payout_id, approver=operator())
        return redirect("/operator", code=303)

    @app.post("/operator/payouts/<int:payout_id>/execute")
    def operator_execute(payout_id: int) -> ResponseReturnValue:
        operator()
        mp.payouts.execute(payout_id)
        return redirect("/operator", code=303)

    @app.get("/mentor")
    def mentor_page() -> str:
        user, clock = page_user(), pages.clock_section(ex, "/mentor")
        sold = mp.plans.list_purchases(mentor_id=user)
        return mentor_pages.mentor_html(mp.dashboard.earnings(user), clock=clock, plans=sold)

    @app.post("/mentor/payouts")
    def mentor_request_payout() -> ResponseReturnValue:
        user, body = page_user(), read_body(mp.config.max_payload_bytes)
        mp.payouts.request(user, mentor_pages.payout_amount(pages.form_fields(body)))
        return redirect("/mentor", code=303)

    # -- the mentee's plans page (examples/plan_pages.py) --------------------------------------
    plan_pages.mount_flask(app, ex, page_user)
    return app


@cache
def _default_app() -> Flask:
    return create_app()


def __getattr__(name: str) -> Flask:
    """``app`` is built on first access (``flask --app examples.flask_app run`` does that), so
    importing this module opens no database."""
    if name == "app":
        return _default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
