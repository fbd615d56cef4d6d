"""The CLI as an operator uses it: one default database, --url everywhere, help on every
argument, a clear hint on an empty database, the payout and refund commands, event filters,
progress bars, and no test kit at run time."""

from __future__ import annotations

import argparse
import io
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import responses
from sqlalchemy import text

from mentorpay.cli import Output, build_parser, main
from mentorpay.db import make_engine

MOCK = "http://127.0.0.1:12111"


class TTY(io.StringIO):
    """A stderr that says it is a terminal, so progress bars are drawn."""

    def isatty(self) -> bool:
        return True


def run(*argv: str, tty: bool = False) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), TTY() if tty else io.StringIO()
    code = main(list(argv), out=Output(out, err))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Stripe key, API base or database URL leaks in from the environment."""
    for name in (
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_API_BASE",
        "MENTORPAY_DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def demo_db(tmp_path: Path) -> str:
    """A database filled by the demo; returns its URL."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    code, _, err = run("demo", "--url", url)
    assert code == 0, err
    return url


def _intent(url: str, booking_id: str) -> str:
    """The payment intent of one of the demo's bookings."""
    engine = make_engine(url)
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT payment_intent_id FROM mentorpay_payments WHERE booking_id = :b"),
            {"b": booking_id},
        ).scalar_one()
    engine.dispose()
    return str(value)


