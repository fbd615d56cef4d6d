"""mentorpay mounted in FastAPI: parse HTTP, call mentorpay, render its result. No payments logic.

Run from the repository root (offline mode without STRIPE_SECRET_KEY; see examples/common.py)::

    uvicorn examples.fastapi_app:app

Routes calling mentorpay are plain ``def``: FastAPI runs them in its threadpool, so blocking
database and Stripe calls never stall the event loop. That matters most for the offline Pay
route, which POSTs to this same app's webhook route and waits for the answer.
"""

from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any

from fastapi import Cookie, Depends, FastAPI, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from examples import accounts_pages, cancel_pages, common, mentor_pages, plan_pages
from examples import operator_pages as pages
from mentorpay import MentorpayError
from mentorpay.testing import WebhookDeliverer, check_scenario, post_webhook


# Authentication, DEMO ONLY: the user id comes from the X-Demo-User header. A host plugs in its
# own here: make this dependency return str(user.id) from its OAuth2 scheme or session, e.g.
#     def current_user(user: Annotated[Account, Depends(get_current_account)]) -> str: ...
def current_user(x_demo_user: Annotated[str | None, Header()] = None) -> str:
    """The signed-in user's id; 401 when there is none."""
    return common.current_user(x_demo_user)


User = Annotated[str, Depends(current_user)]


async def raw_body(request: Request) -> bytes:
    """The request body exactly as received (the webhook signature covers these bytes), read
    as it streams in and cut off past ``max_payload_bytes`` (413): ``request.body()`` would
    read a chunked upload whole before any size check."""
    mp = request.app.state.example.mp
    common.check_content_length(mp, request.headers.get("content-length"))
    return await common.read_capped_async(request.stream(), mp.config.max_payload_bytes)


Body = Annotated[bytes, Depends(raw_body)]


# DEMO ONLY, like current_user: pages opened in a browser also accept the demo cookie.
def page_user(
    x_demo_user: Annotated[str | None, Header()] = None,
    mentorpay_demo_user: Annotated[str | None, Cookie()] = None,
) -> str:
    """The signed-in user of a page; 401 when there is none."""
    return pages.page_user(x_demo_user, mentorpay_demo_user)


PageUser = Annotated[str, Depends(page_user)]


def operator(request: Request, user: PageUser) -> str:
    """THE OPERATOR CHECK, a dependency of every operator route: 403 for anyone else."""
    return pages.require_operator(user, request.app.state.example.operators)


Operator = Annotated[str, Depends(operator)]


