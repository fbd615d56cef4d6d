"""``mentorpay plans list|show|expire`` on the demo's database (a monthly plan renewed once and
a package, mentee-7 with mentor dana), and the demo's plans story itself."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mentorpay.cli import Output, main


def run(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=Output(out, err))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Stripe key or database URL leaks in from the environment."""
    for name in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "MENTORPAY_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database filled by the demo (run once for this module); returns its URL."""
    url = f"sqlite:///{tmp_path_factory.mktemp('plans') / 'demo.db'}"
    code, _, err = run("demo", "--url", url)
    assert code == 0, err
    return url


def test_the_demo_sells_plans_renews_and_verifies(tmp_path: Path) -> None:
    """The demo's plans part: credits spent, a renewal, dana's plan earnings, verify OK."""
    code, out, err = run("demo", "--url", f"sqlite:///{tmp_path / 'd.db'}")
    assert code == 0, err
    assert "18.00 GBP released to dana" in out and "36.00 GBP released to dana" in out
    assert "1 period's unused credits lapse" in out
    assert any(line.split()[:3] == ["dana", "GBP", "324.00"] for line in out.splitlines())
    assert out.rstrip().splitlines()[-1].startswith("Ledger verify: OK")


def test_plans_list_shows_every_purchase(demo_db: str) -> None:
    """`plans list` prints both purchases with status, periods and credits."""
    code, out, err = run("plans", "list", "--url", demo_db)
    assert code == 0, err
    rows = {line.split()[2]: line.split() for line in out.splitlines()[2:]}
    assert rows["dana-monthly"][-3:] == ["active", "2", "4"]
    assert rows["dana-pack5"][-3:] == ["paid", "1", "4"]


def test_plans_list_filters_by_mentee_and_mentor(demo_db: str) -> None:
    """`--mentee` and `--mentor` narrow the list; nobody's plans print a clear line."""
    assert len(json.loads(run("plans", "list", "--url", demo_db, "--mentor", "dana",
                              "--json")[1])) == 2  # fmt: skip
    assert len(json.loads(run("plans", "list", "--url", demo_db, "--mentee", "mentee-7",
                              "--json")[1])) == 2  # fmt: skip
    code, out, _ = run("plans", "list", "--url", demo_db, "--mentor", "alice")
    assert (code, out.strip()) == (0, "no plan purchases")


def test_plans_show_by_purchase_or_subscription_id(demo_db: str) -> None:
    """`plans show` takes mentorpay's id or Stripe's subscription id; JSON has the periods."""
    listed = json.loads(run("plans", "list", "--url", demo_db, "--json")[1])
    monthly = next(p for p in listed if p["plan_id"] == "dana-monthly")
    code, out, err = run("plans", "show", monthly["id"], "--url", demo_db)
    assert code == 0, err
    assert "credits left: 4" in out and monthly["subscription_id"] in out
    assert "expired" in out and "72.00 GBP" in out
    code, out, _ = run("plans", "show", monthly["subscription_id"], "--url", demo_db, "--json")
    shown = json.loads(out)
    assert shown["id"] == monthly["id"] and len(shown["periods"]) == 2
    assert [p["status"] for p in shown["periods"]].count("expired") == 1


def test_plans_show_an_unknown_id_is_a_clean_error(demo_db: str) -> None:
    """An unknown purchase: exit 1, one line on stderr, no traceback."""
    code, _, err = run("plans", "show", "nope", "--url", demo_db)
    assert code == 1 and err.startswith("mentorpay: error:") and "Traceback" not in err


def test_plans_expire_lapses_what_is_due(tmp_path: Path) -> None:
    """`plans expire` lapses nothing now, then the renewed period and the package later."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    assert run("demo", "--url", url)[0] == 0
    code, out, err = run("plans", "expire", "--url", url)
    assert (code, out.strip()) == (0, "0 plan period(s) expired"), err
    later = (datetime.now(UTC) + timedelta(days=200)).isoformat()
    code, out, _ = run("plans", "expire", "--url", url, "--now", later, "--json")
    assert (code, json.loads(out)) == (0, {"expired_periods": 2})
    shown = json.loads(run("plans", "list", "--url", url, "--json")[1])
    assert [p["credits_left"] for p in shown] == [0, 0]
    code, out, _ = run("balance", "dana", "--url", url)
    assert code == 0 and "324.00" in out
