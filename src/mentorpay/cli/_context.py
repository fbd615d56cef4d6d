"""What every command needs: its database (checked to hold mentorpay's current schema), the
library built from the environment, the host's objects named ``module:attribute``, and small
parsing and printing helpers.

Imported only once a command runs: this is where SQLAlchemy, Alembic and the library load.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any, NoReturn, cast

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import DBAPIError

from mentorpay.app import MentorPay
from mentorpay.bookings import BookingInfo, BookingSource
from mentorpay.cli._output import Output
from mentorpay.config import DEFAULT_DATABASE_URL, MentorpayConfig, hide_password
from mentorpay.db import make_engine, pooler_from_env
from mentorpay.errors import ConfigurationError, InvalidRequestError
from mentorpay.gateway import PaymentGateway
from mentorpay.migrations import VERSION_TABLE, alembic_config

__all__ = [
    "UPGRADE_HINT",
    "database_url",
    "engine",
    "facade",
    "host_bookings",
    "import_host_object",
    "missing_table",
    "parse_when",
    "print_json",
]

UPGRADE_HINT = "run `mentorpay db upgrade` (with the same --url) first"


class _NoGateway:
    """Stands in when STRIPE_SECRET_KEY is unset: any Stripe call is a clear setup error."""

    def __getattr__(self, name: str) -> NoReturn:
        raise ConfigurationError(f"STRIPE_SECRET_KEY is not set: cannot call Stripe ({name})")


class _NoBookings:
    """The CLI has no host application behind it: it knows no booking (checkout is not a CLI
    command; refunds, payouts and webhooks do not ask for bookings)."""

    def get_booking(self, booking_id: str) -> BookingInfo | None:
        del booking_id
        return None


def database_url(args: argparse.Namespace) -> str:
    """``--url``, else ``$MENTORPAY_DATABASE_URL``, else the default SQLite file."""
    url: str = (
        getattr(args, "url", None)
        or os.environ.get("MENTORPAY_DATABASE_URL")
        or DEFAULT_DATABASE_URL
    )
    return url


def _require_schema(engine: Engine) -> None:
    """Refuse, with the fix, a database without mentorpay's tables or behind the code."""
    shown = hide_password(engine.url.render_as_string(hide_password=False))
    tables = set(inspect(engine).get_table_names())
    if VERSION_TABLE not in tables:
        if "mentorpay_payments" in tables:
            return  # made by create_all (tests, create_schema()): no revision to compare
        raise ConfigurationError(f"{shown} has no mentorpay tables: {UPGRADE_HINT}")
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        current = set(context.get_current_heads())
    heads = set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())
    if current != heads:
        at = ", ".join(sorted(current)) or "none"
        raise ConfigurationError(
            f"{shown} has mentorpay's schema at revision {at}, this version needs "
            f"{', '.join(sorted(heads))}: {UPGRADE_HINT}"
        )


def engine(args: argparse.Namespace) -> Engine:
    """The command's database, checked to hold mentorpay's current schema."""
    made = make_engine(database_url(args), pooler=pooler_from_env(os.environ))
    try:
        _require_schema(made)
    except BaseException:
        made.dispose()
        raise
    return made


def import_host_object(spec: str, option: str, wanted: tuple[type, ...]) -> Any:
    """The host's object named ``module:attribute`` (or returned by it, if it is a factory)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InvalidRequestError(f"{option} must be module:attribute, not {spec!r}")
    if os.getcwd() not in sys.path:
        # Like `flask --app`: the host's modules are importable from where the command runs.
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigurationError(f"{module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if callable(target) and not isinstance(target, wanted):
        target = target()
    if not isinstance(target, wanted):
        names = " or ".join(t.__name__ for t in wanted)
        raise ConfigurationError(f"{spec} is not a {names}")
    return target


def host_bookings(spec: str | None) -> BookingSource:
    """The host's BookingSource from ``module:attribute`` (an instance or a factory)."""
    if not spec:
        return _NoBookings()
    source: BookingSource = import_host_object(spec, "--bookings", (BookingSource,))
    return source


def facade(args: argparse.Namespace, bookings: BookingSource | None = None) -> MentorPay:
    """The library built from the environment, on the command's database."""
    env = dict(os.environ)
    env.setdefault("STRIPE_WEBHOOK_SECRET", "whsec_cli_never_verifies_signatures")
    env["MENTORPAY_DATABASE_URL"] = database_url(args)
    config = MentorpayConfig.from_env(env)
    gateway = None if config.stripe_secret_key else cast(PaymentGateway, _NoGateway())
    return MentorPay(config, engine(args), bookings=bookings or _NoBookings(), gateway=gateway)


def missing_table(exc: BaseException) -> bool:
    """A driver error saying a table is missing (a schema older than the code)."""
    if not isinstance(exc, DBAPIError):
        return False
    text = str(exc.orig)
    return (
        "no such table" in text
        or type(exc.orig).__name__ == "UndefinedTable"
        or ("relation" in text and "does not exist" in text)
    )


def parse_when(value: str) -> datetime:
    """An ISO date or datetime; naive values are UTC."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(f"not an ISO date or datetime: {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def print_json(out: Output, value: Any) -> None:
    """``value`` as indented, sorted JSON."""
    out.line(json.dumps(value, indent=2, sort_keys=True))
