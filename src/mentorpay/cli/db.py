"""``mentorpay db upgrade`` and ``mentorpay demo``: the schema, and the offline walk-through."""

from __future__ import annotations

import argparse
import os
import sqlite3
from contextlib import closing
from pathlib import Path

from sqlalchemy.engine import make_url

from mentorpay.cli._context import database_url
from mentorpay.cli._output import EXIT_OK, Output
from mentorpay.config import hide_password
from mentorpay.db import make_engine, pooler_from_env
from mentorpay.errors import ConfigurationError
from mentorpay.migrations import upgrade

__all__ = ["cmd_db_upgrade", "cmd_demo"]

#: The demo's first checkout event: a SQLite file holding it was written by the demo.
_DEMO_MARKER_EVENT = "evt_demo_cs_42"


def cmd_db_upgrade(args: argparse.Namespace, out: Output) -> int:
    """Apply mentorpay's migrations."""
    engine = make_engine(database_url(args), pooler=pooler_from_env(os.environ))
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    out.line(f"mentorpay schema is up to date ({engine.url.render_as_string(hide_password=True)})")
    return EXIT_OK


def _demo_path(url: str) -> Path:
    """The SQLite file a demo URL names; anything else is refused."""
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigurationError(f"not a database URL: {hide_password(url)}") from None
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database or database == ":memory:":
        raise ConfigurationError(
            f"the demo runs on a SQLite file, not {hide_password(url)}: pass "
            f"--url sqlite:///mentorpay.db (or unset MENTORPAY_DATABASE_URL)"
        )
    return Path(database)


def _check_demo_file(path: Path) -> None:
    """Starting fresh deletes the file: allow it only for a file the demo wrote, or one that
    holds nothing but an empty mentorpay schema."""
    if not path.exists() or path.stat().st_size == 0:
        return
    refusal = ConfigurationError(
        f"{path} holds data that is not the demo's: refusing to overwrite it; pick another "
        "file with --url sqlite:///demo.db (or run on it anyway with --keep)"
    )
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            tables = {
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if not all(name.startswith(("mentorpay_", "sqlite_")) for name in tables):
                raise refusal
            if "mentorpay_webhook_events" not in tables:
                return  # no inbox: no event and no payment was ever recorded here
            marker = conn.execute(
                "SELECT 1 FROM mentorpay_webhook_events WHERE event_id = ?", (_DEMO_MARKER_EVENT,)
            ).fetchone()
            (events,) = conn.execute("SELECT count(*) FROM mentorpay_webhook_events").fetchone()
            (payments,) = (
                conn.execute("SELECT count(*) FROM mentorpay_payments").fetchone()
                if "mentorpay_payments" in tables
                else (0,)
            )
    except sqlite3.DatabaseError:
        raise refusal from None
    if marker is None and (events or payments):
        raise refusal


def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    """Walk bookings through payment, refunds, a dispute, release and payout."""
    # Imported here: the demo plays Stripe with the test kit's FakeGateway and signed events,
    # and no other command may load mentorpay.testing.
    from mentorpay.demo import run_demo  # noqa: PLC0415

    if args.database:
        out.warn("--database is deprecated; use --url sqlite:///FILE")
        url = f"sqlite:///{args.database}"
    else:
        url = database_url(args)
    path = _demo_path(url)
    if not args.keep:
        _check_demo_file(path)
    return run_demo(path, out.line, fresh=not args.keep, progress=out.progress)
