"""``release-due`` and ``ledger verify``: progress bars forced with --progress, and --full."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import text

from mentorpay.cli import Output, main
from mentorpay.db import make_engine


def run(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process with pipes (not terminals); return (code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=Output(out, err))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def demo_db(tmp_path: Path) -> str:
    """A database filled by the demo; returns its URL."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert run("demo", "--url", url)[0] == 0
    return url


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Stripe key or database URL leaks in from the environment."""
    for name in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "MENTORPAY_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_release_due_progress_flag_draws_a_bar_on_a_pipe(demo_db: str) -> None:
    """--progress draws the bar on stderr even when it is not a terminal; stdout stays clean."""
    code, out, err = run("release-due", "--now", "2999-01-01", "--progress", "--url", demo_db)
    assert code == 0
    assert out.strip() == "released 2 payment(s)"
    assert "releasing" in err and "2/2" in err


def test_ledger_verify_progress_and_full(demo_db: str) -> None:
    """verify --progress draws its steps; --full catches an old entry the incremental pass skips."""
    code, out, err = run("ledger", "verify", "--progress", "--url", demo_db)
    assert code == 0 and "ledger OK" in out
    assert "verifying" in err and "6/6" in err
    engine = make_engine(demo_db)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE mentorpay_ledger_entries SET amount = amount + 1"
                " WHERE id = (SELECT MIN(id) FROM mentorpay_ledger_entries)"
            )
        )
    engine.dispose()
    code, out, _ = run("ledger", "verify", "--url", demo_db)
    assert code == 0 and "incremental" in out
    code, out, _ = run("ledger", "verify", "--full", "--url", demo_db)
    assert code == 2 and "does not balance" in out
