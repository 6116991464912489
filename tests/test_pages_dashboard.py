"""The dashboard in a real browser on the embedded default: the printed sign-in link, keys from creation to revocation."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
from selenium.webdriver.common.keys import Keys

from tests.browser import Browser, signin_link
from tests.conftest import Gateway

XSS = "<img src=x onerror=\"document.title='owned'\">"


def sign_in(browser: Browser, gateway: Gateway, **size: int) -> None:
    """Open the link `make signin` prints, as the operator would."""
    browser.open(signin_link(gateway), **size)
    browser.visible("#signed-in")


def create_key(browser: Browser, name: str) -> str:
    field = browser.find("#key-name")
    field.clear()
    field.send_keys(name, Keys.ENTER)  # Enter submits
    browser.visible("#new-key")
    return browser.wait(lambda: browser.text("#new-key-value"), what="the new key")


def row_of(browser: Browser, key_prefix: str):
    return browser.wait(
        lambda: next((r for r in browser.all("#keys tbody tr") if key_prefix in r.text), None),
        what=f"the row of {key_prefix}",
    )


def session_token(browser: Browser) -> str:
    """The local session's access token, as the pages keep it for every tab of the origin."""
    return browser.driver.execute_script(
        "return JSON.parse(localStorage.getItem('cloudgpt.local-session')).token"
    )


def chat_with(gateway: Gateway, key: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/api/chat",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "openai", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def test_the_printed_link_signs_in_once_and_leaves_the_address_bar(
    browser: Browser, pages_gateway: Gateway
) -> None:
    link = signin_link(pages_gateway)
    assert "#code=" in link
    browser.open(link)
    browser.visible("#signed-in")
    assert browser.text("#who") == "the local operator"
    assert "code" not in browser.driver.current_url  # gone from the address bar and the history entry
    assert link.split("#code=")[1] not in browser.driver.execute_script("return JSON.stringify(localStorage)")
    browser.find("#sign-out").click()
    browser.visible("#local-signin")

    browser.allowed.append("status of 401")
    browser.open(link)  # a second use of the same link
    message = browser.text_of("#status", "already used")
    assert "`" not in message  # plain words
    assert browser.find("#status").get_attribute("class") == "status error", message
    assert not browser.find("#signed-in").is_displayed()


def test_a_link_pasted_into_the_open_tab_signs_in(browser: Browser, pages_gateway: Gateway) -> None:
    browser.open(f"{pages_gateway.url}/dashboard")
    browser.visible("#local-signin")
    browser.driver.get(signin_link(pages_gateway))  # only the fragment changes: no reload
    browser.visible("#signed-in")
    assert "code" not in browser.driver.current_url


def test_a_used_link_in_a_signed_in_tab_says_so_and_keeps_the_session(
    browser: Browser, pages_gateway: Gateway
) -> None:
    link = signin_link(pages_gateway)
    browser.open(link)
    browser.visible("#signed-in")
    token = session_token(browser)
    browser.allowed.append("status of 401")
    browser.driver.get(link)  # the same link again, pasted into the signed-in tab
    message = browser.text_of("#status", "already used")
    assert message == "That sign-in link was already used or has expired. You are still signed in."
    assert browser.find("#signed-in").is_displayed() and session_token(browser) == token
    assert chat_with(pages_gateway, token).status_code == 200


def test_the_session_is_shared_by_tabs_and_signing_out_ends_it_on_the_server(
    browser: Browser, pages_gateway: Gateway
) -> None:
    sign_in(browser, pages_gateway)
    token = session_token(browser)
    first = browser.driver.current_window_handle
    browser.driver.switch_to.new_window("tab")
    try:
        browser.driver.get(f"{pages_gateway.url}/dashboard")  # a new tab is signed in too
        browser.visible("#signed-in")
        browser.find("#sign-out").click()
        browser.visible("#local-signin")
        assert chat_with(pages_gateway, token).status_code == 401  # the token itself is refused
        keys = httpx.get(f"{pages_gateway.url}/api/keys", headers={"Authorization": f"Bearer {token}"})
        assert keys.status_code == 401 and keys.json()["error"]["code"] == "invalid_token"
    finally:
        browser.driver.close()
        browser.driver.switch_to.window(first)
    browser.visible("#local-signin")  # the first tab saw the sign-out


