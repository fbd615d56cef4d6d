"""A mentee buys the monthly plan in headless Chromium: sign in, press Buy on the plans page,
pay on the offline checkout page, see the plan's 4 credits back on the plans page, then book a
session with one of them (3 left), against the examples served for real. A screenshot of the
result is saved under the test's tmp dir.

Same browser setup as tests/test_examples_browser.py (Debian's chromium + chromium-driver;
``MENTORPAY_REQUIRE_BROWSER=1`` turns a missing browser into a failure).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import test_examples_browser as shared
from tests.test_examples_http import serve_example

#: The module-scoped headless Chromium fixture, shared with the checkout click-through.
browser = shared.browser
WAIT_SECONDS = shared.WAIT_SECONDS


@pytest.mark.parametrize("kind", ["fastapi", "flask"])
def test_mentee_buys_the_monthly_plan_and_spends_a_credit(
    browser: Any, tmp_path: Path, kind: str
) -> None:
    """Buy the monthly plan offline: 4 credits on the plans page; booking a session leaves 3."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_SECONDS)
    with serve_example(kind, tmp_path) as base:
        browser.delete_all_cookies()
        browser.get(f"{base}/demo/sign-in?user=7&next=/plans")
        assert browser.find_element(By.ID, "user").text == "7"
        browser.find_element(By.ID, "buy-monthly-3").click()

        pay = wait.until(ec.element_to_be_clickable((By.ID, "pay")))
        assert browser.current_url.startswith(f"{base}/fake-checkout/cs_")
        assert "Monthly mentoring with mentor 3" in browser.find_element(By.ID, "plan").text
        assert browser.find_element(By.ID, "plan-sessions").text == "4"
        assert browser.find_element(By.ID, "amount").text == "80.00 GBP per month"
        assert not browser.find_elements(By.ID, "pay-card_declined")
        pay.click()

        row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "tr[id^='purchase-']")))
        assert browser.current_url == f"{base}/plans"
        assert row.find_element(By.CLASS_NAME, "credits").text == "4"
        assert row.find_element(By.CLASS_NAME, "status").text == "active"
        purchase_id = row.get_attribute("id").removeprefix("purchase-")

        browser.find_element(By.ID, f"book-{purchase_id}").click()
        wait.until(
            ec.text_to_be_present_in_element(
                (By.CSS_SELECTOR, f"#purchase-{purchase_id} .credits"), "3"
            )
        )
        shot = tmp_path / f"plans-{kind}.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 0
