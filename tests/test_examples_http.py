"""The examples as the README runs them: real servers on 127.0.0.1, driven over real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from examples.common import EXAMPLES_DATABASE_URL, OFFLINE_WEBHOOK_SECRET, build_example

from mentorpay import ConfigurationError, GatewayConnectionError
from mentorpay.testing import (
    SignedEvent,
    booking_metadata,
    encode_event,
    make_event,
    payment_intent,
    post_webhook,
    sign_payload,
)

REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command(kind: str, port: int) -> list[str]:
    """The README's commands, pinned to 127.0.0.1 and a free port."""
    if kind == "fastapi":
        app = ["uvicorn", "examples.fastapi_app:app"]
        return [sys.executable, "-m", *app, "--host", "127.0.0.1", "--port", str(port)]
    flask = ["flask", "--app", "examples.flask_app", "run"]
    return [sys.executable, "-m", *flask, "--host", "127.0.0.1", "--port", str(port)]


def example_database_url(kind: str, tmp_path: Path, name: str | None = None) -> str:
    """The SQLite URL ``serve_example`` gives the example (``name`` defaults to ``kind``)."""
    return f"sqlite:///{tmp_path / f'{name or kind}.db'}"


@contextmanager
def serve_example(
    kind: str, tmp_path: Path, *, name: str | None = None, **extra_env: str
) -> Iterator[str]:
    """Run one example ("fastapi" or "flask") in offline mode on a temp SQLite file
    (``example_database_url(kind, tmp_path, name)``), with ``extra_env``; yields its base URL and
    stops the server afterwards."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "MENTORPAY_", "FLASK_"))
    }
    stem = name or kind
    env["MENTORPAY_DATABASE_URL"] = example_database_url(kind, tmp_path, name)
    env["MENTORPAY_OFFLINE"] = "1"
    env.update(extra_env)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / f"{stem}-server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            _command(kind, port), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"{kind} example exited early:\n{log_path.read_text()}")
                try:
                    if httpx.get(base + "/", timeout=1.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"{kind} example did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("kind", ["fastapi", "flask"])
def test_example_server_over_real_http(tmp_path: Path, kind: str) -> None:
    """Served for real: checkout, Pay (webhooks POSTed to itself), a signed webhook, balance."""
    with serve_example(kind, tmp_path) as base, httpx.Client(base_url=base) as http:
        checkout = http.post(
            "/payments/create-checkout-session",
            json={"booking_id": "42"},
            headers={"X-Demo-User": "7"},
        )
        assert checkout.status_code == 200, checkout.text
        url = checkout.json()["url"]
        assert url.startswith(f"{base}/fake-checkout/cs_")
        assert "Pay 50.00 GBP" in http.get(urlsplit(url).path).text
        paid = http.post(urlsplit(url).path + "/pay")
        assert paid.status_code == 303, paid.text
        assert paid.headers["location"] == f"{base}/success?booking_id=42"

        meta = booking_metadata("43", mentor_id="3", mentee_id="7")
        body = encode_event(
            make_event(
                "payment_intent.succeeded",
                payment_intent(amount=8000, currency="usd", metadata=meta),
            )
        )
        headers = {
            "Stripe-Signature": sign_payload(body, OFFLINE_WEBHOOK_SECRET),
            "Content-Type": "application/json",
        }
        first = http.post("/payments/webhook", content=body, headers=headers)
        assert (first.status_code, first.json()["status"]) == (200, "success")
        again = http.post("/payments/webhook", content=body, headers=headers)
        assert (again.status_code, again.json()["status"]) == (200, "already_processed")
        forged = SignedEvent("payment_intent.succeeded", body, "t=1,v1=00")
        assert post_webhook(base + "/payments/webhook", forged) == 400  # a status, not a raise

        balance = http.get("/payments/balance", headers={"X-Demo-User": "3"})
        assert balance.status_code == 200
        shown = {b["currency"]: b["pending_display"] for b in balance.json()["balances"]}
        assert shown == {"GBP": "45.00 GBP", "USD": "72.00 USD"}
        assert "45.00 GBP" in http.get("/success", params={"booking_id": "42"}).text
    assert (tmp_path / f"{kind}.db").is_file()


def test_importing_the_examples_opens_no_database(tmp_path: Path) -> None:
    """Importing an example module builds nothing: the app is made when `app` is first read."""
    code = "import examples.fastapi_app, examples.flask_app, examples.common"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True)
    assert list(tmp_path.iterdir()) == []


def test_default_database_is_a_local_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without MENTORPAY_DATABASE_URL the examples use mentorpay-examples.db in the cwd."""
    monkeypatch.chdir(tmp_path)
    example = build_example({"MENTORPAY_OFFLINE": "1"})
    try:
        assert EXAMPLES_DATABASE_URL == "sqlite:///mentorpay-examples.db"
        assert (tmp_path / "mentorpay-examples.db").is_file()
        assert example.offline is not None
    finally:
        example.mp.engine.dispose()


def test_post_webhook_reaches_only_this_machine() -> None:
    """The offline checkout's sender refuses other hosts and reports a closed port clearly."""
    event = SignedEvent("payment_intent.succeeded", b"{}", "t=1,v1=00")
    with pytest.raises(ConfigurationError, match="only delivers webhooks to this machine"):
        post_webhook("http://localhost.example.com/payments/webhook", event)
    with pytest.raises(GatewayConnectionError):
        post_webhook(f"http://127.0.0.1:{_free_port()}/payments/webhook", event, timeout=2)