def run_snippet(language: str, code: str, **env: str) -> str:
    """Run a quick-connect snippet as a person would after copying it; its output."""
    command = {"curl": ["bash", "-c", code], "Python": [sys.executable, "-c", code]}[language]
    done = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_snippets_run_as_copied_with_the_new_key_then_from_the_environment(
    browser: Browser, pages_gateway: Gateway
) -> None:
    sign_in(browser, pages_gateway)
    key = create_key(browser, "snippets")
    environment = {"CLOUDGPT_API_KEY": "", "OPENAI_API_KEY": ""}
    curl = browser.text_of("#snippet", key)  # the new key is on screen: the snippet holds it
    assert "echo: Hello!" in run_snippet("curl", curl, **environment)
    browser.find("#snippet-tabs button[value=Python]").click()
    python = browser.text_of("#snippet", key)
    assert "echo: Hello!" in run_snippet("Python", python, **environment)

    browser.find("#hide-key").click()  # "Done": the key leaves the screen, and the snippets
    python = browser.text_of("#snippet", "CLOUDGPT_API_KEY")
    assert key not in python and key not in browser.find("body").text
    assert "export CLOUDGPT_API_KEY=" in browser.text("#snippet-note")
    assert "echo: Hello!" in run_snippet("Python", python, CLOUDGPT_API_KEY=key)
    browser.find("#snippet-tabs button[value=curl]").click()
    curl = browser.text_of("#snippet", "$CLOUDGPT_API_KEY")
    assert "echo: Hello!" in run_snippet("curl", curl, CLOUDGPT_API_KEY=key)


def test_a_key_is_shown_once_copied_listed_by_prefix_works_and_stops_when_revoked(
    browser: Browser, pages_gateway: Gateway
) -> None:
    sign_in(browser, pages_gateway)
    origin = pages_gateway.url
    browser.driver.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    key = create_key(browser, "Production app")
    assert key.startswith("cgpt_")
    assert "will not be shown again" in browser.text("#new-key")
    browser.find("#copy-key").click()
    browser.text_of("#copy-key", "Copied")
    clipboard = browser.driver.execute_async_script(
        "navigator.clipboard.readText().then(arguments[arguments.length - 1])"
    )
    assert clipboard == key

    row = row_of(browser, key[:9])
    assert "Production app" in row.text and f"{key[:9]}..." in row.text
    assert key not in browser.find("#keys").text  # the list shows the prefix only
    assert key in browser.text("#snippet")  # quick connect holds the new key while it is shown
    assert browser.text("#base-url") == f"{origin}/v1"

    assert chat_with(pages_gateway, key).status_code == 200

    browser.open(f"{origin}/playground?model=openai")  # the playground with this key
    browser.wait(lambda: browser.find("#model").is_enabled())
    browser.find("#apikey").send_keys(key)
    browser.find("#prompt").send_keys("hello", Keys.ENTER)
    browser.text_of("#status", "Done.")
    assert browser.text("#limits").startswith("Limit 200000/min")  # the authenticated budget

    sign_in(browser, pages_gateway)
    browser.wait(lambda: browser.all("#new-key.hidden"))
    assert browser.text("#new-key-value") == ""
    row = row_of(browser, key[:9])
    assert key not in browser.find("body").text  # never shown again

    revoke = row.find_element("css selector", "button.danger")
    revoke.click()
    browser.text_of("#keys-status", "Confirm or cancel")
    assert chat_with(pages_gateway, key).status_code == 200  # nothing happens before the confirmation
    revoke.click()
    browser.text_of("#keys-status", "stops working on every server within a second")
    browser.wait(lambda: key[:9] not in browser.find("#keys").text, what="the row to go")
    assert chat_with(pages_gateway, key).status_code == 401


def test_a_key_name_with_markup_is_shown_as_text(browser: Browser, pages_gateway: Gateway) -> None:
    sign_in(browser, pages_gateway)
    key = create_key(browser, XSS)
    row = row_of(browser, key[:9])
    assert row.find_element("css selector", ".key-name").text == XSS
    assert browser.all("#keys img") == []
    assert browser.driver.title != "owned"


def test_dashboard_keyboard_enter_creates_and_focus_is_visible(
    browser: Browser, pages_gateway: Gateway
) -> None:
    sign_in(browser, pages_gateway)
    browser.find("#key-name").send_keys("")
    browser.focused().send_keys(Keys.TAB)
    assert browser.focused().get_attribute("id") == "create"
    outline = browser.driver.execute_script(
        "return getComputedStyle(arguments[0]).outlineStyle", browser.focused()
    )
    assert outline == "solid"
    browser.focused().send_keys(Keys.SHIFT, Keys.TAB)
    browser.focused().send_keys("keyboard", Keys.ENTER)
    browser.visible("#new-key")
    # The next thing to do has the focus, once the list shows the new key.
    browser.wait(lambda: browser.focused().get_attribute("id") == "copy-key", what="the focus on Copy")
    browser.focused().send_keys(Keys.TAB)
    browser.focused().send_keys(Keys.ENTER)  # "Done"
    assert not browser.find("#new-key").is_displayed()
    assert browser.focused().get_attribute("id") == "key-name"


