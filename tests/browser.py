"""A real headless Chromium (Debian's `chromium` and `chromedriver`) driven by Selenium, for the pages' tests.

Debian's packages are installed with apt when missing, as PostgreSQL and Redis are;
nothing is downloaded by Selenium (the driver is given by path). One browser serves
the whole run; each test gets a fresh, empty tab state and the console read since
its start. The browser only ever talks to the gateway on loopback: background
networking, component updates, sync and QUIC are off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import ROOT, Gateway
from tests.key_stores import fresh_code

# Where the pages' screenshots go: .cache/screenshots/ to look at, docs/img/ with `make screenshots`.
SCREENSHOTS = Path(os.environ.get("CLOUDGPT_SCREENSHOTS") or ROOT / ".cache" / "screenshots")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
)
DESKTOP = (1280, 900)


def _install_chromium() -> None:
    """Debian's Chromium and its matching chromedriver, installed when missing."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        subprocess.run([str(ROOT / "scripts" / "apt-install"), "chromium", "chromium-driver"], check=True)


class Browser:
    """The driver, with the waits and reads the page tests share."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver
        self.allowed: list[str] = []  # console errors the running test provokes on purpose

    def open(self, url: str, size: tuple[int, int] = DESKTOP) -> None:
        """`url` in a fresh state: its origin's storage cleared."""
        self.driver.set_window_size(*size)
        parts = urlsplit(url)
        self.driver.get("about:blank")
        self.driver.execute_cdp_cmd(
            "Storage.clearDataForOrigin",
            {"origin": f"{parts.scheme}://{parts.netloc}", "storageTypes": "all"},
        )
        self.driver.get(url)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait(self, condition: Callable[[], Any], timeout: float = 10, what: str = "") -> Any:
        """The first truthy value of `condition()`, polled every 20 ms."""
        try:
            return WebDriverWait(
                self.driver, timeout, poll_frequency=0.02, ignored_exceptions=[StaleElementReferenceException]
            ).until(lambda _: condition())
        except TimeoutException:
            raise AssertionError(f"timed out waiting for {what or condition}") from None

    def text(self, css: str) -> str:
        return self.driver.execute_script("return document.querySelector(arguments[0]).textContent", css)

    def visible(self, css: str, timeout: float = 10) -> WebElement:
        return self.wait(lambda: next((e for e in self.all(css) if e.is_displayed()), None), timeout, css)

    def text_of(self, css: str, expected: str, timeout: float = 10) -> str:
        """Wait until the element's text contains `expected`; its text."""
        return self.wait(
            lambda: (t := self.text(css)) and expected in t and t, timeout, f"{expected!r} in {css}"
        )

    def focused(self) -> WebElement:
        return self.driver.switch_to.active_element

    def console(self) -> list[dict[str, Any]]:
        """The console messages since the last call."""
        return self.driver.get_log("browser")

    def errors(self) -> list[str]:
        """Console errors since the last read, except those the test allowed."""
        return [
            entry["message"]
            for entry in self.console()
            if entry["level"] == "SEVERE" and not any(a in entry["message"] for a in self.allowed)
        ]

    def screenshot(self, name: str) -> None:
        """A full-height screenshot of the page as it is now, saved as `name` in SCREENSHOTS."""
        path = SCREENSHOTS / name
        width, height = self.driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        time.sleep(0.2)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    _install_chromium()
    profile = tempfile.mkdtemp(prefix="cloudgpt-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield Browser(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(chromium: Browser) -> Iterator[Browser]:
    """The shared browser; the test fails if its pages logged a console error it did not allow."""
    chromium.console()  # what earlier tests logged is theirs
    chromium.allowed = []
    yield chromium
    assert chromium.errors() == [], "the page logged console errors"


@pytest.fixture(scope="session")
def pages_gateway(start_session_gateway: Callable[..., Gateway]) -> Gateway:
    """The embedded default as `make dev` runs it (local sign-in), limits out of the tests' way."""
    return start_session_gateway(
        RATE_LIMIT_CHAT_ANONYMOUS="100000",
        RATE_LIMIT_CHAT_AUTHENTICATED="200000",  # tells a key's calls from anonymous ones
        RATE_LIMIT_ACCOUNT="100000",
        UPSTREAM_BACKOFF="0.01",
        UPSTREAM_RETRY_AFTER_CAP="1",
        # Every worker asks the key store: a revoked key is refused at once, whichever answers.
        CLOUDGPT_KEY_CACHE_SECONDS="0",
    )


def signin_link(gateway: Gateway) -> str:
    """A fresh one-use dashboard link for `gateway`, as `make signin` prints it."""
    return f"{gateway.url}/dashboard#code={fresh_code(gateway.env['CLOUDGPT_DATA_DIR'])}"
