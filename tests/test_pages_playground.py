"""The playground and models pages in a real browser: streamed chat, stop, image, video, limits, safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.browser import Browser, signin_link
from tests.conftest import Gateway
from tests.fakes import files
from tests.fakes.mapleai import FakeMapleAI
from tests.fakes.pollinations import FakePollinations
from tests.mapleai_fixtures import FAST_TIMEOUTS, MAPLEAI_KEY
from tests.test_chat import sse_events

XSS = "<img src=x onerror=\"document.title='owned'\">"


def open_playground(browser: Browser, gateway: Gateway, model: str, **size: int) -> None:
    browser.open(f"{gateway.url}/playground?model={model}", **size)
    browser.wait(lambda: browser.find("#model").is_enabled(), what="the model list")


def send(browser: Browser, prompt: str) -> None:
    box = browser.find("#prompt")
    box.clear()
    box.send_keys(prompt, Keys.ENTER)  # Enter sends


LAST_ANSWER = "#thread li.assistant:last-child .content"


def answered(browser: Browser) -> str:
    """The last answer's meta line, once the answer is complete."""
    browser.text_of("#status", "Done.")
    return browser.text("#thread li.assistant:last-child .meta")


def test_chat_answer_grows_while_the_provider_is_still_sending(
    browser: Browser, pages_gateway: Gateway, upstream: FakePollinations
) -> None:
    gate = upstream.gate("playground-grow")
    open_playground(browser, pages_gateway, "openai")
    send(browser, "gate:playground-grow")
    browser.text_of(LAST_ANSWER, "first")
    assert not gate.is_set()  # the fake is holding the rest of the stream back
    assert browser.text(LAST_ANSWER) == "first"
    assert browser.text("#status") == "Streaming…"
    assert browser.find("#stop").is_enabled()
    gate.set()
    meta = answered(browser)
    assert browser.text(LAST_ANSWER) == "firstecho:gate:playground-grow"
    assert "left" in browser.text("#limits")  # the rate-limit headers, in words
    assert "answered by pollinations" in meta and "left" in meta


def test_a_conversation_is_sent_whole_with_system_prompt_temperature_and_max_tokens(
    browser: Browser, pages_gateway: Gateway, upstream: FakePollinations
) -> None:
    open_playground(browser, pages_gateway, "openai")
    browser.find("#system").send_keys("Answer like a pirate.")
    browser.find("#temperature").send_keys("0.3")
    browser.find("#max-tokens").send_keys("64")
    send(browser, "Hello there")
    answered(browser)
    send(browser, "And again")
    meta = answered(browser)
    sent = upstream.received("And again").body
    assert sent["messages"] == [
        {"role": "system", "content": "Answer like a pirate."},
        {"role": "user", "content": "Hello there"},
        {"role": "assistant", "content": "echo:Hello there"},
        {"role": "user", "content": "And again"},
    ]
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 64
    roles = [li.get_attribute("class") for li in browser.all("#thread li")]
    assert roles == ["user", "assistant", "user", "assistant"]
    # Next to the answer: who answered, the tokens, both times, the request id, the limits.
    assert "answered by pollinations · 16 tokens (11 in, 5 out) · first token " in meta  # the fake's usage
    assert " s · total " in meta and " · req_" in meta and "Limit 100000/min" in meta
    browser.screenshot("playground.png")

    browser.find("#new-chat").click()
    assert browser.all("#thread li") == []
    send(browser, "Fresh start")
    answered(browser)
    assert upstream.received("Fresh start").body["messages"] == [
        {"role": "system", "content": "Answer like a pirate."},
        {"role": "user", "content": "Fresh start"},
    ]


