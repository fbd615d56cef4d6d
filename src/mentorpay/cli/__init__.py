"""The ``mentorpay`` command: demo, database, balances, webhook inbox, payouts, refunds,
reconciliation.

Every command, the demo included, works on one database: ``--url``, else
``$MENTORPAY_DATABASE_URL``, else ``sqlite:///mentorpay.db`` in the current directory. Errors
are one readable line on stderr and a non-zero exit code, never a traceback; a database
without mentorpay's tables says to run ``mentorpay db upgrade``. Long work (replay,
reconciliation, releases, the demo) draws a progress bar on stderr when it is a terminal.

Commands that need the whole library build :class:`~mentorpay.app.MentorPay` from the
environment (``MENTORPAY_DATABASE_URL``, ``STRIPE_SECRET_KEY``, ``STRIPE_API_BASE``); none of
them verifies webhook signatures, so ``STRIPE_WEBHOOK_SECRET`` is optional here. Nothing here
imports :mod:`mentorpay.testing`: only the demo, which plays Stripe's part with the test kit's
fake gateway, loads it, inside its own command.

Layout: :mod:`._parser` is the command tree, which names each command's handler and loads
nothing heavy; one module per command group holds the handlers (``db``, ``ledger``,
``events``, ``payouts``, ``payments``, ``reports``), imported only when one of them runs;
:mod:`._context` is what they share (database, facade, host objects); :mod:`._output` prints.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence

from mentorpay.cli._output import EXIT_ERROR, Output
from mentorpay.cli._parser import build_parser
from mentorpay.errors import MentorpayError

__all__ = ["Output", "build_parser", "main"]

Handler = Callable[[argparse.Namespace, Output], int]


def _handler(spec: str) -> Handler:
    """The function a ``"module:function"`` spec of the command tree names."""
    module, _, name = spec.partition(":")
    handler: Handler = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    return handler


def main(argv: Sequence[str] | None = None, *, out: Output | None = None) -> int:
    """Entry point of the ``mentorpay`` command; returns the exit code."""
    output = out or Output()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _handler(args.func)(args, output)
    except MentorpayError as exc:
        output.error(exc.message)
        return EXIT_ERROR
    except KeyboardInterrupt:
        output.error("interrupted")
        return 130
    except Exception as exc:  # a CLI prints one line, never a traceback
        # Loaded by the command that just ran; only needed on this path.
        from mentorpay.cli._context import UPGRADE_HINT, missing_table  # noqa: PLC0415

        if missing_table(exc):
            output.error(f"the database lacks some of mentorpay's tables: {UPGRADE_HINT}")
            return EXIT_ERROR
        first_line = (str(exc).strip().splitlines() or [""])[0]
        output.error(f"{type(exc).__name__}: {first_line}")
        return EXIT_ERROR
    finally:
        output.close()
