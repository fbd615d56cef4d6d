"""The examples' hardening: bodies read with a hard cap while streaming (a chunked upload past
the limit is cut off and answered 413), and the published offline webhook secret only in
explicit offline mode on SQLite."""

from __future__ import annotations

import asyncio
import io
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from examples.common import OFFLINE_ENV, OFFLINE_WEBHOOK_SECRET, READ_CHUNK, build_example
from examples.fastapi_app import create_app as create_fastapi
from examples.flask_app import create_app as create_flask
from werkzeug.test import EnvironBuilder, run_wsgi_app

from mentorpay import ConfigurationError
from tests.test_examples_http import serve_example

LIMIT = 1024 * 1024  # MentorpayConfig.max_payload_bytes by default
UPLOAD = 50 * 1024 * 1024
PG_URL = "postgresql+psycopg://mentorpay:pw@127.0.0.1:1/nowhere"  # nothing listens on port 1

Factory = Callable[[Mapping[str, str]], Any]
FACTORIES = [
    pytest.param(build_example, id="common"),
    pytest.param(create_flask, id="flask"),
    pytest.param(create_fastapi, id="fastapi"),
]


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'examples.db'}"


# -- the offline secret ------------------------------------------------------------------------


@pytest.mark.parametrize("factory", FACTORIES)
def test_no_webhook_secret_and_no_offline_mode_refuses_to_start(
    factory: Factory, tmp_path: Path
) -> None:
    """No STRIPE_WEBHOOK_SECRET and no MENTORPAY_OFFLINE=1: refuses to start, says what to set."""
    with pytest.raises(ConfigurationError, match=r"STRIPE_WEBHOOK_SECRET.*MENTORPAY_OFFLINE=1"):
        factory({"MENTORPAY_DATABASE_URL": _sqlite(tmp_path)})


@pytest.mark.parametrize("factory", FACTORIES)
def test_real_database_never_gets_the_published_secret(factory: Factory) -> None:
    """A server database without a secret refuses to start, even with MENTORPAY_OFFLINE=1."""
    with pytest.raises(ConfigurationError, match="STRIPE_WEBHOOK_SECRET"):
        factory({"MENTORPAY_DATABASE_URL": PG_URL})
    with pytest.raises(ConfigurationError, match="SQLite"):
        factory({"MENTORPAY_DATABASE_URL": PG_URL, OFFLINE_ENV: "1"})


def test_offline_mode_and_a_stripe_key_do_not_mix(tmp_path: Path) -> None:
    """MENTORPAY_OFFLINE=1 beside STRIPE_SECRET_KEY is ambiguous: refused."""
    env = {
        "MENTORPAY_DATABASE_URL": _sqlite(tmp_path),
        OFFLINE_ENV: "1",
        "STRIPE_SECRET_KEY": "sk_test_x",
        "STRIPE_WEBHOOK_SECRET": "whsec_real",
    }
    with pytest.raises(ConfigurationError, match="MENTORPAY_OFFLINE"):
        build_example(env)


def test_explicit_offline_mode_on_sqlite_uses_the_published_secret(tmp_path: Path) -> None:
    """MENTORPAY_OFFLINE=1 on SQLite runs offline with the public demo secret."""
    example = build_example({"MENTORPAY_DATABASE_URL": _sqlite(tmp_path), OFFLINE_ENV: "1"})
    try:
        assert example.offline is not None
        secrets = [s.get_secret_value() for s in example.mp.config.webhook_secrets]
        assert secrets == [OFFLINE_WEBHOOK_SECRET]
    finally:
        example.mp.engine.dispose()


def test_own_secret_without_a_key_keeps_the_offline_checkout(tmp_path: Path) -> None:
    """No Stripe key but a real STRIPE_WEBHOOK_SECRET: the local checkout, signed with it."""
    env = {"MENTORPAY_DATABASE_URL": _sqlite(tmp_path), "STRIPE_WEBHOOK_SECRET": "whsec_mine"}
    example = build_example(env)
    try:
        assert example.offline is not None
        secrets = [s.get_secret_value() for s in example.mp.config.webhook_secrets]
        assert secrets == ["whsec_mine"]
    finally:
        example.mp.engine.dispose()


# -- streaming bodies with a hard cap -----------------------------------------------------------


