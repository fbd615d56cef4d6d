"""A database that is down or drops its connections is a typed, retryable 503 (issue 9, case 3).

Every public entry point maps connection refusal and loss to ``DatabaseUnavailableError``; an
interrupted transaction applies nothing, and retrying converges on the exact state.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

import mentorpay
from mentorpay.app import MentorPay
from mentorpay.bookings import BookingInfo
from mentorpay.config import MentorpayConfig
from mentorpay.db import is_unavailable, make_engine
from mentorpay.errors import DatabaseBusyError, DatabaseUnavailableError
from mentorpay.money import Money
from mentorpay.testing import FakeGateway, InMemoryBookings, encode_event, sign_payload
from tests.conftest import PG_LEGS, POSTGRES_URL, database_leg
from tests.fixtures.webhook_support import SECRET, intent_succeeded, make_harness

KILL_ROUNDS = 8
CLOSED_PORT_URL = "postgresql+psycopg://postgres@127.0.0.1:1/mentorpay?connect_timeout=2"


def _facade(engine: Engine) -> MentorPay:
    config = MentorpayConfig(webhook_secrets=[SECRET])
    booking = BookingInfo("42", "7", "3", Money(5000, "GBP"), "confirmed")
    return MentorPay(config, engine, bookings=InMemoryBookings([booking]), gateway=FakeGateway())


@pytest.fixture(params=["closed_port", "sqlite_unopenable"])
def down(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MentorPay]:
    """A MentorPay whose database cannot be reached: a closed port, an unopenable SQLite file."""
    if request.param == "closed_port":
        engine = make_engine(CLOSED_PORT_URL)
    else:
        engine = make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}")
    yield _facade(engine)
    engine.dispose()


def _entry_points(mp: MentorPay) -> dict[str, Callable[[], Any]]:
    body = encode_event(intent_succeeded("pi_down"))
    header = sign_payload(body, SECRET)
    return {
        "process": lambda: mp.webhooks.process(body, header),
        "balance": lambda: mp.ledger.balance("3", "GBP"),
        "balances": lambda: mp.balances("3"),
        "history": lambda: mp.history("3"),
        "payouts.request": lambda: mp.payouts.request("3", Money(100, "GBP"), "bank"),
        "payouts.list": lambda: mp.payouts.list("3"),
        "checkout.create_session": lambda: mp.checkout.create_session(
            "42", user_id="7", success_url="https://x.test/ok", cancel_url="https://x.test/no"
        ),
        "refunds.refund": lambda: mp.refunds.refund("pi_down"),
        "events": mp.webhooks.list_events,
        "stats": lambda: mp.stats(mp.clock()),
        "upgrade_schema": mp.upgrade_schema,
    }


def test_every_entry_point_answers_503_when_the_database_is_unreachable(down: MentorPay) -> None:
    """A closed port or an unopenable SQLite file: each entry point raises the typed 503."""
    got = {}
    for name, call in _entry_points(down).items():
        try:
            call()
        except Exception as exc:  # collected, so one run shows every entry point
            got[name] = type(exc).__name__
        else:
            got[name] = "no error"
    assert got == dict.fromkeys(got, "DatabaseUnavailableError")


def test_database_unavailable_is_a_retryable_503_and_a_busy_error() -> None:
    """DatabaseUnavailableError: 503, retryable, exported, caught by DatabaseBusyError handlers."""
    err = DatabaseUnavailableError("down")
    assert (err.http_status, err.retryable, err.code) == (503, True, "database_unavailable")
    assert isinstance(err, DatabaseBusyError)
    assert mentorpay.DatabaseUnavailableError is DatabaseUnavailableError


@pytest.fixture(params=PG_LEGS)
def victim(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Engine, str, dict[str, str]]:
    """A fresh engine on a clean PostgreSQL database (direct, or through PgBouncer), and the
    filter on pg_stat_activity that finds its server connections."""
    base = next(database_leg(request, tmp_path))
    url = base.url.render_as_string(hide_password=False)
    if request.param == "pgbouncer":
        # The run's database is its own: every server connection to it is the pool's.
        engine = make_engine(url, pooler="transaction")
        return engine, "datname = :key", {"key": str(base.url.database)}
    with base.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    app = f"mentorpay-outage-{schema}"
    options = {"options": f"-csearch_path={schema}", "application_name": app}
    return make_engine(url, connect_args=options), "application_name = :key", {"key": app}


def test_terminated_backends_mid_batch_converge_on_retry(
    victim: tuple[Engine, str, dict[str, str]],
) -> None:
    """pg_terminate_backend on the pool mid-batch: only typed 503s; retries reach exact sums."""
    engine, where, params = victim
    assert POSTGRES_URL is not None
    killer = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    h = make_harness(engine)
    payments = 120
    work: queue.Queue[tuple[int, bytes, str]] = queue.Queue()
    for i in range(payments):
        body = encode_event(intent_succeeded(f"pi_{i}", mentor=f"m{i % 3}"))
        work.put((0, body, sign_payload(body, SECRET)))
    errors: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def deliver() -> None:
        while True:
            try:
                tries, body, header = work.get_nowait()
            except queue.Empty:
                return
            try:
                status = h.processor.process(body, header).status
            except Exception as exc:  # every kind counted: only the typed 503 may appear
                with lock:
                    errors[type(exc).__name__] += 1
                assert tries < 50, "no convergence"
                work.put((tries + 1, body, header))
                time.sleep(0.005)
                continue
            with lock:
                outcomes[status] += 1

    def kill() -> None:
        for _ in range(KILL_ROUNDS):  # mid-batch: the workers are still delivering
            if stop.is_set():
                return
            with killer.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        f" WHERE {where} AND pid <> pg_backend_pid()"
                    ),
                    params,
                )
            stop.wait(0.1)

    killing = threading.Thread(target=kill)
    killing.start()
    workers = [threading.Thread(target=deliver) for _ in range(4)]
    try:
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    finally:
        stop.set()
        killing.join()
    print(f"outage: {dict(errors)} typed errors, outcomes {dict(outcomes)}")
    engine.dispose()  # connections killed in the killer's last round are not the point here
    try:
        assert set(errors) == {"DatabaseUnavailableError"}, errors
        assert errors["DatabaseUnavailableError"] > 0  # the terminations really hit
        # A lost commit acknowledgement is seen as already_processed on the retry.
        assert outcomes["success"] + outcomes["already_processed"] == payments
        assert set(outcomes) <= {"success", "already_processed"}
        for m in range(3):
            share = 4500 * len(range(m, payments, 3))
            assert h.ledger.balance(f"m{m}", "GBP").pending == Money(share, "GBP")
        report = h.ledger.verify()
        assert report.ok, report
        with engine.connect() as conn:
            statuses = dict(
                conn.execute(
                    text("SELECT status, count(*) FROM mentorpay_webhook_events GROUP BY status")
                ).all()
            )
        assert statuses == {"processed": payments}
    finally:
        engine.dispose()
        killer.dispose()


class OperationalError(Exception):
    """A stand-in for a PEP 249 driver's OperationalError (matched by name, as psycopg's)."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class IntegrityError(Exception):
    """A stand-in for a PEP 249 driver's IntegrityError."""

    sqlstate = "23505"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OperationalError("connection refused"), True),
        (OperationalError("terminating connection", "57P01"), True),
        (OperationalError("connection failure", "08006"), True),
        (OperationalError("could not serialize access", "40001"), False),
        (OperationalError("canceling statement due to statement timeout", "57014"), False),
        (IntegrityError("duplicate key"), False),
        # PgBouncer answering a COMMIT on a killed server: psycopg's own protocol error.
        (psycopg.InternalError("received 2 results from command 'COMMIT'"), True),
        (psycopg.errors.InternalError_("an internal server error"), False),
        (sqlite3.OperationalError("unable to open database file"), True),
        (sqlite3.OperationalError("database is locked"), False),
        (ValueError("not a database error"), False),
    ],
)
def test_only_refusal_and_loss_count_as_unavailable(exc: BaseException, expected: bool) -> None:
    """Serialization failures, timeouts, constraint errors and locks are not outages."""
    assert is_unavailable(exc) is expected
