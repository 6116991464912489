"""How the pages are served: their paths (as Vercel serves them), their security headers, their origins."""

from __future__ import annotations

import re

import pytest

from tests.browser import Browser
from tests.conftest import Gateway

PAGES = ("/", "/dashboard", "/playground", "/models")


@pytest.mark.parametrize("path", [*PAGES, "/dashboard/", "/playground/", "/models/"])
def test_each_page_is_served_with_and_without_its_slash(pages_gateway: Gateway, path: str) -> None:
    response = pages_gateway.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("path", PAGES)
def test_pages_forbid_inline_scripts_other_origins_and_framing(pages_gateway: Gateway, path: str) -> None:
    response = pages_gateway.client.get(path)
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["content-security-policy"].split(";")
    )
    assert policy["script-src"] == "'self'" and policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and response.headers["x-frame-options"] == "DENY"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert not re.search(r"<script(?![^>]*\ssrc=)", response.text)  # no inline script
    assert not re.search(r"<[^>]*\son[a-z]+=", response.text)  # no inline handler


def test_pages_load_nothing_from_another_origin(browser: Browser, pages_gateway: Gateway) -> None:
    for path in PAGES:
        browser.open(pages_gateway.url + path)
        browser.wait(lambda: browser.driver.execute_script("return document.readyState") == "complete")
        loaded = browser.driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)"
        )
        assert set(loaded) <= {pages_gateway.url}, path
    # Without Supabase, the sign-in library is not even loaded.
    assert browser.driver.execute_script("return typeof window.supabase") == "undefined"


def test_an_inline_script_would_not_run(browser: Browser, pages_gateway: Gateway) -> None:
    browser.allowed.append("Content Security Policy")  # the browser reports the refusal
    browser.open(f"{pages_gateway.url}/models")
    ran = browser.driver.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.ranInline = true';"
        "document.body.append(s); return window.ranInline === true"
    )
    assert ran is False
