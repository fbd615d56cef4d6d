"""HTTP benchmark: signed webhooks through the FastAPI example under uvicorn, and a bare ASGI app.

Run: ``python benchmarks/http.py [--events 1000] [--clients 16] [--postgres URL | --no-postgres]``
(PostgreSQL defaults to MENTORPAY_TEST_POSTGRES_URL when set). Prints one JSON document;
progress goes to stderr. The default run takes well under a minute.

Each server is ``uvicorn`` in a subprocess on a free local port (one worker, no access log):

- ``example``: ``examples.fastapi_app.create_app()`` as shipped, configured by environment
  variables the way a user runs it (``MENTORPAY_DATABASE_URL``, ``STRIPE_WEBHOOK_SECRET``;
  ``MENTORPAY_PGBOUNCER=0`` on a direct PostgreSQL connection). The only addition is the
  benchmark's bookings in its in-memory booking source, so each payment matches its booking
  and is credited as in production. SQLite is a file in a temporary directory (WAL,
  ``synchronous=FULL``); PostgreSQL a schema of its own, dropped afterwards.
- ``fast_ack``: the same example with ``MENTORPAY_WEBHOOK_MODE=ingest`` (its one setting): the
  route verifies and stores each event (answered ``received``; duplicates ``received`` or
  ``already_processed``), the app's background worker applies them in batches. Also reported:
  ``applied_after_s``, how long after the last fresh answer every stored event was applied.
- ``bare``: a plain ASGI callable that reads the body and answers 200 with a small JSON body:
  the cost of uvicorn, HTTP and the client, with no work.

``--clients`` threads (default 16), each with one keep-alive ``http.client`` connection, POST
signed ``payment_intent.succeeded`` deliveries for new payments (``fresh``), then the same
deliveries again (``duplicate``). Reported per server and database: requests per second and
p50/p99 latency in milliseconds, and the ratios example / bare (issue 13's goal: >= 0.5).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mentorpay.testing import booking_metadata, encode_event, make_event, payment_intent

SECRET = "whsec_http_benchmark"
MENTORS = 200
ROOT = Path(__file__).resolve().parent.parent
PATH = "/payments/webhook"


# -- the servers (imported by uvicorn in the subprocess) --------------------------------------


def example_app() -> Any:
    """The FastAPI example with the benchmark's bookings (uvicorn ``--factory``)."""
    from examples.fastapi_app import create_app

    from mentorpay import BookingInfo, Money

    app = create_app()
    bookings = app.state.example.bookings
    for i in range(int(os.environ["BENCH_BOOKINGS"])):
        bookings.add(
            BookingInfo(
                id=f"b_http_{i}",
                mentee_id="u1",
                mentor_id=f"m{i % MENTORS}",
                price=Money(5000 + i % 7, "GBP"),
                status="confirmed",
            )
        )
    return app


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """200 and a small JSON body for every request, after reading its body."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = b'{"status":"success"}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"20")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(target: str, env: dict[str, str | None], *, factory: bool) -> Iterator[int]:
    """uvicorn serving ``target`` on a free port, until the block ends (``None``: unset)."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", target, "--port", str(port)]
    argv += ["--log-level", "warning", "--no-access-log", *(["--factory"] if factory else [])]
    merged = {**os.environ, **env}
    clean = {k: v for k, v in merged.items() if v is not None}
    proc = subprocess.Popen(argv, cwd=ROOT, env=clean)  # noqa: S603 (our own argv)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{target} exited with {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# -- the client --------------------------------------------------------------------------------


def deliveries(tag: str, n: int, first: int = 0) -> list[tuple[bytes, str]]:
    """``n`` signed deliveries of new payments for bookings ``b_http_<first>``... (which the
    server holds: a booking paid twice would be parked for review, not credited)."""
    from mentorpay.testing import sign_payload

    out = []
    for i in range(first, first + n):
        obj = payment_intent(
            id=f"pi_http_{tag}_{i}",
            amount=5000 + i % 7,
            currency="gbp",
            metadata=booking_metadata(f"b_http_{i}", mentor_id=f"m{i % MENTORS}", mentee_id="u1"),
        )
        body = encode_event(
            make_event("payment_intent.succeeded", obj, event_id=f"evt_http_{tag}_{i}")
        )
        out.append((body, sign_payload(body, SECRET)))
    return out


