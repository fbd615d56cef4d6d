"""Engine setup and transactions: SQLite locking, retries, engine coercion."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from mentorpay.db import (
    coerce_engine,
    driver_execute,
    is_retryable,
    make_engine,
    read_connection,
    run_in_transaction,
)
from mentorpay.errors import ConfigurationError, DatabaseBusyError
from mentorpay.models import metadata


@pytest.fixture
def sqlite(tmp_path: Path) -> Engine:
    """A file SQLite engine with a short busy timeout and mentorpay's tables."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", busy_timeout_ms=50)
    metadata.create_all(engine)
    return engine


def test_sqlite_is_configured_for_durability(sqlite: Engine) -> None:
    """SQLite runs in WAL mode with synchronous=FULL and foreign keys on."""
    with sqlite.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_in_memory_sqlite_is_refused() -> None:
    """An in-memory SQLite URL is refused: WAL and several connections need a file."""
    with pytest.raises(ConfigurationError):
        make_engine("sqlite:///:memory:")


def test_bad_url_is_a_configuration_error() -> None:
    """A URL naming an unknown driver is a ConfigurationError, password hidden."""
    with pytest.raises(ConfigurationError) as info:
        make_engine("nosuchdb://user:secret@host/db")
    assert "secret" not in str(info.value.details)


def test_writers_wait_for_the_lock_and_busy_is_retried_then_reported(sqlite: Engine) -> None:
    """A writer blocked past the busy timeout is retried, then DatabaseBusyError (503)."""
    holding = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with sqlite.begin() as conn:
            conn.execute(text("SELECT 1"))
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    holding.wait(5)
    try:
        with pytest.raises(DatabaseBusyError) as info:
            run_in_transaction(sqlite, lambda conn: None, retries=2, base_delay=0.001)
        assert info.value.http_status == 503
    finally:
        release.set()
        holder.join()
    assert run_in_transaction(sqlite, lambda conn: 42) == 42


def test_readers_do_not_queue_behind_a_writer(sqlite: Engine) -> None:
    """A read_connection reads while another connection holds the write lock."""
    with sqlite.begin() as writer:
        writer.execute(text("SELECT 1"))
        with read_connection(sqlite) as reader:
            count = reader.execute(text("SELECT count(*) FROM mentorpay_payments")).scalar()
    assert count == 0


def test_driver_errors_are_wrapped_and_classified(sqlite: Engine) -> None:
    """driver_execute wraps driver errors as SQLAlchemy's; syntax errors are not retryable."""
    from sqlalchemy.exc import DBAPIError

    with sqlite.begin() as conn, pytest.raises(DBAPIError) as info:
        driver_execute(conn, "SELEC 1", ())
    assert not is_retryable(info.value)
    assert not is_retryable(ValueError("x"))


def test_coerce_engine_accepts_engine_sessionmaker_and_url(sqlite: Engine, tmp_path: Path) -> None:
    """MentorPay accepts an Engine, a bound sessionmaker or a URL; an unbound one is refused."""
    assert coerce_engine(sqlite) is sqlite
    assert coerce_engine(sessionmaker(bind=sqlite)) is sqlite
    assert coerce_engine(f"sqlite:///{tmp_path / 'other.db'}").dialect.name == "sqlite"
    with pytest.raises(ConfigurationError):
        coerce_engine(sessionmaker())
