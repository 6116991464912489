"""The dashboard in a real browser against Supabase Auth (emulated), through the vendored supabase-js.

Sign up, sign in, sign out, email confirmation, magic link and password reset as
a person does them; keys are made with the session's access token.
"""

from __future__ import annotations

import uuid

import httpx
from selenium.webdriver.common.keys import Keys

from tests.browser import Browser
from tests.conftest import Gateway
from tests.fakes.supabase import FakeSupabase
from tests.test_pages_dashboard import create_key, row_of

PASSWORD = "correct horse battery"


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:8]}@example.com"


def fill(browser: Browser, email: str, password: str = "") -> None:
    for field, value in (("#email", email), ("#password", password)):
        browser.find(field).clear()
        browser.find(field).send_keys(value)


def open_dashboard(browser: Browser, gateway: Gateway) -> None:
    browser.open(f"{gateway.url}/dashboard")
    browser.visible("#password-form")


def signed_in_as(browser: Browser, email: str) -> None:
    browser.visible("#signed-in")
    browser.text_of("#who", email)


def signed_up(browser: Browser, gateway: Gateway) -> str:
    """A new account's email, signed up on the dashboard and signed in."""
    email = new_email()
    open_dashboard(browser, gateway)
    fill(browser, email, PASSWORD)
    browser.find("#sign-up").click()
    signed_in_as(browser, email)
    return email


def signed_up_then_out(browser: Browser, gateway: Gateway) -> str:
    """A new account's email, signed up on the dashboard and signed out again."""
    email = signed_up(browser, gateway)
    browser.find("#sign-out").click()
    browser.visible("#password-form")
    return email


def test_sign_up_create_a_key_sign_out_and_in_again(browser: Browser, supabase_gateway: Gateway) -> None:
    email = new_email()
    open_dashboard(browser, supabase_gateway)
    assert browser.driver.execute_script("return typeof window.supabase") == "object"  # loaded only here
    fill(browser, email, PASSWORD)
    browser.find("#sign-up").click()
    signed_in_as(browser, email)
    key = create_key(browser, "from Supabase")
    reply = httpx.post(
        f"{supabase_gateway.url}/api/chat",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "openai", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert reply.status_code == 200
    stored = browser.driver.execute_script("return JSON.stringify(localStorage)")
    assert key not in stored  # supabase-js keeps its session there; the key is nowhere

    browser.find("#sign-out").click()
    browser.visible("#password-form")
    fill(browser, email, PASSWORD)
    browser.find("#password").send_keys(Keys.ENTER)  # Enter signs in
    signed_in_as(browser, email)
    row_of(browser, key[:9])


def supabase_session(browser: Browser) -> dict:
    """The session supabase-js keeps in localStorage (its `sb-<project>-auth-token` entry)."""
    return browser.driver.execute_script(
        "const k = Object.keys(localStorage).find((k) => k.endsWith('-auth-token'));"
        "return k && JSON.parse(localStorage.getItem(k))"
    )


def test_the_session_is_shared_by_tabs_and_sign_out_ends_it_at_supabase_auth_and_the_gateway(
    browser: Browser, supabase_gateway: Gateway, supabase: FakeSupabase
) -> None:
    # The first tab's poll of the activity may meet the ended token before supabase-js tells it.
    browser.allowed.append("status of 401")
    email = signed_up(browser, supabase_gateway)
    session = supabase_session(browser)
    first = browser.driver.current_window_handle
    browser.driver.switch_to.new_window("tab")
    try:
        browser.driver.get(f"{supabase_gateway.url}/dashboard")
        signed_in_as(browser, email)  # the new tab shares the session
        browser.find("#sign-out").click()
        browser.visible("#password-form")
    finally:
        browser.driver.close()
        browser.driver.switch_to.window(first)
    browser.visible("#password-form")  # the first tab followed
    auth = f"{supabase.url}/auth/v1"
    user = httpx.get(
        f"{auth}/user",
        headers={"apikey": supabase.anon_key, "Authorization": f"Bearer {session['access_token']}"},
    )
    assert user.status_code == 403  # Supabase Auth refuses the ended session
    refreshed = httpx.post(
        f"{auth}/token?grant_type=refresh_token",
        headers={"apikey": supabase.anon_key},
        json={"refresh_token": session["refresh_token"]},
    )
    assert refreshed.status_code == 400  # and it cannot be renewed
    chat = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}
    bearer = {"Authorization": f"Bearer {session['access_token']}"}
    for refused in (  # and the gateway, which verifies tokens itself, refuses it too
        supabase_gateway.client.get("/api/keys", headers=bearer),
        supabase_gateway.client.post("/api/chat", json=chat, headers=bearer),
    ):
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "session_ended")


