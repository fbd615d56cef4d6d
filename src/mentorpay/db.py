"""Engines and transactions: one place that knows SQLite and PostgreSQL differ.

- SQLite: WAL journal, a busy timeout, ``synchronous=FULL`` (a payment acknowledged to Stripe must
  survive a power cut) and ``BEGIN IMMEDIATE`` so a writer takes the lock up front instead of
  failing on upgrade half-way through a transaction.
- PostgreSQL (and PostgreSQL-wire distributed SQL): READ COMMITTED plus conditional updates and
  unique constraints; serialization failures (40001) and deadlocks (40P01) are retried with
  jittered exponential backoff, a bounded number of times. Through PgBouncer in transaction
  mode: no server-side prepared statements (:func:`make_engine`'s ``pooler``) and no session
  state beyond a transaction.
- Both: a refused or lost connection is :class:`~mentorpay.errors.DatabaseUnavailableError`
  (503) wherever it surfaces (:func:`run_in_transaction`, :func:`read_connection`,
  :func:`transaction`, :func:`raw_connection`), never a driver exception.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final, Literal, TypeVar, cast

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import PoolProxiedConnection

from mentorpay.errors import (
    ConfigurationError,
    DatabaseBusyError,
    DatabaseUnavailableError,
    InvalidRequestError,
)
from mentorpay.models import Id, UTCDateTime

__all__ = [
    "DEFAULT_RETRIES",
    "ID_MAX",
    "IN_CHUNK",
    "POOLERS",
    "READ_ONLY",
    "Pooler",
    "check_id",
    "chunked",
    "coerce_engine",
    "driver_execute",
    "insert_constructor",
    "insert_for",
    "is_retryable",
    "is_unavailable",
    "make_engine",
    "outages_typed",
    "placeholder",
    "pooler_from_env",
    "raw_connection",
    "read_connection",
    "run_in_transaction",
    "time_binder",
    "transaction",
]

T = TypeVar("T")

#: What sits between mentorpay and PostgreSQL; see :func:`make_engine`.
Pooler = Literal["transaction", "session", "none"]
POOLERS: tuple[Pooler, ...] = ("transaction", "session", "none")

DEFAULT_RETRIES = 8
#: Characters an id column holds (booking, user and Stripe ids; Stripe's are at most 255).
ID_MAX: Final[int] = cast(int, Id.length)
#: Values per ``IN (...)`` list: well under every driver's limit on bound parameters.
IN_CHUNK: Final = 500
#: Execution option marking a connection that only reads (SQLite then skips BEGIN IMMEDIATE).
READ_ONLY = "mentorpay_read_only"
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
#: Server going away or refusing: admin/crash shutdown, starting up, too many connections.
#: (Class 08, connection exceptions, is matched by its prefix.)
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def check_id(value: object, *, field: str, label: str | None = None) -> None:
    """Refuse an id that does not fit its column: a clear error beats the driver's on INSERT.
    ``label`` names it in the message (default: ``field``)."""
    if not isinstance(value, str) or not value or len(value) > ID_MAX:
        raise InvalidRequestError(
            f"{label or field} must be a non-empty string of at most {ID_MAX} characters",
            field=field,
        )


def chunked(values: Sequence[T]) -> Iterable[Sequence[T]]:
    """``values`` in slices of :data:`IN_CHUNK`, for ``IN (...)`` queries."""
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]


def make_engine(url: str, *, pooler: Pooler | None = None, **kwargs: Any) -> Engine:
    """Create an engine configured the way mentorpay's transactions need.

    ``pooler`` says what sits between mentorpay and PostgreSQL (ignored on SQLite):

    - ``"transaction"``: PgBouncer (or a look-alike: Supavisor, RDS Proxy, pgcat) in
      transaction pooling mode. Each transaction may run on a different server connection, so
      psycopg's automatic server-side prepared statements are turned off
      (``prepare_threshold=None``): a statement prepared on one server connection is missing
      on the next (``InvalidSqlStatementName``) or collides with another client's
      (``DuplicatePreparedStatement``).
    - ``"session"`` or ``"none"``: a session-mode pooler or a direct connection; prepared
      statements stay on.
    - ``None`` (the default): mentorpay cannot know, because a pooler is invisible from the
      client (hosts run PgBouncer on 5432, 6543 or 25061 as well as on 6432), so it takes the
      setting that works everywhere: prepared statements off, as for ``"transaction"``. That
      costs speed on a direct connection (fresh webhooks about 1.5x slower in one measurement,
      see the README), where the wrong guess the other way fails a share of requests
      outright behind a pooler. Pass ``pooler="none"`` for a direct connection to keep them.

    An explicit ``connect_args={"prepare_threshold": ...}`` always wins. mentorpay keeps no
    session state beyond a transaction either way: its advisory locks are transaction-scoped
    and isolation levels are set per transaction by the driver, never with ``SET``.
    """
    if pooler not in POOLERS and pooler is not None:
        raise ConfigurationError(
            f"pooler must be one of {', '.join(POOLERS)} or None, got {pooler!r}", pooler=pooler
        )
    try:
        if url.startswith("sqlite"):
            return _sqlite_engine(url, **kwargs)
        if pooler not in ("session", "none") and make_url(url).get_driver_name() == "psycopg":
            connect_args = dict(kwargs.pop("connect_args", None) or {})
            connect_args.setdefault("prepare_threshold", None)
            kwargs["connect_args"] = connect_args
        # No pool_pre_ping: it costs a round trip per checkout on the webhook hot path; a dropped
        # connection fails its transaction, which callers retry as a whole.
        return create_engine(url, **kwargs)
    except Exception as exc:  # a bad URL or a missing driver is a setup error
        raise ConfigurationError(f"cannot create a database engine: {exc}", url=_safe(url)) from exc


def pooler_from_env(environ: Mapping[str, str]) -> Pooler | None:
    """The pooler named by ``MENTORPAY_PGBOUNCER``: ``1`` (transaction mode), ``session``, ``0``
    (a direct connection); unset means "not known" (see :func:`make_engine`)."""
    raw = environ.get("MENTORPAY_PGBOUNCER", "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes", "on", "transaction"):
        return "transaction"
    if raw == "session":
        return "session"
    if raw in ("0", "false", "no", "off", "none"):
        return "none"
    raise ConfigurationError(
        "MENTORPAY_PGBOUNCER must be 1 (transaction pooling), session, or 0 (direct connection)",
        value=raw,
    )


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparseable: no telling which part is the password
        return "<unparseable URL>"


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    busy_ms = int(kwargs.pop("busy_timeout_ms", 30_000))
    if ":memory:" in url or url.rstrip("/") in ("sqlite:", "sqlite+pysqlite:"):
        raise ConfigurationError(
            "mentorpay needs a file-backed SQLite database (WAL and several connections); "
            "use sqlite:///path/to/file.db",
            url=url,
        )
    engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level so that SQLAlchemy's BEGIN below is the only BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Readers must not take the write lock: in WAL mode they run beside the writer.
        # Straight to the driver: this runs once per webhook, and Core adds ~20 us to it.
        begin = "BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
        try:
            conn.connection.driver_connection.execute(begin)  # type: ignore[union-attr]
        except sqlite3.Error as exc:  # wrapped so a busy database is retried like any other
            raise DBAPIError.instance(begin, (), exc, sqlite3.Error) from exc

    return engine


def coerce_engine(engine_or_session_factory: Engine | sessionmaker[Any] | str) -> Engine:
    """Accept an Engine, a sessionmaker bound to one, or a URL."""
    if isinstance(engine_or_session_factory, Engine):
        return engine_or_session_factory
    if isinstance(engine_or_session_factory, str):
        return make_engine(engine_or_session_factory)
    bind = engine_or_session_factory.kw.get("bind")
    if isinstance(bind, Engine):
        return bind
    if isinstance(bind, Connection):
        return bind.engine
    raise ConfigurationError("the session factory passed to mentorpay is not bound to an engine")


def is_retryable(exc: BaseException) -> bool:
    """True for serialization failures, deadlocks and SQLite lock contention."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    if isinstance(exc, OperationalError):
        text = str(orig).lower()
        return "database is locked" in text or "database is busy" in text
    return False


