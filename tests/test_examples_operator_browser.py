"""The operator's and the mentor's pages in headless Chromium, against both examples served
for real: a mentee pays, the offline clock passes the hold period, the mentor requests a
payout with the form, and the operator sees the charts and approves then executes it. A
screenshot of the dashboard is saved under the test's tmp dir (CI keeps it as an artifact).

Uses the harness of ``tests/test_examples_browser.py`` (Debian's chromium and chromedriver).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.test_examples_browser import WAIT_SECONDS, browser  # noqa: F401 - the fixture
from tests.test_examples_http import serve_example


@pytest.mark.parametrize("kind", ["fastapi", "flask"])
def test_operator_approves_a_mentors_payout_and_sees_the_charts(
    browser: Any,  # noqa: F811 - the imported fixture
    tmp_path: Path,
    kind: str,
) -> None:
    """Pay, pass the hold, request 20.00 as mentor 3, approve and execute it as ops."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, WAIT_SECONDS)
    with serve_example(kind, tmp_path) as base:
        browser.get(base + "/")
        browser.find_element(By.ID, "book").click()
        wait.until(ec.element_to_be_clickable((By.ID, "pay"))).click()
        wait.until(ec.presence_of_element_located((By.ID, "balance")))

        # The mentor: the hold period passes on the offline clock, then a payout request.
        browser.get(base + "/demo/sign-in?user=3&next=/mentor")
        advance = wait.until(ec.element_to_be_clickable((By.ID, "advance-14")))
        advance.click()
        wait.until(ec.staleness_of(advance))  # the page before it also shows the balance row
        row = wait.until(ec.presence_of_element_located((By.ID, "balance-GBP")))
        assert row.find_element(By.CLASS_NAME, "available").text == "45.00 GBP"
        assert browser.find_element(By.ID, "chart-earned-GBP").is_displayed()
        browser.find_element(By.ID, "payout-amount").send_keys("20.00")
        Select(browser.find_element(By.ID, "payout-currency")).select_by_value("GBP")
        request = browser.find_element(By.ID, "request-payout")
        request.click()
        wait.until(ec.staleness_of(request))
        requested = wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#payouts tr[id^='payout-']"))
        )
        payout_id = requested.get_attribute("id").removeprefix("payout-")
        assert requested.find_element(By.CLASS_NAME, "status").text == "requested"

        # The operator: charts, then approve and execute from the queue.
        browser.get(base + "/demo/sign-in?user=ops&next=/operator")
        approve = wait.until(ec.element_to_be_clickable((By.ID, f"approve-{payout_id}")))
        approve.click()
        wait.until(ec.staleness_of(approve))
        execute = wait.until(ec.element_to_be_clickable((By.ID, f"execute-{payout_id}")))
        row = browser.find_element(By.ID, f"payout-{payout_id}")
        assert row.find_element(By.CLASS_NAME, "status").text == "approved"
        assert row.find_element(By.CLASS_NAME, "amount").text == "20.00 GBP"
        for chart in ("chart-volume-GBP", "chart-losses-GBP"):
            svg = browser.find_element(By.ID, chart)
            assert svg.is_displayed() and svg.size["width"] > 300
        assert "volume 50.00 GBP" in browser.find_element(By.ID, "totals-GBP").text
        browser.set_window_size(1280, 1800)
        shot = tmp_path / f"operator-dashboard-{kind}.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        execute.click()
        wait.until(ec.invisibility_of_element_located((By.ID, f"execute-{payout_id}")))
        assert browser.find_elements(By.ID, f"payout-{payout_id}") == []  # left the queue

        # A mentor on the operator page is refused.
        browser.get(base + "/demo/sign-in?user=3&next=/operator")
        assert "only operators" in browser.page_source