def create_app(
    environ: Mapping[str, str] | None = None, *, deliver: WebhookDeliverer = post_webhook
) -> FastAPI:
    """The example app on the database and Stripe mode ``environ`` names (os.environ if None)."""
    ex = common.build_example(environ, deliver=deliver)
    mp = ex.mp
    app = FastAPI(title="mentorpay example")
    app.state.example = ex  # for raw_body, and for tests

    @app.exception_handler(MentorpayError)
    async def mentorpay_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MentorpayError)
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    @app.post("/payments/create-checkout-session")
    def create_checkout_session(request: Request, user: User, body: Body) -> dict[str, Any]:
        base, booking_id = str(request.base_url), common.booking_id_from_json(body)
        info = mp.checkout.create_session(
            booking_id,
            user_id=user,
            success_url=common.success_url(base, booking_id),
            cancel_url=common.cancel_url(base),
        )
        return common.checkout_as_dict(info, base)

    @app.post("/payments/webhook")
    def webhook(
        body: Body, stripe_signature: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        result = ex.accept_webhook(body, stripe_signature)
        return JSONResponse(result.as_dict(), status_code=result.http_status)

    @app.get("/payments/balance")
    def balance(user: User, mentor_id: str | None = None) -> dict[str, Any]:
        return common.balances_as_dict(mentor_id or user, mp.balances(user, mentor_id))

    @app.get("/payments/history")
    def history(
        user: User,
        role: str | None = None,
        limit: str | None = None,
        cursor: str | None = None,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        checked, size = common.history_query(role, limit)
        page = mp.history(user, role=checked, user_id=user_id, limit=size, cursor=cursor)
        return common.history_as_dict(page, checked)

    @app.get("/payments/commission")
    @app.get("/payments/test-commission", include_in_schema=False)  # the original app's name
    def commission(
        amount: str | None = None, currency: str | None = None, mentor_id: str | None = None
    ) -> dict[str, Any]:
        money = common.money_query(amount, currency)
        return common.split_as_dict(mp.commission_preview(money, mentor_id))

    # -- demo pages and the offline checkout (stand-ins for the host app and for Stripe) ------

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(common.index_html(offline=ex.offline is not None))

    @app.post("/demo/bookings", status_code=201)
    def new_demo_booking() -> dict[str, Any]:
        return common.booking_as_dict(ex.new_demo_booking())

    @app.get("/success", response_class=HTMLResponse)
    def success(booking_id: str = "") -> HTMLResponse:
        booking = ex.booking(booking_id)
        views = mp.balances(booking.mentor_id)  # the demo shows it to anyone: viewer = mentor
        return HTMLResponse(common.success_html(booking, views))

    @app.get("/fake-checkout/{session_id}", response_class=HTMLResponse)
    def offline_checkout_page(session_id: str, declined: str | None = None) -> HTMLResponse:
        action = common.pay_action(session_id)
        page = ex.offline_checkout().page_html(session_id, action, declined=declined == "1")
        return HTMLResponse(page)

    @app.post("/fake-checkout/{session_id}/pay")
    def offline_pay(
        request: Request, session_id: str, scenario: str | None = None
    ) -> RedirectResponse:
        # Plain def (threadpool): the loop stays free to serve the webhooks this POSTs to us.
        webhook_url = common.webhook_url(str(request.base_url))
        offline, played = ex.offline_checkout(), check_scenario(scenario)
        paid = offline.pay_and_deliver(session_id, webhook_url, ex.deliver, scenario=played)
        return RedirectResponse(paid.success_url, status_code=303)

    accounts_pages.mount_fastapi(app, ex, User, Body)
    # -- the mentee's cancellation page (examples/cancel_pages.py) ------------------------------

    @app.get("/bookings/{booking_id}/cancel", response_class=HTMLResponse)
    def cancel_page(booking_id: str) -> HTMLResponse:
        return HTMLResponse(cancel_pages.cancel_page_html(ex, booking_id))

    @app.post("/bookings/{booking_id}/cancel")
    def cancel_booking(request: Request, booking_id: str, user: User) -> dict[str, Any]:
        # Plain def (threadpool): offline, this POSTs the refund webhook to this same app.
        webhook_url = common.webhook_url(str(request.base_url))
        return cancel_pages.cancel_booking(ex, booking_id, user=user, webhook_url=webhook_url)

    @app.post("/fake-checkout/advance")
    def offline_advance(
        request: Request, days: str | None = None, next: str | None = None
    ) -> RedirectResponse:
        webhook_url = common.webhook_url(str(request.base_url))
        ex.advance_clock(pages.days_query(days), webhook_url)
        return RedirectResponse(pages.safe_next(next), status_code=303)

    # -- operator and mentor pages (examples/operator_pages.py, examples/mentor_pages.py) ----

    @app.get("/demo/sign-in")
    def demo_sign_in(user: str | None = None, next: str | None = None) -> RedirectResponse:
        signed_in = pages.sign_in_user(user)
        response = RedirectResponse(pages.safe_next(next), status_code=303)
        response.set_cookie(pages.DEMO_USER_COOKIE, signed_in, httponly=True, samesite="strict")
        return response

    @app.get("/operator", response_class=HTMLResponse)
    def operator_page(user: Operator) -> HTMLResponse:
        clock = pages.clock_section(ex, "/operator")
        return HTMLResponse(pages.operator_html(mp.dashboard.overview(), user=user, clock=clock))

    @app.post("/operator/payouts/{payout_id}/approve")
    def operator_approve(payout_id: int, user: Operator) -> RedirectResponse:
        mp.payouts.approve(payout_id, approver=user)
        return RedirectResponse("/operator", status_code=303)

    @app.post("/operator/payouts/{payout_id}/execute")
    def operator_execute(payout_id: int, user: Operator) -> RedirectResponse:
        mp.payouts.execute(payout_id)
        return RedirectResponse("/operator", status_code=303)

    @app.get("/mentor", response_class=HTMLResponse)
    def mentor_page(user: PageUser) -> HTMLResponse:
        earnings, clock = mp.dashboard.earnings(user), pages.clock_section(ex, "/mentor")
        sold = mp.plans.list_purchases(mentor_id=user)
        return HTMLResponse(mentor_pages.mentor_html(earnings, clock=clock, plans=sold))

    @app.post("/mentor/payouts")
    def mentor_request_payout(user: PageUser, body: Body) -> RedirectResponse:
        mp.payouts.request(user, mentor_pages.payout_amount(pages.form_fields(body)))
        return RedirectResponse("/mentor", status_code=303)

    # -- the mentee's plans page (examples/plan_pages.py) --------------------------------------
    plan_pages.mount_fastapi(app, ex, PageUser)
    return app


@cache
def _default_app() -> FastAPI:
    return create_app()


def __getattr__(name: str) -> FastAPI:
    """``app`` is built on first access (``uvicorn examples.fastapi_app:app`` does that), so
    importing this module opens no database."""
    if name == "app":
        return _default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