def is_unavailable(exc: BaseException) -> bool:
    """True when the database refused the connection or the connection was lost.

    Accepts SQLAlchemy's wrapped errors and bare driver errors (``engine.raw_connection()``
    raises those). A driver ``OperationalError``/``InterfaceError`` with no SQLSTATE is one the
    client raised itself (refused, reset, "server closed the connection unexpectedly"); one
    with a SQLSTATE is the server speaking, and only class 08 and the shutdown codes mean it is
    going away. SQLite: a database file that cannot be opened.
    """
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig: BaseException | None = exc.orig
    else:
        orig = exc
    if orig is None:
        return False
    if isinstance(orig, sqlite3.Error):
        return "unable to open database file" in str(orig).lower()
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate:
        return str(sqlstate).startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES
    # PEP 249 names, matched by name: the driver is not imported here. An InternalError with
    # no SQLSTATE is the client's own protocol confusion (PgBouncer answering a COMMIT after
    # its server was killed): the connection is unusable and the outcome unknown, so a retry
    # (idempotent by the inbox and business keys) is the only safe answer.
    names = {cls.__name__ for cls in type(orig).__mro__}
    return bool(names & {"OperationalError", "InterfaceError", "InternalError"})


def _unavailable(exc: BaseException) -> DatabaseUnavailableError:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    # The driver's text names hosts, not passwords; only its type goes into the details.
    return DatabaseUnavailableError(
        "the database is unavailable (connection refused or lost); nothing was half-applied, "
        "retry later",
        cause=type(orig).__name__,
    )