class EndlessBody(io.RawIOBase):
    """A request body of ``size`` bytes produced on demand; counts what the app read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.read_bytes)
        buffer[:n] = b"x" * n
        self.read_bytes += n
        return n


def _offline_env(tmp_path: Path) -> dict[str, str]:
    return {"MENTORPAY_DATABASE_URL": _sqlite(tmp_path), OFFLINE_ENV: "1"}


@pytest.mark.parametrize("path", ["/payments/webhook", "/payments/create-checkout-session"])
def test_flask_cuts_a_chunked_upload_off_at_the_limit(tmp_path: Path, path: str) -> None:
    """Flask: a 50 MiB chunked body is 413 after reading at most limit + one chunk."""
    app = create_flask(_offline_env(tmp_path))
    body = EndlessBody(UPLOAD)
    environ = EnvironBuilder(
        path=path, method="POST", headers={"X-Demo-User": "7", "Stripe-Signature": "t=1,v1=0"}
    ).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ.update(
        {"wsgi.input": body, "wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"}
    )
    chunks, status, _headers = run_wsgi_app(app.wsgi_app, environ, buffered=True)
    assert status.startswith("413"), b"".join(chunks)
    assert body.read_bytes <= LIMIT + READ_CHUNK
    app.extensions["mentorpay_example"].mp.engine.dispose()


@pytest.mark.parametrize("path", ["/payments/webhook", "/payments/create-checkout-session"])
def test_fastapi_cuts_a_chunked_upload_off_at_the_limit(tmp_path: Path, path: str) -> None:
    """FastAPI: a 50 MiB streamed body is 413 after receiving at most limit + one chunk."""
    app = create_fastapi(_offline_env(tmp_path))
    received = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        n = min(READ_CHUNK, UPLOAD - received)
        received += n
        return {"type": "http.request", "body": b"x" * n, "more_body": received < UPLOAD}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"transfer-encoding", b"chunked"),
            (b"x-demo-user", b"7"),
            (b"stripe-signature", b"t=1,v1=0"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "app": app,
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 413
    assert received <= LIMIT + READ_CHUNK
    app.state.example.mp.engine.dispose()


def _peak_rss_kib(pid: int) -> int:
    """The process's peak resident set size (VmHWM) in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match
    return int(match.group(1))


def _send_chunked(base: str, size: int) -> tuple[int, int]:
    """POST ``size`` bytes chunked to the webhook over a raw socket; returns the answer's status
    and how many bytes the server accepted before answering or closing."""
    host, port = base.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /payments/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Stripe-Signature: t=1,v1=0\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * READ_CHUNK
        frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        sock.setblocking(False)
        answer = b""
        deadline = time.monotonic() + 60
        while sent < size and time.monotonic() < deadline:
            try:
                answer += sock.recv(65536)
                break  # the server answered before the upload ended
            except BlockingIOError:
                pass
            except ConnectionError:
                break
            try:
                sock.send(frame)
                sent += len(chunk)
            except BlockingIOError:
                time.sleep(0.001)
            except ConnectionError:
                break
        sock.setblocking(True)
        sock.settimeout(10)
        try:
            while b"\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except (ConnectionError, TimeoutError):
            pass
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return (int(match.group(1)) if match else 0), sent


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fastapi", "flask"])
def test_real_server_answers_413_and_memory_stays_flat(tmp_path: Path, kind: str) -> None:
    """Real servers answer a 50 MiB chunked upload 413 early; peak memory grows < 16 MiB."""
    with serve_example(kind, tmp_path) as base:
        pid = _server_pid(base)
        before = _peak_rss_kib(pid)
        status, sent = _send_chunked(base, UPLOAD)
        after = _peak_rss_kib(pid)
    assert status == 413
    assert sent < UPLOAD
    assert after - before < 16 * 1024, (before, after)


def _server_pid(base: str) -> int:
    """The pid of the process listening on ``base``'s port (found through /proc)."""
    port = int(base.rsplit(":", 1)[1])
    inodes: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":  # LISTEN
            inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd).removeprefix("socket:[").removesuffix("]") in inodes:
                    return int(proc.name)
        except OSError:
            continue
    pytest.fail(f"no process listens on port {port}")
