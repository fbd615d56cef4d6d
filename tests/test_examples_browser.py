"""A person's click-through in headless Chromium: Book and pay -> offline checkout -> Pay ->
the mentor's balance on the success page, against the examples served for real.

Uses Debian's ``chromium`` and ``chromium-driver`` packages (/usr/bin/chromium,
/usr/bin/chromedriver); nothing downloads a browser. Skipped where they are missing, unless
``MENTORPAY_REQUIRE_BROWSER=1`` (CI) turns the skip into a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.test_examples_http import serve_example

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REQUIRE_ENV = "MENTORPAY_REQUIRE_BROWSER"
WAIT_SECONDS = 20


def _unavailable(reason: str) -> NoReturn:
    message = f"{reason}; install them with: apt-get install -y chromium chromium-driver"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium through the system chromedriver, offline-safe flags, fresh profile."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        _unavailable(f"{' and '.join(missing)} not found")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install selenium)")
    options = Options()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "1")  # the driver path is explicit; selenium-manager stays idle
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.parametrize("kind", ["fastapi", "flask"])
def test_click_through_book_pay_and_see_the_balance(
    browser: Any, tmp_path: Path, kind: str
) -> None:
    """Book and pay, press Pay on the local checkout, and see 45.00 GBP pending for mentor 3."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_SECONDS)
    with serve_example(kind, tmp_path) as base:
        browser.get(base + "/")
        assert "Offline mode" in browser.find_element(By.ID, "mode").text
        browser.find_element(By.ID, "book").click()

        pay = wait.until(ec.element_to_be_clickable((By.ID, "pay")))
        assert browser.current_url.startswith(f"{base}/fake-checkout/cs_")
        assert browser.find_element(By.ID, "amount").text == "50.00 GBP"
        assert browser.find_element(By.ID, "booking").text.startswith("demo-")
        pay.click()

        wait.until(ec.presence_of_element_located((By.ID, "balance")))
        assert browser.current_url.startswith(f"{base}/success?booking_id=demo-")
        row = browser.find_element(By.ID, "balance-GBP")
        assert row.find_element(By.CLASS_NAME, "pending").text == "45.00 GBP"
        assert row.find_element(By.CLASS_NAME, "total").text == "45.00 GBP"
        assert browser.find_element(By.ID, "booking").text.startswith("demo-")