@contextmanager
def outages_typed() -> Iterator[None]:
    """Turn connection refusal and loss inside the block into :class:`DatabaseUnavailableError`."""
    try:
        yield
    except DBAPIError as exc:
        if is_unavailable(exc):
            raise _unavailable(exc) from exc
        raise


def raw_connection(engine: Engine) -> PoolProxiedConnection:
    """``engine.raw_connection()``, with a refused connection typed as for every other path."""
    try:
        return engine.raw_connection()
    except Exception as exc:
        if is_unavailable(exc):
            raise _unavailable(exc) from exc
        raise


def run_in_transaction(
    engine: Engine,
    fn: Callable[[Connection], T],
    *,
    retries: int = DEFAULT_RETRIES,
    base_delay: float = 0.005,
) -> T:
    """Run ``fn`` in one transaction, committing once; retry the whole of it when retryable.

    ``fn`` must be safe to run again from the start: it sees a fresh transaction each time.
    """
    attempt = 0
    while True:
        try:
            with engine.begin() as conn:
                return fn(conn)
        except DBAPIError as exc:
            attempt += 1
            if is_unavailable(exc):
                # Not retried here: a database that is down stays down for longer than a
                # request should wait; the caller (Stripe, the host) retries the whole call.
                raise _unavailable(exc) from exc
            if not is_retryable(exc):
                raise
            if attempt > retries:
                raise DatabaseBusyError(
                    f"gave up after {retries} retries on serialization failures", attempts=attempt
                ) from exc
            # Full jitter: spreads colliding writers apart instead of retrying in lockstep.
            time.sleep(random.uniform(0, base_delay * (2 ** min(attempt, 8))))


def time_binder(dialect: Dialect) -> Callable[[datetime | None], Any]:
    """What the driver must be given for a timestamp, exactly as Core would bind it.

    For statements sent straight to the driver (:func:`driver_execute`). The type's
    *dialect* implementation matters: ``UTCDateTime().bind_processor`` alone skips SQLite's
    ``DATETIME`` formatting, and sqlite3 would then store ``...12:00:00+00:00`` beside Core's
    ``...12:00:00.000000``, which compares as an earlier instant.
    """
    processor = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    return processor if processor is not None else _same


def _same(value: datetime | None) -> Any:
    return value


def insert_constructor(dialect_name: str) -> Any:
    """The dialect's INSERT with ON CONFLICT support; other databases are refused."""
    if dialect_name in ("postgresql", "cockroachdb"):
        return postgresql.insert
    if dialect_name == "sqlite":
        return sqlite.insert
    raise ConfigurationError(
        f"mentorpay supports PostgreSQL(-compatible) databases and SQLite, not {dialect_name}"
    )


def insert_for(conn: Connection, table: Any) -> Any:
    """A dialect INSERT that supports ON CONFLICT (PostgreSQL, SQLite, PG-wire distributed SQL)."""
    return insert_constructor(conn.dialect.name)(table)


def placeholder(conn_or_engine: Connection | Engine) -> str:
    """The driver's positional parameter marker: ``?`` for sqlite3, ``%s`` for psycopg."""
    return "?" if conn_or_engine.dialect.name == "sqlite" else "%s"


def driver_execute(conn: Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run one hot-path statement on the transaction's own DBAPI connection.

    Through SQLAlchemy Core a statement costs several times the driver call (parameter
    processing, result setup, events); the webhook and posting paths run a handful per event, so
    they go straight to the driver, inside the same transaction. Driver errors are wrapped as
    SQLAlchemy's, so serialization failures and deadlocks are still recognized and retried.
    Callers pass values the driver adapts as is (ints, strings, bound-processed datetimes).
    """
    driver_error: type[Exception] = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []
    except driver_error as exc:
        dead = conn.dialect.is_disconnect(cast(Any, exc), conn.connection.dbapi_connection, cursor)
        if dead:
            # As Core does for its own statements: the pool must not hand this one out again.
            conn.invalidate(exc)
        raise DBAPIError.instance(
            sql, params, exc, driver_error, connection_invalidated=dead
        ) from exc
    finally:
        cursor.close()


@contextmanager
def read_connection(engine: Engine, *, snapshot: bool = False) -> Iterator[Connection]:
    """A connection for queries, never taking a writer's lock.

    SQLite: a deferred ``BEGIN`` (one WAL snapshot for the whole block) instead of
    ``BEGIN IMMEDIATE``. PostgreSQL: autocommit, so a one-statement read costs one round trip;
    with ``snapshot=True`` a read-only REPEATABLE READ transaction instead, so that several
    statements see one consistent state (``verify()`` must not report a posting half-seen).
    """
    with outages_typed(), engine.connect() as conn:
        options: dict[str, Any] = {READ_ONLY: True}
        if conn.dialect.name != "sqlite":
            if snapshot:
                options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            else:
                options["isolation_level"] = "AUTOCOMMIT"
        yield conn.execution_options(**options)


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A plain transaction without retry, for callers composing their own unit of work."""
    with outages_typed(), engine.begin() as conn:
        yield conn