def _leaves(
    parser: argparse.ArgumentParser, path: str = "mentorpay"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command tree with its command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _leaves(child, f"{path} {name}")


# -- the parser ---------------------------------------------------------------------------------


def test_every_argument_and_command_has_help() -> None:
    """Walking the whole argparse tree, every option, positional and sub-command has help."""
    missing = []
    for path, parser in _leaves(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{path} {a.dest}" for a in action._choices_actions if not a.help]
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {action.dest}")
    assert missing == []


def test_every_command_takes_url() -> None:
    """Every runnable command, the demo included, accepts --url."""
    lacking = [
        path
        for path, parser in _leaves(build_parser())
        if parser.get_default("func") is not None
        and not any("--url" in action.option_strings for action in parser._actions)
    ]
    assert lacking == []


def test_importing_the_cli_does_not_load_the_test_kit() -> None:
    """`import mentorpay.cli` (what the console script does) leaves mentorpay.testing unloaded."""
    code = "import sys, mentorpay.cli; print('mentorpay.testing' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# -- one default database -----------------------------------------------------------------------


def test_demo_and_every_command_share_one_default_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mentorpay demo` then `mentorpay balance bob`, both without --url, use mentorpay.db."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run("demo")
    assert code == 0, err
    assert (tmp_path / "mentorpay.db").is_file()
    assert not (tmp_path / "mentorpay-demo.db").exists()
    code, out, err = run("balance", "bob")
    assert code == 0, err
    assert "270.00" in out


def test_demo_follows_mentorpay_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With MENTORPAY_DATABASE_URL set, the demo writes where the other commands read."""
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("MENTORPAY_DATABASE_URL", url)
    assert run("demo")[0] == 0
    assert "270.00" in run("balance", "bob")[1]


def test_demo_database_option_is_a_deprecated_alias(tmp_path: Path) -> None:
    """`demo --database FILE` still works and says to use --url."""
    code, _, err = run("demo", "--database", str(tmp_path / "old.db"))
    assert code == 0
    assert "deprecated" in err
    assert "--url" in err
    url = f"sqlite:///{tmp_path / 'old.db'}"
    assert "270.00" in run("balance", "bob", "--url", url)[1]


def test_demo_refuses_a_database_that_is_not_its_own(tmp_path: Path) -> None:
    """The demo refuses, untouched, another app's SQLite file and any server database."""
    other = tmp_path / "host.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    code, _, err = run("demo", "--url", f"sqlite:///{other}")
    assert code == 1
    assert "not the demo's" in err
    with sqlite3.connect(other) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
    code, _, err = run("demo", "--url", "postgresql+psycopg://u:pw@127.0.0.1:1/x")
    assert code == 1
    assert "SQLite" in err
    assert "pw" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["balance", "bob"],
        ["ledger", "verify"],
        ["events", "list"],
        ["events", "replay", "--failed"],
        ["payouts", "list"],
        ["payouts", "request", "bob", "10.00", "GBP"],
        ["refund", "pi_1"],
        ["release-due"],
        ["stats", "--since", "2026-01-01"],
    ],
    ids=lambda argv: "-".join(argv[:2]),
)
def test_empty_database_says_run_db_upgrade(tmp_path: Path, argv: list[str]) -> None:
    """Without mentorpay's tables every command says to run `mentorpay db upgrade`, exit 1."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    code, out, err = run(*argv, "--url", url)
    assert code == 1
    assert out == ""
    assert "run `mentorpay db upgrade" in err
    assert len(err.strip().splitlines()) == 1


# -- balances and events ------------------------------------------------------------------------


def test_balance_in_a_currency_without_balance_says_so(demo_db: str) -> None:
    """`balance bob --currency usd` says there is no USD balance instead of printing zeros."""
    code, out, _ = run("balance", "bob", "--currency", "usd", "--url", demo_db)
    assert code == 0
    assert "bob has no USD balance" in out
    assert "0.00" not in out
    assert "270.00" in run("balance", "bob", "--currency", "gbp", "--url", demo_db)[1]


def test_events_list_filters_by_type(demo_db: str) -> None:
    """`events list --type T` lists only events of that type (JSON and table)."""
    code, out, _ = run("events", "list", "--type", "charge.refunded", "--json", "--url", demo_db)
    assert code == 0
    events = json.loads(out)
    assert len(events) == 2
    assert {e["type"] for e in events} == {"charge.refunded"}
    code, out, _ = run("events", "list", "--type", "transfer.created", "--url", demo_db)
    assert "transfer.created" in out
    assert "checkout.session.completed" not in out
    code, out, _ = run("events", "list", "--type", "nothing.here", "--url", demo_db)
    assert "no stored events of type nothing.here" in out


# -- payouts and refunds ------------------------------------------------------------------------


def test_payouts_request_mark_failed_and_reverse(demo_db: str) -> None:
    """From the CLI: request, send and fail a payout (money back); pay and reverse another."""
    code, out, err = run("payouts", "request", "alice", "20.00", "gbp", "--url", demo_db)
    assert code == 0, err
    assert "20.00 GBP to alice" in out
    assert "is requested" in out
    first = int(out.split()[1])
    assert run("payouts", "approve", str(first), "--approver", "ops", "--url", demo_db)[0] == 0
    assert run("payouts", "execute", str(first), "--url", demo_db)[0] == 0  # bank transfer sent
    code, out, err = run(
        "payouts", "mark-failed", str(first), "--reason", "account closed", "--url", demo_db
    )
    assert (code, "is failed" in out) == (0, True), err
    assert "45.00" in run("balance", "alice", "--currency", "GBP", "--url", demo_db)[1]

    code, out, _ = run("payouts", "request", "alice", "45.00", "GBP", "--url", demo_db)
    second = int(out.split()[1])
    run("payouts", "approve", str(second), "--approver", "ops", "--url", demo_db)
    run("payouts", "mark-paid", str(second), "--reference", "BANK-2", "--url", demo_db)
    code, out, err = run(
        "payouts", "reverse", str(second), "--reason", "returned by bank", "--url", demo_db
    )
    assert (code, "is reversed" in out) == (0, True), err


def test_payouts_request_refusals_are_one_line(demo_db: str) -> None:
    """Asking for more than is available, or a malformed amount, is a one-line error."""
    for argv in (["alice", "1000.00", "GBP"], ["alice", "1.234", "GBP"], ["alice", "1", "XYZ"]):
        code, out, err = run("payouts", "request", *argv, "--url", demo_db)
        assert code == 1
        assert out == ""
        assert len(err.strip().splitlines()) == 1


def test_mark_failed_needs_a_reason(demo_db: str) -> None:
    """`payouts mark-failed` without --reason is a usage error."""
    with pytest.raises(SystemExit) as caught:
        run("payouts", "mark-failed", "1", "--url", demo_db)
    assert caught.value.code == 2


@responses.activate
def test_refund_command_calls_stripe_at_the_configured_base(
    demo_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`refund` posts one refund to STRIPE_API_BASE, keyed by --request-id, in its currency."""
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_cli")
    monkeypatch.setenv("STRIPE_API_BASE", MOCK)
    intent = _intent(demo_db, "42")
    responses.post(
        f"{MOCK}/v1/refunds",
        json={
            "id": "re_cli_1",
            "object": "refund",
            "amount": 1000,
            "currency": "gbp",
            "payment_intent": intent,
            "status": "succeeded",
            "charge": "ch_1",
        },
    )
    code, out, err = run(
        "refund",
        intent,
        "--amount",
        "10.00",
        "--reason",
        "requested_by_customer",
        "--request-id",
        "ticket-7",
        "--url",
        demo_db,
    )
    assert code == 0, err
    assert "re_cli_1" in out
    assert "10.00 GBP" in out
    (call,) = responses.calls
    assert "amount=1000" in str(call.request.body)
    assert "ticket-7" in call.request.headers["Idempotency-Key"]


def test_refund_without_a_stripe_key_says_what_is_missing(demo_db: str) -> None:
    """A refund needs STRIPE_SECRET_KEY and says so in one line; unknown payments are 404s."""
    code, _, err = run("refund", _intent(demo_db, "42"), "--url", demo_db)
    assert code == 1
    assert "STRIPE_SECRET_KEY" in err
    code, _, err = run("refund", "pi_unknown", "--url", demo_db)
    assert code == 1
    assert "pi_unknown" in err


# -- progress bars ------------------------------------------------------------------------------


def test_progress_bars_on_a_terminal_only(demo_db: str) -> None:
    """Replay and release-due draw a bar on a terminal and print nothing extra to a pipe."""
    engine = make_engine(demo_db)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE mentorpay_webhook_events SET status='failed' WHERE event_id=:e"),
            {"e": "evt_demo_cs_43"},
        )
    engine.dispose()
    code, _, err = run("events", "replay", "--failed", "--url", demo_db, tty=True)
    assert code == 0
    assert "replaying" in err
    assert "1/1" in err
    code, out, err = run("release-due", "--now", "2999-01-01", "--url", demo_db, tty=True)
    assert code == 0
    assert "released 2 payment(s)" in out
    assert "releasing" in err
    assert "2/2" in err
    assert run("release-due", "--now", "2999-01-01", "--url", demo_db)[2] == ""


@responses.activate
def test_reconcile_draws_a_progress_bar(demo_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """reconcile shows its four comparisons as a bar on a terminal."""
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_cli")
    lists = ("payment_intents", "refunds", "disputes", "transfers", "charges", "checkout/sessions")
    for what in lists:
        responses.get(
            f"https://api.stripe.com/v1/{what}",
            json={"object": "list", "data": [], "has_more": False},
        )
    since = datetime.now(UTC).isoformat()  # after the demo's payments: an empty period
    code, _, err = run("reconcile", "--since", since, "--url", demo_db, tty=True)
    assert code in (0, 2), err
    assert "reconciling" in err
    assert "4/4" in err