def test_wrong_password_is_said_in_plain_words(browser: Browser, supabase_gateway: Gateway) -> None:
    browser.allowed.append("status of 400")  # the browser logs the refused sign-in
    open_dashboard(browser, supabase_gateway)
    fill(browser, new_email(), PASSWORD)
    browser.find("#sign-in").click()
    assert "Invalid login credentials" in browser.text_of("#status", "Invalid")
    assert not browser.find("#signed-in").is_displayed()


def test_sign_up_with_email_confirmation_waits_for_the_mailed_link(
    browser: Browser, supabase_gateway: Gateway, supabase: FakeSupabase
) -> None:
    email = new_email()
    supabase.auth.confirm_email = True
    try:
        open_dashboard(browser, supabase_gateway)
        fill(browser, email, PASSWORD)
        browser.find("#sign-up").click()
        browser.text_of("#status", f"Check your email: we sent a confirmation link to {email}.")
        assert not browser.find("#signed-in").is_displayed()
        (mail,) = supabase.auth.mails_to(email)
        browser.open(mail.link)
        signed_in_as(browser, email)
        assert "access_token" not in browser.driver.current_url  # supabase-js took it out of the address bar
    finally:
        supabase.auth.confirm_email = False


def test_magic_link_signs_in(browser: Browser, supabase_gateway: Gateway, supabase: FakeSupabase) -> None:
    email = signed_up_then_out(browser, supabase_gateway)
    fill(browser, email)
    browser.find("#magic-link").click()
    browser.text_of("#status", f"we sent a sign-in link to {email}")
    (mail,) = supabase.auth.mails_to(email)
    assert mail.type == "magiclink"
    browser.open(mail.link)
    signed_in_as(browser, email)


def test_password_reset_sets_a_new_password(
    browser: Browser, supabase_gateway: Gateway, supabase: FakeSupabase
) -> None:
    email = signed_up_then_out(browser, supabase_gateway)
    fill(browser, email)
    browser.find("#reset").click()
    browser.text_of("#status", "a password reset link is on its way")
    (mail,) = [m for m in supabase.auth.mails_to(email) if m.type == "recovery"]
    browser.open(mail.link)
    browser.visible("#recovery-form")
    browser.find("#new-password").send_keys("a brand new password", Keys.ENTER)
    browser.text_of("#status", "Your password is changed.")

    browser.find("#sign-out").click()
    browser.visible("#password-form")
    fill(browser, email, "a brand new password")
    browser.find("#sign-in").click()
    signed_in_as(browser, email)


def test_sign_in_form_keyboard_order_and_configured_methods(
    browser: Browser, supabase_gateway: Gateway
) -> None:
    open_dashboard(browser, supabase_gateway)
    browser.find("#email").send_keys("")
    order = ["email"]
    for _ in range(6):
        browser.focused().send_keys(Keys.TAB)
        order.append(browser.focused().get_attribute("id") or browser.focused().text)
    assert order == ["email", "password", "sign-in", "sign-up", "magic-link", "reset", "Continue with Github"]


def test_the_github_button_signs_in_through_the_provider(
    browser: Browser, supabase_gateway: Gateway, supabase: FakeSupabase
) -> None:
    open_dashboard(browser, supabase_gateway)
    browser.find("#oauth button").click()  # to Supabase's authorize, the provider, and back
    signed_in_as(browser, supabase.auth.oauth_email)
    assert "access_token" not in browser.driver.current_url


def test_the_playground_chats_as_the_signed_in_user(browser: Browser, supabase_gateway: Gateway) -> None:
    email = signed_up(browser, supabase_gateway)
    browser.driver.get(f"{supabase_gateway.url}/playground?model=openai")
    browser.wait(lambda: browser.find("#model").is_enabled(), what="the model list")
    browser.text_of("#caller", f"Signed in as {email}")
    box = browser.find("#prompt")
    box.send_keys("as a Supabase user", Keys.ENTER)
    browser.text_of("#status", "Done.")
    meta = browser.text("#thread li.assistant:last-child .meta")
    assert "Limit 100000/min" in meta  # the authenticated budget, with no key typed
    assert browser.find("#apikey").get_attribute("value") == ""
