"""The mentorpay command: every subcommand, its output, and its failure messages."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from mentorpay.cli import Output, main
from mentorpay.db import make_engine


def run(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=Output(out, err))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def demo_db(tmp_path: Path) -> str:
    """A database filled by the demo; returns its URL."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    code, _, _ = run("demo", "--url", url)
    assert code == 0
    return url


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Stripe key or database URL leaks in from the environment."""
    for name in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "MENTORPAY_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_demo_runs_the_whole_flow_and_verifies(tmp_path: Path) -> None:
    """The demo prints the split table, webhook answers, balances and a clean verify."""
    code, out, err = run("demo", "--url", f"sqlite:///{tmp_path / 'd.db'}")
    assert code == 0, err
    assert "45.00 GBP" in out
    assert "deferred" in out
    assert "already_processed" in out
    assert "Ledger verify: OK" in out
    assert any(line.split()[:3] == ["bob", "GBP", "270.00"] for line in out.splitlines())


def test_demo_starts_fresh_unless_keep_is_given(tmp_path: Path) -> None:
    """The demo starts fresh on a reused file; with --keep it fails cleanly (already paid)."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    assert run("demo", "--url", url)[0] == 0
    assert run("demo", "--url", url)[0] == 0
    code, _, err = run("demo", "--url", url, "--keep")
    assert code == 1
    assert err.startswith("mentorpay: error:")
    assert "Traceback" not in err


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    """db upgrade applies the migrations to the named database, twice without harm."""
    url = f"sqlite:///{tmp_path / 'up.db'}"
    assert run("db", "upgrade", "--url", url)[0] == 0
    code, out, _ = run("db", "upgrade", "--url", url)
    assert code == 0
    assert "up to date" in out
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM mentorpay_payments")).scalar() == 0
    engine.dispose()


def test_balance_shows_one_or_all_currencies(demo_db: str) -> None:
    """balance prints the mentor's table; --currency narrows it; unknown mentors say so."""
    code, out, _ = run("balance", "bob", "--url", demo_db)
    assert code == 0
    assert "270.00" in out
    assert "GBP" in run("balance", "bob", "--currency", "gbp", "--url", demo_db)[1]
    assert "no balance yet" in run("balance", "nobody", "--url", demo_db)[1]


def test_balance_with_unknown_currency_is_one_line_error(demo_db: str) -> None:
    """An unknown currency is a one-line error with exit code 1."""
    code, out, err = run("balance", "bob", "--currency", "XYZ", "--url", demo_db)
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1


def test_ledger_verify_ok_and_problems(demo_db: str) -> None:
    """ledger verify exits 0 on a clean ledger and 2, listing problems, on a tampered one."""
    code, out, _ = run("ledger", "verify", "--url", demo_db)
    assert code == 0
    assert "ledger OK" in out
    engine = make_engine(demo_db)
    with engine.begin() as conn:
        conn.execute(text("UPDATE mentorpay_mentor_balances SET available = available + 1"))
    engine.dispose()
    code, out, _ = run("ledger", "verify", "--url", demo_db)
    assert code == 2
    assert "problem" in out


def test_events_list_filters_and_json(demo_db: str) -> None:
    """events list shows the inbox, filters by status and can print JSON."""
    code, out, _ = run("events", "list", "--url", demo_db)
    assert code == 0
    assert "checkout.session.completed" in out
    code, out, _ = run("events", "list", "--status", "failed", "--url", demo_db)
    assert "no stored events with status failed" in out
    code, out, _ = run("events", "list", "--json", "--limit", "3", "--url", demo_db)
    assert len(json.loads(out)) == 3


def test_events_replay_by_id_and_failed(demo_db: str) -> None:
    """Replaying a processed event answers already_processed; --failed replays failures."""
    code, out, _ = run("events", "replay", "--id", "evt_demo_cs_42", "--url", demo_db)
    assert code == 0
    assert "already_processed" in out
    engine = make_engine(demo_db)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE mentorpay_webhook_events SET status='failed' WHERE event_id=:e"),
            {"e": "evt_demo_cs_43"},
        )
    engine.dispose()
    code, out, _ = run("events", "replay", "--failed", "--url", demo_db)
    assert code == 0
    assert "replayed 1 failed event(s); 0 still failing" in out