def test_dashboard_is_usable_at_375_px(browser: Browser, pages_gateway: Gateway) -> None:
    sign_in(browser, pages_gateway, size=(375, 812))
    key = create_key(browser, "phone")
    row = row_of(browser, key[:9])
    assert browser.driver.execute_script("return document.documentElement.scrollWidth") <= 375
    assert browser.find("#create").is_displayed() and browser.find("#copy-key").is_displayed()
    assert row.find_element("css selector", "button.danger").is_displayed()


def requests_recorded(browser: Browser, gateway: Gateway, count: int) -> None:
    """Wait until GET /api/usage counts `count` requests: records are written just after each answer."""
    token = session_token(browser)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        usage = httpx.get(f"{gateway.url}/api/usage", headers={"Authorization": f"Bearer {token}"}).json()
        if usage["totals"]["requests"] >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"usage did not reach {count} requests: {usage['totals']}")


def test_dashboard_screenshot(browser: Browser, start_gateway: Callable[..., Gateway]) -> None:
    gateway = start_gateway()  # a fresh operator, whose only keys and usage are these
    sign_in(browser, gateway)
    staging = create_key(browser, "Staging")
    for _ in range(4):
        assert chat_with(gateway, staging).status_code == 200
    requests_recorded(browser, gateway, 4)
    browser.driver.refresh()  # the usage panel is read when the page loads
    browser.text_of("#usage-table", "Staging (cgpt_")  # a usage row names its key
    key = create_key(browser, "Production app")
    browser.text_of("#snippet", key[:9])
    browser.text_of("#usage-status", "(UTC)")
    browser.screenshot("dashboard.png")


def test_usage_chart_and_table_show_the_keys_requests(
    browser: Browser, start_gateway: Callable[..., Gateway]
) -> None:
    gateway = start_gateway()  # a fresh operator: the only usage is this test's
    sign_in(browser, gateway)
    key = create_key(browser, "charted")
    for _ in range(3):
        assert chat_with(gateway, key).status_code == 200
    requests_recorded(browser, gateway, 3)
    browser.driver.refresh()
    browser.visible("#usage-table")
    row = browser.wait(
        lambda: next((r for r in browser.all("#usage-table tbody tr") if "charted" in r.text), None),
        what="the key's usage row",
    )
    cells = [cell.text for cell in row.find_elements("css selector", "td")]
    assert cells[1] == "openai" and cells[2] == "3"
    bars = browser.all("#usage-chart rect.chat-bar")
    assert len(bars) == 1 and "3 chat" in bars[0].get_attribute("textContent")


def test_the_25_key_cap_is_said_in_plain_words(
    browser: Browser, start_gateway: Callable[..., Gateway]
) -> None:
    gateway = start_gateway(RATE_LIMIT_ACCOUNT="1000")  # a fresh operator, with room for 26 key calls
    sign_in(browser, gateway)
    token = session_token(browser)
    for number in range(24):
        made = httpx.post(
            f"{gateway.url}/api/keys",
            headers={"Authorization": f"Bearer {token}"},
            json={"name": f"k{number}"},
        )
        assert made.status_code == 201
    browser.driver.refresh()
    browser.visible("#signed-in")
    browser.text_of("#keys-status", "24 of 25 keys.")
    made = httpx.post(f"{gateway.url}/api/keys", headers={"Authorization": f"Bearer {token}"}, json={})
    assert made.status_code == 201  # elsewhere, while this page still counts 24

    browser.allowed.append("status of 400")
    browser.find("#key-name").send_keys("one too many", Keys.ENTER)
    refused = browser.text_of("#keys-status", "at most 25 API keys")
    assert browser.find("#keys-status").get_attribute("class") == "status error", refused
    assert not browser.find("#new-key").is_displayed()

    browser.driver.refresh()
    browser.visible("#signed-in")
    browser.text_of("#keys-status", "You have 25 keys, the most an account can have.")
    assert not browser.find("#create").is_enabled()
