"""A key's controls on the dashboard, in a real browser: set at creation, seen at a glance, changed later."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.browser import Browser
from tests.conftest import Gateway
from tests.test_pages_dashboard import chat_with, row_of, sign_in


def label(browser: Browser, text: str):
    """The control a visible label names, as a person finds it."""
    found = browser.wait(
        lambda: next((x for x in browser.all("label") if x.is_displayed() and x.text.strip() == text), None),
        what=f"the label {text!r}",
    )
    return browser.driver.find_element(By.ID, found.get_attribute("for"))


def test_controls_set_at_creation_show_in_the_row_and_hold(browser: Browser, pages_gateway: Gateway) -> None:
    sign_in(browser, pages_gateway)
    browser.find("#create-controls summary").click()
    browser.find("#key-name").send_keys("scoped")
    label(browser, "Models it may call").send_keys("mistral")
    label(browser, "Chat requests per minute").send_keys("2")
    label(browser, "Quota").send_keys("Per UTC day")
    label(browser, "Requests per quota period").send_keys("3", Keys.ENTER)
    browser.visible("#new-key")
    key = browser.wait(lambda: browser.text("#new-key-value"), what="the new key")
    row = row_of(browser, key[:9])
    controls = row.find_element(By.CSS_SELECTOR, ".key-controls").text
    assert "Models: mistral" in controls and "chat 2/min" in controls
    assert "Quota: 0 of 3 requests this UTC day" in controls
    table_fits = (
        "const t = document.getElementById('keys'); return t.scrollWidth <= t.parentElement.clientWidth"
    )
    assert browser.driver.execute_script(table_fits)  # every column in view, Revoke included
    refused = chat_with(pages_gateway, key)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "model_not_allowed")


def test_an_edited_key_is_disabled_and_errors_are_said_in_plain_words(
    browser: Browser, pages_gateway: Gateway
) -> None:
    sign_in(browser, pages_gateway)
    browser.find("#key-name").send_keys("editable", Keys.ENTER)
    browser.visible("#new-key")
    key = browser.wait(lambda: browser.text("#new-key-value"), what="the new key")
    row = row_of(browser, key[:9])
    assert "None: all the account may do" in row.text
    edit = row.find_element(By.CSS_SELECTOR, "button[aria-label='Edit controls of editable']")
    edit.send_keys(Keys.ENTER)  # keyboard only
    assert edit.get_attribute("aria-expanded") == "true"
    assert browser.focused().get_attribute("id").endswith("-expires")  # the editor has the focus

    limit = label(browser, "Chat requests per minute")
    limit.send_keys("0", Keys.ENTER)
    message = browser.text_of("#keys-status", "Chat requests per minute: must be a whole number")
    assert "'" not in message and browser.focused() == limit
    assert limit.get_attribute("aria-invalid") == "true"
    limit.clear()

    browser.allowed.append("status of 400")
    models = label(browser, "Models it may call")
    models.send_keys("no-such-model", Keys.ENTER)  # the server's refusal, told at its field
    browser.text_of("#keys-status", "Models it may call: 'no-such-model' is not a catalog model id")
    assert browser.focused() == models
    models.clear()

    label(browser, "Disabled: refuse this key until enabled again").click()
    models.send_keys(Keys.ENTER)
    browser.text_of("#keys-status", "Saved the controls of “editable”")
    browser.wait(lambda: "Disabled" in row_of(browser, key[:9]).text, what="the row to say Disabled")
    refused = chat_with(pages_gateway, key)
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "api_key_disabled")


def test_the_editor_fits_375_px(browser: Browser, pages_gateway: Gateway) -> None:
    sign_in(browser, pages_gateway, size=(375, 812))
    browser.find("#key-name").send_keys("phone controls", Keys.ENTER)
    browser.visible("#new-key")
    key = browser.wait(lambda: browser.text("#new-key-value"), what="the new key")
    browser.find("#hide-key").click()
    row_of(browser, key[:9]).find_element(By.CSS_SELECTOR, "button[aria-label^='Edit controls']").click()
    assert label(browser, "Tokens per quota period").is_displayed()
    assert browser.driver.execute_script("return document.documentElement.scrollWidth") <= 375
    browser.screenshot("dashboard-key-controls-375.png")