def test_events_replay_unknown_id_is_an_error(demo_db: str) -> None:
    """Replaying an unknown event id is a one-line error, exit code 1."""
    code, _, err = run("events", "replay", "--id", "evt_missing", "--url", demo_db)
    assert code == 1
    assert "evt_missing" in err


def test_payouts_list(demo_db: str) -> None:
    """payouts list shows the demo's paid payout, filters by status and prints JSON."""
    code, out, _ = run("payouts", "list", "--url", demo_db)
    assert code == 0
    assert "paid" in out
    assert "bob" in out
    assert "no payout requests" in run("payouts", "list", "--status", "failed", "--url", demo_db)[1]
    assert json.loads(run("payouts", "list", "--json", "--url", demo_db)[1])[0]["status"] == "paid"


def test_release_due_releases_payments_past_hold(demo_db: str) -> None:
    """release-due with a far-future --now releases the demo's held-back payments."""
    code, out, _ = run("release-due", "--now", "2999-01-01", "--url", demo_db)
    assert code == 0
    assert "released 2 payment(s)" in out
    assert "released 0 payment(s)" in run("release-due", "--url", demo_db)[1]


def test_reconcile_without_stripe_key_says_what_is_missing(demo_db: str) -> None:
    """reconcile needs STRIPE_SECRET_KEY and says so in one line."""
    code, _, err = run("reconcile", "--since", "2026-01-01", "--url", demo_db)
    assert code == 1
    assert "STRIPE_SECRET_KEY" in err


def test_bad_date_is_a_clear_error(demo_db: str) -> None:
    """A malformed --since is reported as such."""
    code, _, err = run("reconcile", "--since", "yesterday", "--url", demo_db)
    assert code == 1
    assert "not an ISO date" in err


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    """A database that cannot be opened gives one error line, not a traceback."""
    code, _, err = run("balance", "x", "--url", "postgresql+psycopg://nobody@127.0.0.1:1/x")
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_console_script_entry_point_runs() -> None:
    """The installed `mentorpay` console script answers --version."""
    result = subprocess.run(
        [sys.executable, "-m", "mentorpay.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("mentorpay ")


def test_payout_operator_commands_follow_the_state_machine(demo_db: str) -> None:
    """request via the API, then approve / mark-paid / cancel from the CLI, errors one line."""
    from mentorpay import MentorPay, MentorpayConfig, Money
    from mentorpay.db import make_engine
    from mentorpay.testing import FakeGateway, InMemoryBookings

    engine = make_engine(demo_db)
    mp = MentorPay(
        MentorpayConfig(webhook_secrets=["w"]),
        engine,
        bookings=InMemoryBookings(),
        gateway=FakeGateway(),
    )
    first = mp.payouts.request("chiyo", Money(1000, "JPY"))
    second = mp.payouts.request("chiyo", Money(500, "JPY"))
    engine.dispose()
    code, out, _ = run("payouts", "approve", str(first.id), "--approver", "ops", "--url", demo_db)
    assert (code, "is approved" in out) == (0, True)
    code, out, _ = run(
        "payouts", "mark-paid", str(first.id), "--reference", "BANK-1", "--url", demo_db
    )
    assert (code, "is paid" in out) == (0, True)
    code, out, _ = run("payouts", "cancel", str(second.id), "--url", demo_db)
    assert (code, "is cancelled" in out) == (0, True)
    code, _, err = run("payouts", "cancel", str(first.id), "--url", demo_db)
    assert code == 1
    assert "cannot become cancelled" in err
    code, _, err = run("payouts", "execute", str(first.id), "--url", demo_db)
    assert code == 1
    assert len(err.strip().splitlines()) == 1
