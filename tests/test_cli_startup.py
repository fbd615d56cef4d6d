"""The CLI starts fast: `--version` and `--help` load no heavy library, and the command tree's
literal choices and handler names agree with the library."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from typing import get_args

import pytest

from mentorpay.cli import _parser, build_parser

HEAVY = ("sqlalchemy", "stripe", "pydantic", "alembic", "tqdm", "mentorpay.app")


def _loaded_after(*argv: str) -> list[str]:
    """The heavy modules loaded by running the CLI with ``argv`` in a fresh interpreter."""
    code = (
        "import sys\n"
        "from mentorpay.cli import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('loaded:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("loaded:"), result.stdout
    return [name for name in last.removeprefix("loaded:").split(",") if name]


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_load_no_heavy_library(flag: str) -> None:
    """`mentorpay --version` / `--help` import neither SQLAlchemy, Stripe, pydantic nor tqdm."""
    assert _loaded_after(flag) == []


def test_a_group_help_loads_no_heavy_library() -> None:
    """`mentorpay payouts list --help` (choices included) still loads nothing heavy."""
    assert _loaded_after("payouts", "list", "--help") == []


def test_literal_choices_match_the_library() -> None:
    """The parser's spelled-out statuses and refund reasons are the library's own."""
    from mentorpay.gateway import REFUND_REASONS
    from mentorpay.payouts import PAYOUT_STATUSES, PayoutStatus
    from mentorpay.webhooks import INBOX_STATUSES

    assert _parser.PAYOUT_STATUSES == PAYOUT_STATUSES == get_args(PayoutStatus)
    assert tuple(_parser.INBOX_STATUSES) == tuple(INBOX_STATUSES)
    assert set(_parser.REFUND_REASONS) == set(REFUND_REASONS)


def _leaves(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _leaves(child)


def test_every_handler_name_resolves_to_a_function() -> None:
    """Each command's "module:function" names a function of the cli package."""
    from mentorpay.cli import _handler

    specs = {p.get_default("func") for p in _leaves(build_parser())} - {None}
    assert len(specs) == 23  # plans list, show, expire included
    for spec in specs:
        assert callable(_handler(spec)), spec


def test_command_modules_load_no_test_kit() -> None:
    """Every command module but the demo's command body leaves mentorpay.testing unloaded."""
    code = (
        "import importlib, sys\n"
        "for name in ('db', 'ledger', 'events', 'payouts', 'payments', 'reports', '_context'):\n"
        "    importlib.import_module('mentorpay.cli.' + name)\n"
        "print('mentorpay.testing' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
