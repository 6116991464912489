"""The playground and models pages in a real browser: streamed chat, stop, image, video, limits, safety."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.browser import Browser
from tests.conftest import Gateway
from tests.fakes import files
from tests.fakes.pollinations import FakePollinations

XSS = "<img src=x onerror=\"document.title='owned'\">"


def open_playground(browser: Browser, gateway: Gateway, model: str, **size: int) -> None:
    browser.open(f"{gateway.url}/playground?model={model}", **size)
    browser.wait(lambda: browser.find("#model").is_enabled(), what="the model list")


def send(browser: Browser, prompt: str) -> None:
    box = browser.find("#prompt")
    box.clear()
    box.send_keys(prompt, Keys.ENTER)  # Enter sends


def test_chat_answer_grows_while_the_provider_is_still_sending(
    browser: Browser, pages_gateway: Gateway, upstream: FakePollinations
) -> None:
    gate = upstream.gate("playground-grow")
    open_playground(browser, pages_gateway, "openai")
    send(browser, "gate:playground-grow")
    browser.text_of("#answer", "first")
    assert not gate.is_set()  # the fake is holding the rest of the stream back
    assert browser.text("#answer") == "first"
    assert browser.text("#status") == "Streaming…"
    assert browser.find("#stop").is_enabled()
    gate.set()
    browser.text_of("#status", "Done.")
    assert browser.text("#answer") == "firstecho:gate:playground-grow"
    assert "left" in browser.text("#limits")  # the rate-limit headers, in words
    send(browser, "Hello! Which models can I try here?")
    browser.text_of("#answer", "echo:Hello!")
    browser.screenshot("playground.png")


def test_stop_aborts_the_chat_request(
    browser: Browser, pages_gateway: Gateway, upstream: FakePollinations
) -> None:
    gate = upstream.gate("playground-stop")
    open_playground(browser, pages_gateway, "openai")
    send(browser, "gate:playground-stop")
    browser.text_of("#answer", "first")
    browser.find("#stop").click()
    browser.text_of("#status", "Stopped.")
    gate.set()
    assert browser.text("#answer") == "first"  # nothing arrives after the abort
    assert browser.find("#send").is_enabled() and not browser.find("#stop").is_enabled()


@pytest.mark.parametrize(
    ("prompt", "said"),
    [("cut", "The answer broke off"), ("status:400", "fake upstream error 400")],
)
def test_provider_failures_are_said_in_plain_words(
    browser: Browser, pages_gateway: Gateway, prompt: str, said: str
) -> None:
    browser.allowed.append("status of 400")
    open_playground(browser, pages_gateway, "openai")
    send(browser, prompt)
    browser.text_of("#status", said)
    assert browser.find("#status").get_attribute("class") == "status error"
    assert browser.find("#send").is_enabled()


def test_chat_answer_with_markup_is_shown_as_text(browser: Browser, pages_gateway: Gateway) -> None:
    open_playground(browser, pages_gateway, "openai")
    send(browser, XSS)
    browser.text_of("#status", "Done.")
    assert browser.text("#answer") == f"echo:{XSS}"
    assert browser.all("#answer img") == []
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
def limited_gateway(start_gateway: Callable[..., Gateway]) -> Gateway:
    return start_gateway(RATE_LIMIT_CHAT_ANONYMOUS="1")


def test_a_429_says_when_to_retry(browser: Browser, limited_gateway: Gateway) -> None:
    browser.allowed.append("status of 429")  # the browser logs every refused request
    open_playground(browser, limited_gateway, "openai")
    for _ in range(3):  # the first fits the budget, unless a new minute began in between
        send(browser, "hello")
        browser.wait(lambda: browser.text("#status") not in ("", "Streaming…"), what="the answer")
        if "Try again in" in browser.text("#status"):
            break
    status = browser.text("#status")
    assert "rate limit" in status.lower() and "Try again in" in status
    assert browser.find("#status").get_attribute("class") == "status error"
    assert "0 left" in browser.text("#limits")


def test_playground_keyboard_order_and_visible_focus(browser: Browser, pages_gateway: Gateway) -> None:
    open_playground(browser, pages_gateway, "openai")
    browser.find("#model").send_keys("")  # focus the first control
    order = []
    for _ in range(4):
        browser.focused().send_keys(Keys.TAB)
        focused = browser.focused()
        order.append(focused.get_attribute("id") or focused.text)
        outline = browser.driver.execute_script(
            "const s = getComputedStyle(arguments[0]); return [s.outlineStyle, s.outlineWidth]", focused
        )
        assert outline == ["solid", "3px"], order
    assert order == ["apikey", "dashboard", "prompt", "send"]


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


def test_landing_page_names_its_own_origin_and_links_every_page(
    browser: Browser, pages_gateway: Gateway
) -> None:
    browser.open(pages_gateway.url + "/")
    browser.text_of("pre", pages_gateway.url)
    assert "$BASE_URL" not in browser.find("body").text
    links = {a.get_attribute("pathname") for a in browser.all("a")}
    assert {"/dashboard", "/playground", "/models"} <= links
