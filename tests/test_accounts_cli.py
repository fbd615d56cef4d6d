"""``mentorpay accounts list`` / ``accounts show MENTOR``: what account.updated left, per mentor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mentorpay import MentorPay, MentorpayConfig
from mentorpay.db import make_engine
from mentorpay.testing import FakeGateway, InMemoryBookings, encode_event, make_event, sign_payload
from tests.test_cli_operator import run

SECRET = "whsec_cli_accounts"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Stripe key or database URL leaks in from the environment."""
    for name in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "MENTORPAY_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A database where mentor 3 is onboarded and enabled and mentor 5 is mid-onboarding."""
    url = f"sqlite:///{tmp_path / 'accounts.db'}"
    gateway = FakeGateway()
    engine = make_engine(url)
    mp = MentorPay(
        MentorpayConfig(webhook_secrets=[SECRET]),
        engine,
        bookings=InMemoryBookings(),
        gateway=gateway,
    )
    mp.upgrade_schema()
    pages = {"refresh_url": "https://app.test/r", "return_url": "https://app.test/ok"}
    acct = mp.accounts.onboard("3", **pages).account_id
    mp.accounts.onboard("5", **pages)
    obj = gateway.complete_onboarding(acct)
    body = encode_event(make_event("account.updated", obj, account=acct))
    assert mp.webhooks.process(body, sign_payload(body, SECRET)).status == "success"
    engine.dispose()
    return url


def test_accounts_list_shows_each_mentor_state(url: str) -> None:
    """The table lists both mentors with their state and whether charges/payouts are on."""
    code, out, err = run("accounts", "list", "--url", url)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["mentor", "account", "state", "charges", "payouts", "due"]
    three = next(line.split() for line in lines if line.startswith("3 "))
    five = next(line.split() for line in lines if line.startswith("5 "))
    assert three[2:] == ["enabled", "yes", "yes", "0"]
    assert five[2:5] == ["onboarding", "no", "no"] and int(five[5]) > 0


def test_accounts_list_json(url: str) -> None:
    """--json prints each account's status as JSON."""
    code, out, _ = run("accounts", "list", "--json", "--url", url)
    assert code == 0
    data = json.loads(out)
    assert [(a["mentor_id"], a["state"]) for a in data] == [("3", "enabled"), ("5", "onboarding")]


def test_accounts_show_lists_what_is_due(url: str) -> None:
    """show names the account, its flags and every requirement currently due."""
    code, out, err = run("accounts", "show", "5", "--url", url)
    assert code == 0, err
    assert "state: onboarding" in out and "payouts enabled: no" in out
    assert "external_account" in out
    code, out, _ = run("accounts", "show", "3", "--json", "--url", url)
    assert json.loads(out)["payouts_enabled"] is True


def test_accounts_show_unknown_mentor_is_an_error(url: str) -> None:
    """A mentor never onboarded: one readable line and a non-zero exit, no traceback."""
    code, out, err = run("accounts", "show", "9", "--url", url)
    assert code != 0 and out == ""
    assert "mentor 9 has no Stripe account" in err and "Traceback" not in err
