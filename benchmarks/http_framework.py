"""The framework baseline of ``benchmarks/http.py``: FastAPI with the example's webhook route
shape and no mentorpay.

A sync route (run in the threadpool, as the example's is) takes the raw body through a
dependency and the Stripe-Signature header and answers JSON 200. The gap between this app and the
bare ASGI app is the framework's cost; between the example and this app, mentorpay's and the
example's. (Its own module: FastAPI resolves these annotations at module scope.)
"""

from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse


async def raw_body(request: Request) -> bytes:
    """The whole body, as the example's route reads it before verifying the signature."""
    return await request.body()


def create_app() -> FastAPI:
    """The app (uvicorn ``--factory``)."""
    app = FastAPI()

    @app.post("/payments/webhook")
    def webhook(
        raw: Annotated[bytes, Depends(raw_body)],
        stripe_signature: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        return JSONResponse({"status": "success", "bytes": len(raw)})

    return app