def percentile(sorted_values: list[float], share: float) -> float:
    """The value below which ``share`` of the samples lie (nearest rank)."""
    index = min(len(sorted_values) - 1, max(0, round(share * len(sorted_values)) - 1))
    return sorted_values[index]


def post_all(
    port: int, items: list[tuple[bytes, str]], clients: int, expect: str | None
) -> dict[str, Any]:
    """POST every item from ``clients`` threads; requests per second and latency percentiles."""
    chunks = [items[i::clients] for i in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def run(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        barrier.wait()
        try:
            for body, header in chunks[k]:
                t0 = time.perf_counter()
                conn.request(
                    "POST",
                    PATH,
                    body=body,
                    headers={"Stripe-Signature": header, "Content-Type": "application/json"},
                )
                response = conn.getresponse()
                answer = response.read()
                latencies[k].append(time.perf_counter() - t0)
                if response.status != 200:
                    raise AssertionError(f"HTTP {response.status}: {answer[:200]!r}")
                if expect is not None and json.loads(answer)["status"] != expect:
                    raise AssertionError(f"expected {expect}: {answer[:200]!r}")
        except BaseException as exc:  # surfaced below: a failing run must not look fast
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    flat = sorted(x for chunk in latencies for x in chunk)
    return {
        "per_s": round(len(items) / elapsed),
        "p50_ms": round(percentile(flat, 0.50) * 1000, 2),
        "p99_ms": round(percentile(flat, 0.99) * 1000, 2),
    }


def warm_up(clients: int) -> int:
    """Deliveries sent before measuring (connections, caches, the first statements)."""
    return clients * 4


def measure(
    port: int,
    n: int,
    clients: int,
    tag: str,
    *,
    bare: bool,
    ingest_url: str | None = None,
    first: int = 0,
) -> dict[str, Any]:
    """Fresh deliveries, then the same again (duplicates), after a short warm-up.

    ``ingest_url``: the example runs in ingest mode on that database; fresh answers are
    ``received``, and the time until its worker applied them all is measured too. ``first``:
    the first booking used (a booking paid twice would be parked for review, not credited).
    """
    warm = deliveries(f"warm{tag}", warm_up(clients), first=first + n)
    post_all(port, warm, clients, None)
    items = deliveries(tag, n, first)
    fresh_status = "received" if ingest_url else "success"
    fresh = post_all(port, items, clients, None if bare else fresh_status)
    applied: dict[str, Any] = {}
    if ingest_url:
        applied["applied_after_s"] = wait_applied(ingest_url)
    # In ingest mode a duplicate is "received" until the worker applied its event.
    duplicate = post_all(port, items, clients, None if bare or ingest_url else "already_processed")
    return {
        f"{kind}_{k}": v
        for kind, r in (("fresh", fresh), ("duplicate", duplicate))
        for k, v in r.items()
    } | applied


def wait_applied(url: str, timeout: float = 300.0) -> float:
    """Seconds until no stored event is left ``received`` (the fast-ack worker caught up)."""
    from sqlalchemy import text

    from mentorpay.db import make_engine

    engine = make_engine(url, pooler="none")
    sql = text("SELECT count(*) FROM mentorpay_webhook_events WHERE status = 'received'")
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < timeout:
            with engine.connect() as conn:
                if conn.execute(sql).scalar_one() == 0:
                    break
            time.sleep(0.02)
        return round(time.perf_counter() - t0, 2)
    finally:
        engine.dispose()


# -- the run -----------------------------------------------------------------------------------


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A URL whose connections use a new schema, dropped afterwards."""
    from urllib.parse import quote

    from sqlalchemy import text

    from mentorpay.db import make_engine

    schema = f"mentorpay_http_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url, pooler="none")
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        separator = "&" if "?" in url else "?"
        yield f"{url}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def bench_database(url: str, n: int, clients: int, pooler: str | None) -> dict[str, Any]:
    """The example on one database, and the bare app, measured back to back."""
    env: dict[str, str | None] = {
        "MENTORPAY_DATABASE_URL": url,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "BENCH_BOOKINGS": str(2 * (n + warm_up(clients))),  # the example's, then fast-ack's
        # Offline gateway (the webhook path never calls Stripe) without the offline demo mode.
        "MENTORPAY_OFFLINE": None,
        "STRIPE_SECRET_KEY": None,
        "MENTORPAY_PGBOUNCER": pooler,
    }
    tag = uuid.uuid4().hex[:6]
    with server("benchmarks.http_bench:example_app", env, factory=True) as port:
        example = measure(port, n, clients, f"ex{tag}", bare=False)
    ingest_env = env | {"MENTORPAY_WEBHOOK_MODE": "ingest"}
    with server("benchmarks.http_bench:example_app", ingest_env, factory=True) as port:
        first = n + warm_up(clients)  # bookings the first server did not pay
        fast_ack = measure(port, n, clients, f"fa{tag}", bare=False, ingest_url=url, first=first)
    with server("benchmarks.http_bench:bare_app", {}, factory=False) as port:
        bare = measure(port, n, clients, f"bare{tag}", bare=True)
    with server("benchmarks.http_framework:create_app", {}, factory=True) as port:
        framework = measure(port, n, clients, f"fw{tag}", bare=True)
    return {
        "example": example,
        "fast_ack": fast_ack,
        "bare": bare,
        "framework": framework,
        "fresh_framework_vs_bare": round(framework["fresh_per_s"] / bare["fresh_per_s"], 3),
        "fresh_example_vs_framework": round(example["fresh_per_s"] / framework["fresh_per_s"], 3),
        "fresh_example_vs_bare": round(example["fresh_per_s"] / bare["fresh_per_s"], 3),
        "duplicate_example_vs_bare": round(example["duplicate_per_s"] / bare["duplicate_per_s"], 3),
        "fresh_fast_ack_vs_bare": round(fast_ack["fresh_per_s"] / bare["fresh_per_s"], 3),
        "fresh_fast_ack_vs_example": round(fast_ack["fresh_per_s"] / example["fresh_per_s"], 3),
    }


def main() -> None:
    """Run the benchmark and print its JSON."""
    import sqlalchemy
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="deliveries per measurement")
    parser.add_argument("--clients", type=int, default=16, help="client threads")
    parser.add_argument("--postgres", default=os.environ.get("MENTORPAY_TEST_POSTGRES_URL"))
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[str, Any] = {
        "events_per_measurement": args.events,
        "clients": args.clients,
        "environment": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "sqlalchemy": sqlalchemy.__version__,
            "uvicorn": uvicorn.__version__,
            "server": "uvicorn, 1 worker, no access log; client: http.client keep-alive",
        },
    }
    print("sqlite ...", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = bench_database(
            f"sqlite:///{tmp}/http.db", args.events, args.clients, None
        )
    if args.postgres and not args.no_postgres:
        print("postgresql ...", file=sys.stderr)
        with postgres_schema(args.postgres) as url:
            results["postgresql"] = bench_database(url, args.events, args.clients, "0")
    goals: dict[str, bool] = {}
    for db in ("sqlite", "postgresql"):
        if db in results:
            goals[f"{db}_fresh_example_at_least_0.5x_bare"] = (
                results[db]["fresh_example_vs_bare"] >= 0.5
            )
            goals[f"{db}_fresh_fast_ack_at_least_0.5x_bare"] = (
                results[db]["fresh_fast_ack_vs_bare"] >= 0.5
            )
    results["goals_met"] = goals
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results, indent=2))
