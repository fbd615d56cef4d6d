"""A mentor's click-through in headless Chromium, against the examples served for real: earn
from a paid booking, set up payouts on the offline Connect page, come back enabled, request a
payout that is sent to the onboarded account (transfer payout mode). A screenshot of the final
page is saved in the test's tmp dir (a CI artifact).

Same harness as ``tests/test_examples_browser.py`` (Debian's chromium and chromedriver; skipped
where missing unless ``MENTORPAY_REQUIRE_BROWSER=1``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from mentorpay.db import make_engine
from mentorpay.ledger import LedgerService
from mentorpay.models import mentor_accounts_table, payouts_table
from tests.test_examples_browser import WAIT_SECONDS, browser
from tests.test_examples_http import example_database_url, serve_example

__all__ = ["browser"]  # the fixture, shared with the checkout click-through


@contextmanager
def serve(kind: str, tmp_path: Path, **extra_env: str) -> Iterator[tuple[str, str]]:
    """One example in offline mode with ``extra_env``; yields its base URL and database URL."""
    name = f"{kind}-accounts"
    with serve_example(kind, tmp_path, name=name, **extra_env) as base:
        yield base, example_database_url(kind, tmp_path, name)


@pytest.mark.parametrize("kind", ["fastapi", "flask"])
def test_mentor_onboards_offline_and_requests_a_payout(
    browser: Any, tmp_path: Path, kind: str
) -> None:
    """Pay -> released -> Set up payouts -> Complete onboarding -> enabled -> Request payout."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_SECONDS)
    with serve(kind, tmp_path, MENTORPAY_PAYOUT_MODE="stripe_transfer") as (base, db_url):
        # The mentee books and pays (as in the checkout click-through)...
        browser.get(base + "/")
        browser.find_element(By.ID, "book").click()
        wait.until(ec.element_to_be_clickable((By.ID, "pay"))).click()
        wait.until(ec.presence_of_element_located((By.ID, "balance")))
        booking_id = parse_qs(urlsplit(browser.current_url).query)["booking_id"][0]
        # ...and the host marks the session as taken place: the money becomes available.
        engine = make_engine(db_url)
        try:
            assert LedgerService(engine).release(booking_id)

            # The mentor sets up payouts on Stripe's (offline) hosted onboarding.
            browser.get(base + "/mentor/account")
            assert browser.find_element(By.ID, "account-state").text == "not set up"
            assert browser.find_element(By.ID, "available-GBP").text == "45.00 GBP"
            browser.find_element(By.ID, "onboard").click()
            complete = wait.until(ec.element_to_be_clickable((By.ID, "complete")))
            assert browser.current_url.startswith(f"{base}/fake-connect/acct_")
            assert "external_account" in browser.find_element(By.ID, "due").text
            account_id = browser.find_element(By.ID, "account").text
            complete.click()

            # Back on the mentor's page: enabled by the signed account.updated.
            wait.until(ec.text_to_be_present_in_element((By.ID, "account-state"), "enabled"))
            assert browser.current_url == f"{base}/mentor/account"
            amount = browser.find_element(By.ID, "amount")
            amount.clear()
            amount.send_keys("40.00")
            browser.find_element(By.ID, "request-payout").click()
            wait.until(ec.text_to_be_present_in_element((By.ID, "payout-status"), "requested"))
            browser.save_screenshot(str(tmp_path / f"mentor-onboarding-{kind}.png"))

            with engine.connect() as conn:
                account = conn.execute(mentor_accounts_table.select()).one()
                payout = conn.execute(payouts_table.select()).one()
            assert (account.account_id, account.payouts_enabled) == (account_id, True)
            assert (payout.mentor_id, payout.amount, payout.status) == ("3", 4000, "requested")
            assert payout.destination == account_id
        finally:
            engine.dispose()
        assert (tmp_path / f"mentor-onboarding-{kind}.png").stat().st_size > 0
