"""The dashboard's activity and usage sections in a real browser: the table, its filters and pages,
request ids to copy, CSV downloads, and the usage section read as a new user would, at 375 px too."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.browser import Browser
from tests.conftest import Gateway
from tests.test_pages_dashboard import create_key, row_of, session_token, sign_in

PHONE = (375, 812)


@pytest.fixture(scope="module")
def activity_gateway(start_module_gateway: Callable[..., Gateway]) -> Iterator[Gateway]:
    """One operator for the module, with 31 requests of two keys; a test that adds any says so."""
    gateway = start_module_gateway(
        RATE_LIMIT_CHAT_AUTHENTICATED="100000", RATE_LIMIT_ACCOUNT="100000", UPSTREAM_BACKOFF="0.01"
    )
    yield gateway


def chat(gateway: Gateway, key: str, content: str = "hi", model: str = "openai") -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/api/chat",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": content}]},
        timeout=30,
    )


def activity_count(gateway: Gateway, token: str) -> int:
    answer = httpx.get(f"{gateway.url}/api/activity?format=csv", headers={"Authorization": f"Bearer {token}"})
    return len(answer.text.splitlines()) - 1


@pytest.fixture(scope="module")
def keys(activity_gateway: Gateway, chromium: Browser) -> dict[str, str]:
    """Two keys, "alpha" (29 requests, one failed) and "beta" (2), all recorded."""
    sign_in(chromium, activity_gateway)
    token = session_token(chromium)
    made = {}
    for name in ("alpha", "beta"):
        created = httpx.post(
            f"{activity_gateway.url}/api/keys",
            headers={"Authorization": f"Bearer {token}"},
            json={"name": name},
        )
        assert created.status_code == 201, created.text
        made[name] = created.json()["key"]
    for n in range(28):
        assert chat(activity_gateway, made["alpha"], f"hello {n}").status_code == 200
    assert chat(activity_gateway, made["alpha"], "status:500", model="mistral").status_code == 502
    for _ in range(2):
        assert chat(activity_gateway, made["beta"]).status_code == 200
    deadline = time.monotonic() + 10
    while activity_count(activity_gateway, token) < 31 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert activity_count(activity_gateway, token) == 31
    return made


def rows(browser: Browser) -> list[str]:
    return [row.text for row in browser.all("#activity-table tbody tr")]


def shown(browser: Browser, count: int) -> list[str]:
    return browser.wait(lambda: len(r := rows(browser)) == count and r, what=f"{count} activity rows")


def test_activity_lists_requests_newest_first_with_filters_older_pages_and_ids_to_copy(
    browser: Browser, activity_gateway: Gateway, keys: dict[str, str]
) -> None:
    sign_in(browser, activity_gateway)
    browser.driver.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": activity_gateway.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    first = shown(browser, 25)
    assert "beta" in first[0] and "pollinations" in first[0] and "9 + 3" in first[0]
    assert browser.find("#activity-more").is_displayed()
    browser.find("#activity-more").click()
    everything = shown(browser, 31)
    assert not browser.find("#activity-more").is_displayed()
    assert "31 requests shown." in browser.text("#activity-note")
    failed = [row for row in everything if " 502 " in row]
    assert (
        len(failed) == 1 and "upstream_error" in failed[0] and "mistral" in failed[0] and "alpha" in failed[0]
    )

    Select(browser.find("#activity-key")).select_by_visible_text(next(
        option.text for option in browser.all("#activity-key option") if option.text.startswith("beta")
    ))  # fmt: skip
    assert all("beta" in row for row in shown(browser, 2))
    Select(browser.find("#activity-key")).select_by_value("")
    Select(browser.find("#activity-status")).select_by_value("error")
    (only,) = shown(browser, 1)
    assert "502 upstream_error" in only
    Select(browser.find("#activity-model")).select_by_value("openai")
    browser.text_of("#activity-note", "No requests match these filters.")
    assert not browser.find("#activity-table").is_displayed()
    Select(browser.find("#activity-status")).select_by_value("ok")
    assert all("openai" in row for row in shown(browser, 25))

    row = browser.all("#activity-table tbody tr")[0]
    request_id = row.get_attribute("data-id")
    button = row.find_element("css selector", "button")
    assert button.get_attribute("aria-label") == f"Copy request id {request_id}"
    button.send_keys(Keys.ENTER)  # a keyboard reaches it
    browser.wait(lambda: button.text == "Copied", what="the copy to be said")
    assert (
        browser.driver.execute_async_script("navigator.clipboard.readText().then(arguments[0])") == request_id
    )


def downloaded(directory: Path, name: str) -> str:
    path = directory / name
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.read_text()


def test_csv_downloads_of_activity_and_usage(
    browser: Browser, activity_gateway: Gateway, keys: dict[str, str], tmp_path: Path
) -> None:
    sign_in(browser, activity_gateway)
    browser.driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    shown(browser, 25)
    Select(browser.find("#activity-status")).select_by_value("error")
    shown(browser, 1)
    browser.find("#activity-csv").click()
    failed = list(csv.DictReader(io.StringIO(downloaded(tmp_path, "cloudgpt-activity.csv"))))
    assert [(row["model"], row["status"], row["error"]) for row in failed] == [
        ("mistral", "502", "upstream_error")
    ]
    browser.find("#usage-csv").click()
    usage = list(csv.DictReader(io.StringIO(downloaded(tmp_path, "cloudgpt-usage.csv"))))
    assert sum(int(row["requests"]) for row in usage) == 31
    assert {row["model"] for row in usage} == {"openai", "mistral"}


def test_usage_totals_revoked_names_today_and_each_days_numbers_without_a_mouse(
    browser: Browser, activity_gateway: Gateway, keys: dict[str, str]
) -> None:
    sign_in(browser, activity_gateway)
    gone = create_key(browser, "soon revoked")
    assert chat(activity_gateway, gone).status_code == 200
    token = session_token(browser)
    deadline = time.monotonic() + 10
    while activity_count(activity_gateway, token) < 32 and time.monotonic() < deadline:
        time.sleep(0.05)
    revoke = row_of(browser, gone[:9]).find_element("css selector", "button.danger")
    revoke.click()
    revoke.click()
    browser.text_of("#keys-status", "stops working on every server within a second")
    browser.driver.refresh()
    browser.visible("#signed-in")

    browser.text_of("#usage-totals", "Requests")
    totals = browser.find("#usage-totals").text
    assert "Requests\n32" in totals and "Errors\n1" in totals
    browser.text_of("#usage-table", "soon revoked (revoked)")  # its row keeps the name it had
    assert "key_" not in browser.text("#usage-table")
    shown(browser, 25)
    assert "soon revoked (revoked)" in rows(browser)[0]

    today = time.strftime("%b %-d", time.gmtime())
    labels = browser.text("#usage-chart .axis-labels")
    assert labels.endswith(f"today (UTC), {today}"), labels

    summary = browser.find("#usage-body summary")  # the per-day numbers, reached with the keyboard alone
    assert summary.get_property("tabIndex") == 0 and "Requests per day" in summary.text
    summary.send_keys(Keys.ENTER)
    day = browser.wait(
        lambda: next((r for r in browser.all("#usage-days tbody tr") if r.is_displayed()), None)
    )
    cells = [cell.text for cell in day.find_elements("css selector", "th, td")]
    assert cells == [f"today (UTC), {today}", "32", "0", "0", "32"]


def sticking_out(browser: Browser) -> list[str]:
    """Every element whose box reaches past the window's right edge, or a box that scrolls sideways.

    Code is the exception: a snippet keeps its lines and scrolls inside its own box, as code does.
    """
    return browser.driver.execute_script("""
        const width = document.documentElement.clientWidth, out = [];
        for (const node of document.querySelectorAll("body *")) {
          if (node.closest("pre")) continue;
          const box = node.getBoundingClientRect();
          if (box.width && box.right > width + 0.5) out.push(`${node.tagName}#${node.id}.${node.className} ${box.right}`);
          if (node.scrollWidth > node.clientWidth + 1 && getComputedStyle(node).overflowX === "auto") out.push(`scrolls: ${node.tagName}.${node.className}`);
        }
        return out;
    """)


def test_at_375_px_nothing_sticks_out(
    browser: Browser, activity_gateway: Gateway, keys: dict[str, str]
) -> None:
    sign_in(browser, activity_gateway, size=PHONE)
    shown(browser, 25)
    browser.text_of("#usage-table", "alpha")
    browser.find("#usage-body summary").click()
    browser.wait(lambda: browser.find("#usage-days").is_displayed())
    out = sticking_out(browser)
    assert out == [], "\n".join(out)
    revoke = row_of(browser, "alpha").find_element("css selector", "button.danger")
    box = revoke.rect
    assert revoke.is_displayed() and box["x"] + box["width"] <= 375
    browser.screenshot("dashboard-375.png")