def run(command: list[str], key: str) -> str:
    done = subprocess.run(
        command,
        env={**os.environ, "CLOUDGPT_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_view_code_is_the_exact_request_as_curl_and_python(
    browser: Browser, pages_gateway: Gateway, upstream: FakePollinations
) -> None:
    made = httpx.post(
        f"{pages_gateway.url}/api/keys",
        headers={"Authorization": f"Bearer {signed_in_token(browser, pages_gateway)}"},
        json={"name": "code"},
    )
    key = made.json()["key"]
    open_playground(browser, pages_gateway, "openai")
    browser.find("#system").send_keys("Be brief. It's fine.")  # a quote the shell must keep
    browser.find("#temperature").send_keys("1.5")
    send(browser, "first turn")
    answered(browser)
    browser.find("#prompt").send_keys("second turn")
    browser.find("#view-code").click()
    curl = browser.text_of("#request-code", "second turn")
    assert "$CLOUDGPT_API_KEY" in curl and key not in curl
    events = [json.loads(data) for data in sse_events(run(["bash", "-c", curl], key))[:-1]]
    assert (
        "".join(c["delta"].get("content") or "" for e in events for c in e["choices"]) == "echo:second turn"
    )
    from_curl = upstream.received("second turn").body
    browser.find("#code-tabs button[value=Python]").click()
    python = browser.text_of("#request-code", "from openai import OpenAI")
    assert run([sys.executable, "-c", python], key).strip() == "echo:second turn"
    from_python = upstream.received("second turn").body
    browser.find("#send").click()  # the page sends the same request
    answered(browser)
    from_page = upstream.received("second turn").body
    assert from_curl == from_python == from_page
    assert from_page["temperature"] == 1.5 and len(from_page["messages"]) == 4


def signed_in_token(browser: Browser, gateway: Gateway) -> str:
    """Sign in on the dashboard by the printed link; the session's token."""
    browser.open(signin_link(gateway))
    browser.visible("#signed-in")
    return browser.driver.execute_script(
        "return JSON.parse(localStorage.getItem('cloudgpt.local-session')).token"
    )


def test_the_signed_in_user_chats_with_no_key_typed(
    browser: Browser, start_gateway: Callable[..., Gateway]
) -> None:
    gateway = start_gateway(RATE_LIMIT_CHAT_AUTHENTICATED="321")  # a fresh operator, a budget of its own
    token = signed_in_token(browser, gateway)
    browser.driver.get(f"{gateway.url}/playground?model=openai")  # the same browser session
    browser.wait(lambda: browser.find("#model").is_enabled(), what="the model list")
    assert "Signed in as the local operator" in browser.text("#caller")
    assert browser.find("#apikey").get_attribute("value") == ""
    send(browser, "as myself")
    assert "Limit 321/min" in answered(browser)  # the user's limits, not the address's
    usage = httpx.get(f"{gateway.url}/api/usage", headers={"Authorization": f"Bearer {token}"}).json()
    assert usage["totals"]["requests"] >= 1  # in the user's usage
    assert {row["keyId"] for row in usage["data"]} == {""}  # under no key

    browser.find("#apikey").send_keys("cgpt_typed")  # a typed key is used instead
    assert "Calling with the key typed above" in browser.text("#caller")
    browser.driver.get(f"{gateway.url}/dashboard")
    browser.text_of("#usage-table", "signed in, no key (playground)")  # the dashboard says whose they are


def test_the_status_stays_in_sight_during_a_long_answer(
    browser: Browser, pages_gateway: Gateway, upstream: FakePollinations
) -> None:
    gate = upstream.gate("playground-long")
    open_playground(browser, pages_gateway, "openai", size=(375, 700))
    long = "\n".join(f"line {n}" for n in range(60))  # a thread taller than the screen
    browser.driver.execute_script("arguments[0].value = arguments[1]", browser.find("#prompt"), long)
    browser.find("#send").click()
    answered(browser)
    send(browser, "gate:playground-long")
    browser.text_of(LAST_ANSWER, "first")
    top, bottom, height = browser.driver.execute_script(
        "const r = document.getElementById('status').getBoundingClientRect();"
        "return [r.top, r.bottom, window.innerHeight]"
    )
    assert browser.text("#status") == "Streaming…"
    assert top >= 0 and bottom <= height, (top, bottom, height)
    gate.set()
    answered(browser)
    browser.find("#view-code").click()  # the thread, its signatures and the code fit 375 px too
    browser.visible("#request-code")
    width = browser.driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= browser.driver.execute_script("return window.innerWidth")


def test_stop_aborts_the_chat_request(
    browser: Browser, pages_gateway: Gateway, upstream: FakePollinations
) -> None:
    gate = upstream.gate("playground-stop")
    open_playground(browser, pages_gateway, "openai")
    send(browser, "gate:playground-stop")
    browser.text_of(LAST_ANSWER, "first")
    browser.find("#stop").click()
    browser.text_of("#status", "Stopped.")
    gate.set()
    assert browser.text(LAST_ANSWER) == "first"  # nothing arrives after the abort
    assert browser.find("#send").is_enabled() and not browser.find("#stop").is_enabled()


@pytest.mark.parametrize(
    ("prompt", "said"),
    [
        ("cut", "The answer broke off"),
        ("status:400", "fake upstream error 400"),
        ("status:500", "Also tried, and failed: mapleai-gpt4o (mapleai)"),  # the fallback, named
    ],
)
def test_provider_failures_are_said_in_plain_words(
    browser: Browser, pages_gateway: Gateway, prompt: str, said: str
) -> None:
    browser.allowed.append("status of 4")
    browser.allowed.append("status of 5")
    open_playground(browser, pages_gateway, "openai")
    send(browser, prompt)
    message = browser.text_of("#status", said)
    assert browser.find("#status").get_attribute("class") == "status error"
    assert browser.find("#send").is_enabled()
    if prompt.startswith("status:"):
        assert "Request req_" in message
        assert browser.find("#prompt").get_attribute("value") == prompt  # back in the box, to send again


def test_an_answer_from_the_fallback_says_so(
    browser: Browser, start_gateway: Callable[..., Gateway], mapleai: FakeMapleAI
) -> None:
    gateway = start_gateway(MAPLEAI_BASE_URL=mapleai.url, MAPLEAI_API_KEY=MAPLEAI_KEY, **FAST_TIMEOUTS)
    open_playground(browser, gateway, "openai")
    send(browser, "status:503")  # Pollinations fails; MapleAI, the catalog's fallback, answers
    meta = answered(browser)
    assert meta.startswith("answered by mapleai with the fallback mapleai-gpt4o (pollinations failed) · ")


def test_chat_answer_with_markup_is_shown_as_text(browser: Browser, pages_gateway: Gateway) -> None:
    open_playground(browser, pages_gateway, "openai")
    send(browser, XSS)
    browser.text_of("#status", "Done.")
    assert browser.text(LAST_ANSWER) == f"echo:{XSS}"
    assert browser.all("#thread img") == []
    assert browser.driver.title != "owned"


def test_image_is_shown_with_a_download_link(browser: Browser, pages_gateway: Gateway) -> None:
    open_playground(browser, pages_gateway, "flux")
    browser.find("#image-prompt").send_keys("a lighthouse")
    browser.find("#seed").send_keys("7")
    browser.find("#image button[type=submit]").click()
    image = browser.visible("#picture img")
    browser.wait(lambda: image.get_property("naturalWidth"), what="the image to decode")
    assert (image.get_property("naturalWidth"), image.get_property("naturalHeight")) == (4, 3)
    link = browser.find("#picture a[download]")
    assert link.get_attribute("href") == image.get_attribute("src")
    assert link.get_attribute("href").startswith("blob:")


def test_video_element_holds_the_clip(browser: Browser, pages_gateway: Gateway) -> None:
    open_playground(browser, pages_gateway, "veo")
    browser.find("#video-prompt").send_keys("waves")
    browser.find("#duration").clear()
    browser.find("#duration").send_keys("2")
    browser.find("#video button[type=submit]").click()
    video = browser.visible("#clip video")
    assert video.get_attribute("src").startswith("blob:")
    assert browser.text("#clip .caption") == f"video/mp4, {len(files.MP4)} bytes"  # the fake provider's clip
    assert browser.find("#clip a[download]").get_attribute("href") == video.get_attribute("src")
    assert video.get_attribute("controls") is not None


@pytest.fixture(scope="module")
def limited_gateway(start_module_gateway: Callable[..., Gateway]) -> Gateway:
    return start_module_gateway(RATE_LIMIT_CHAT_ANONYMOUS="1")


def test_a_429_says_once_when_to_retry_and_what_raises_the_limit(
    browser: Browser, limited_gateway: Gateway
) -> None:
    browser.allowed.append("status of 429")  # the browser logs every refused request
    open_playground(browser, limited_gateway, "openai")
    for _ in range(3):  # the first fits the budget, unless a new minute began in between
        send(browser, "hello")
        browser.wait(lambda: browser.text("#status") not in ("", "Streaming…"), what="the answer")
        if "Try again in" in browser.text("#status"):
            break
    status = browser.text("#status")
    assert "rate limit" in status.lower() and status.count("Try again in") == 1, status
    assert "retry after" not in status.lower(), status  # said once
    assert "Signing in (or using an API key) raises the limit" in status
    assert browser.find("#status").get_attribute("class") == "status error"
    assert "0 left" in browser.text("#limits")


def test_playground_keyboard_order_and_visible_focus(browser: Browser, pages_gateway: Gateway) -> None:
    open_playground(browser, pages_gateway, "openai")
    browser.find("#model").send_keys("")  # focus the first control
    order = []
    for _ in range(9):
        browser.focused().send_keys(Keys.TAB)
        focused = browser.focused()
        order.append(focused.get_attribute("id") or focused.text)
        outline = browser.driver.execute_script(
            "const s = getComputedStyle(arguments[0]); return [s.outlineStyle, s.outlineWidth]", focused
        )
        assert outline == ["solid", "3px"], order
    assert order == [
        "apikey", "dashboard", "system", "temperature", "max-tokens", "prompt", "send", "new-chat", "view-code"
    ]  # fmt: skip


def test_pages_fit_a_375_px_screen(browser: Browser, pages_gateway: Gateway) -> None:
    for path in ("/", "/playground?model=openai", "/models", "/dashboard"):
        browser.open(pages_gateway.url + path, size=(375, 812))
        browser.wait(lambda: browser.driver.execute_script("return document.readyState") == "complete")
        width = browser.driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= browser.driver.execute_script("return window.innerWidth"), path


def test_models_page_filters_by_modality_and_provider(browser: Browser, pages_gateway: Gateway) -> None:
    browser.open(f"{pages_gateway.url}/models")
    total = browser.text_of("#count", " models")
    everything = len(browser.all("#catalog li"))
    assert total == f"{everything} of {everything} models"
    Select(browser.find("#modality")).select_by_value("video")
    videos = {li.get_attribute("data-model") for li in browser.all("#catalog li")}
    assert "veo" in videos and "openai" not in videos
    Select(browser.find("#provider")).select_by_value("mapleai")
    shown = browser.all("#catalog li")
    assert shown and all("mapleai" in li.text for li in shown)
    assert len(shown) < len(videos)


def test_models_page_searches_links_into_the_playground_and_names_fallbacks(
    browser: Browser, pages_gateway: Gateway
) -> None:
    browser.open(f"{pages_gateway.url}/models")
    browser.text_of("#count", " models")
    browser.find("#search").send_keys("claude")
    browser.wait(
        lambda: all("claude" in li.text.lower() for li in browser.all("#catalog li")), what="the search"
    )
    shown = {li.get_attribute("data-model") for li in browser.all("#catalog li")}
    assert {"claude", "mapleai-claude"} <= shown and "openai" not in shown
    card = browser.find('#catalog li[data-model="claude"]')
    assert "Falls back to mapleai-claude (mapleai) when its provider fails." in card.text
    browser.find("#search").send_keys(" no-such-model")
    browser.text_of("#count", "No model matches")
    browser.find("#search").clear()
    browser.find("#search").send_keys("claude")
    browser.wait(lambda: browser.all('#catalog li[data-model="claude"] a'), what="the card")
    browser.find('#catalog li[data-model="claude"] a').click()
    browser.wait(lambda: browser.find("#model").is_enabled(), what="the playground")
    assert browser.driver.current_url.endswith("/playground?model=claude")
    assert browser.find("#model").get_attribute("value") == "claude"


def test_landing_page_names_its_own_origin_and_links_every_page(
    browser: Browser, pages_gateway: Gateway
) -> None:
    browser.open(pages_gateway.url + "/")
    browser.text_of("pre", pages_gateway.url)
    assert "$BASE_URL" not in browser.find("body").text
    links = {a.get_attribute("pathname") for a in browser.all("a")}
    assert {"/dashboard", "/playground", "/models"} <= links
