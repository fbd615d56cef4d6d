"""A mentee's click-through in headless Chromium: book and pay, open the booking's cancellation
page, press Cancel, and see the refund the policy gave (and the mentor's balance after the
refund webhook), against the examples served for real. A screenshot of the result is saved
under the test's tmp dir (CI keeps it as an artifact).

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
def test_mentee_cancels_and_sees_the_refund(browser: Any, tmp_path: Path, kind: str) -> None:
    """Cancelling 30h ahead refunds 25.00 GBP from the mentor's share; the page shows it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_SECONDS)
    with serve_example(kind, tmp_path) as base:
        browser.get(base + "/")
        browser.find_element(By.ID, "book").click()
        wait.until(ec.element_to_be_clickable((By.ID, "pay"))).click()
        wait.until(ec.presence_of_element_located((By.ID, "balance")))
        booking_id = browser.find_element(By.ID, "booking").text

        browser.get(f"{base}/bookings/{booking_id}/cancel")
        assert browser.find_element(By.ID, "booking").text == booking_id
        assert "keeps its commission" in browser.find_element(By.ID, "policy").text
        browser.find_element(By.ID, "cancel").click()
        wait.until(ec.visibility_of_element_located((By.ID, "result")))
        assert browser.find_element(By.ID, "error").text == ""
        assert browser.find_element(By.ID, "refund").text == "25.00 GBP"
        assert "platform keeps its fee" in browser.find_element(By.ID, "rule").text
        # 45.00 earned, 25.00 refunded out of the mentor's share (the fee is kept).
        assert browser.find_element(By.ID, "mentor-pending").text == "20.00 GBP"
        shot = tmp_path / f"cancel-{kind}.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 0

        # Reloading shows the cancellation as done; cancelling again refunds nothing more.
        browser.get(f"{base}/bookings/{booking_id}/cancel")
        assert "Already cancelled by the mentee" in browser.find_element(By.ID, "status").text
