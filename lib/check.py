"""The smoke check: is a CloudGPT deployment working, and what does it lack?

python -m lib.check https://my-app.vercel.app [--key cgpt_...] [--model openai]

One line per finding, each `ok`, `warn` or `FAIL`: the functions answering, the
configuration the gateway sees as missing (names only), one chat call and its
rate-limit headers, the key store and the counters with their round-trip times as
the functions measure them, and with --key, the key accepted. The exit status is 1
when any line failed. Nothing secret is printed: a key is shown by its prefix only.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from lib.terminal import printable

CHAT_PROMPT = "Answer with the single word: ok"


@dataclass(frozen=True)
class Finding:
    level: str  # "ok", "warn" or "FAIL"
    text: str

    def __str__(self) -> str:
        # The text quotes the deployment's answers: escaped, it cannot forge a line or drive the terminal.
        return f"{self.level:<5} {printable(self.text)}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _error(response: httpx.Response) -> str:
    """An answer's error code and message, or its status when it is not CloudGPT's envelope."""
    try:
        error = response.json()["error"]
        if {"message", "type", "code", "param"} <= error.keys():
            return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return f"HTTP {response.status_code}"


def _timed(client: httpx.Client, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = client.request(method, path, **kwargs)
    return response, time.perf_counter() - started


def check(client: httpx.Client, key: str | None = None, model: str = "openai") -> Iterator[Finding]:
    """Every finding, as it is made; stops early only when the deployment does not answer at all."""
    try:
        response, took = _timed(client, "GET", "/api/models")
        count = len(response.json()["data"]) if response.status_code == 200 else None
    except httpx.HTTPError as error:
        yield Finding("FAIL", f"functions: {client.base_url} cannot be reached ({type(error).__name__})")
        return
    except (ValueError, KeyError, TypeError):
        yield Finding("FAIL", "functions: GET /api/models answered something that is not CloudGPT's list")
        return
    if count is None:
        yield Finding("FAIL", f"functions: GET /api/models answered {_error(response)}")
        return
    yield Finding("ok", f"functions: GET /api/models answered 200 in {_ms(took)} ({count} models)")
    yield from _guarded("configuration", lambda: _health(client))
    yield from _guarded("chat", lambda: _chat(client, key, model))
    if key is not None:
        yield from _guarded("api key", lambda: [_key(client, key)])


def _guarded(label: str, step: Callable[[], list[Finding]]) -> list[Finding]:
    """A step's findings, or one failed line when its request failed or its answer was not CloudGPT's."""
    try:
        return step()
    except httpx.HTTPError as error:
        return [Finding("FAIL", f"{label}: the request failed ({type(error).__name__})")]
    except (ValueError, KeyError, TypeError):
        return [Finding("FAIL", f"{label}: the answer is not CloudGPT's")]


# What each of the key store's failures asks the operator to do (GET /api/health's `problem`).
PROBLEMS = {
    "functions_missing": "its SQL functions are missing: apply supabase/migrations (docs/deploy.md)",
    "wrong_key": "it refused the project key (401): check SUPABASE_SECRET_KEY",
    "unreachable": "no answer in time: check SUPABASE_URL, and that the project is not paused",
}


def _health(client: httpx.Client) -> list[Finding]:
    """Configuration and stores as the functions see them, from their last probe."""
    response, _ = _timed(client, "GET", "/api/health")
    if response.status_code != 200:
        return [Finding("FAIL", f"configuration: GET /api/health answered {_error(response)}")]
    report = response.json()
    where = f"on {report['runtime']}" + (f", region {report['region']}" if report["region"] else "")
    missing = report["missing"]
    findings = [
        Finding("warn", f"configuration ({where}): missing {', '.join(missing)}")
        if missing
        else Finding("ok", f"configuration ({where}): nothing missing")
    ]
    for name, label in (("keyStore", "key store"), ("counters", "counters")):
        store = report[name]
        backend = store["backend"] or "none configured"
        if store["reachable"]:
            text = f"{label}: {backend}, round trip {store['roundTripMs']} ms from the function"
            findings.append(Finding("ok", text))
            continue
        text = f"{label}: {backend}, not usable ({store['error']})"
        if store.get("problem") in PROBLEMS:
            text += f": {PROBLEMS[store['problem']]}"
        findings.append(Finding("FAIL", text))
    return findings


def _chat(client: httpx.Client, key: str | None, model: str) -> list[Finding]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": model, "messages": [{"role": "user", "content": CHAT_PROMPT}], "max_tokens": 5}
    response, took = _timed(client, "POST", "/api/chat", json=body, headers=headers)
    provider = response.headers.get("X-CloudGPT-Provider", "no provider")
    if response.status_code == 200:
        findings = [Finding("ok", f"chat: {model} answered 200 in {_ms(took)} through {provider}")]
    else:
        findings = [Finding("FAIL", f"chat: {model} answered {_error(response)}")]
    limit = response.headers.get("X-RateLimit-Limit")
    if limit is None:
        findings.append(Finding("FAIL", "rate limit: the answer carries no X-RateLimit-* headers"))
    elif response.headers.get("X-RateLimit-Status") == "unchecked":
        findings.append(
            Finding("FAIL", f"rate limit: {limit}/min, but the counters failed: served unchecked")
        )
    else:
        remaining, reset = (
            response.headers.get("X-RateLimit-Remaining"),
            response.headers.get("X-RateLimit-Reset"),
        )
        caller = "with the key" if key else "anonymous"
        findings.append(
            Finding(
                "ok", f"rate limit ({caller}): limit {limit}/min, remaining {remaining}, resets at {reset}"
            )
        )
    return findings


def _key(client: httpx.Client, key: str) -> Finding:
    response = client.get("/api/keys", headers={"Authorization": f"Bearer {key}"})
    shown = key[:9] + "..."
    if response.status_code != 200:
        return Finding("FAIL", f"api key {shown}: GET /api/keys answered {_error(response)}")
    count = len(response.json()["data"])
    return Finding("ok", f"api key {shown}: accepted; its user has {count} key{'s' * (count != 1)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.check", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the deployment, e.g. https://my-app.vercel.app")
    parser.add_argument("--key", help="a CloudGPT API key (cgpt_...) to check as well")
    parser.add_argument("--model", default="openai", help="the chat model to call (default: openai)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per request (default: 60)")
    args = parser.parse_args(argv)
    if not args.url.startswith(("http://", "https://")):
        parser.error("the URL must start with http:// or https://")

    print(f"CloudGPT smoke check of {args.url.rstrip('/')}")
    failed = 0
    with httpx.Client(base_url=args.url.rstrip("/"), timeout=args.timeout) as client:
        for finding in check(client, args.key, args.model):
            print(finding, flush=True)
            failed += finding.level == "FAIL"
    print("all good" if not failed else f"{failed} check{'s' * (failed != 1)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
