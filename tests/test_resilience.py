"""Provider faults end to end: what the caller sees, and within what time.

The gateway under test (`resilient`) talks to a fault-injecting MapleAI with short
settings: first byte within 1 s, silences under 0.5 s, 2 retries with a 0.05 s
backoff base, Retry-After honoured up to 1 s, a keep-alive every 0.2 s. Time
bounds are generous (a loaded 2-core machine); bench/faults.py measures them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from itertools import pairwise

import httpx
import pytest

from lib.errors import UpstreamError, UpstreamTimeout
from lib.settings import SettingsError, load
from lib.upstream import Deadline, open_response
from tests.conftest import Gateway
from tests.fakes.faults import FaultyUpstream
from tests.mapleai_fixtures import FAST_TIMEOUTS, MAPLEAI_KEY
from tests.test_chat import sse_events


def timed(gateway: Gateway, content: str, model: str = "mapleai-gpt4o", **fields: object):
    """The gateway's response to one chat message, and the seconds it took."""
    body = {"model": model, "messages": [{"role": "user", "content": content}], **fields}
    started = time.monotonic()
    response = gateway.client.post("/api/chat", json=body)
    return response, time.monotonic() - started


def error_of(response: httpx.Response) -> dict[str, object]:
    assert response.headers["Content-Type"] == "application/json"
    return response.json()["error"]


# Failures before the answer starts: retried when transient, mapped, bounded in time.


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        ("status:429 plain", 429, "upstream_rate_limited"),
        ("status:503 always", 502, "upstream_error"),
        ("reset", 502, "upstream_unreachable"),
    ],
)
def test_transient_failure_is_retried_twice_then_mapped(
    resilient: Gateway, faults: FaultyUpstream, content: str, status: int, code: str
) -> None:
    response, took = timed(resilient, content)
    assert response.status_code == status
    assert error_of(response)["code"] == code
    assert response.headers["X-CloudGPT-Provider"] == "mapleai"
    assert len(faults.received(content)) == 3
    assert took < 3
    if status == 429:
        assert response.headers["Retry-After"] == "1"  # none given: come back in a second


def test_429_retry_after_is_honoured_before_retrying(resilient: Gateway, faults: FaultyUpstream) -> None:
    response, took = timed(resilient, "retry-after:1 honoured")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    arrivals = [r.at for r in faults.received("retry-after:1 honoured")]
    assert len(arrivals) == 3
    assert all(later - earlier >= 0.95 for earlier, later in pairwise(arrivals))
    assert 1.9 < took < 5


def test_429_retry_after_past_the_cap_is_passed_on_at_once(
    resilient: Gateway, faults: FaultyUpstream
) -> None:
    response, took = timed(resilient, "retry-after:30 capped")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "30"
    assert len(faults.received("retry-after:30 capped")) == 1
    assert took < 1.5


@pytest.mark.parametrize("value", ["inf", "Infinity", "-inf", "nan", "1e400", "99999999999999999999"])
def test_a_retry_after_past_any_reason_is_passed_on_capped_never_a_500(
    resilient: Gateway, faults: FaultyUpstream, value: str
) -> None:
    content = f"retry-after:{value} odd"
    response, took = timed(resilient, content)
    assert response.status_code == 429, response.text
    assert error_of(response)["code"] == "upstream_rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert took < 3


def test_an_answer_nested_past_any_parser_is_a_502_not_a_500(resilient: Gateway) -> None:
    response, _ = timed(resilient, "nested answer")
    assert response.status_code == 502
    assert error_of(response)["code"] == "upstream_malformed"


def test_500_once_then_success_is_a_200(resilient: Gateway, faults: FaultyUpstream) -> None:
    response, took = timed(resilient, "once:500 recovers")
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "echo: once:500 recovers"
    assert len(faults.received("once:500 recovers")) == 2
    assert took < 2


def test_no_answer_at_all_is_a_504_after_the_first_byte_timeout(
    resilient: Gateway, faults: FaultyUpstream
) -> None:
    response, took = timed(resilient, "silent nonstream")
    assert response.status_code == 504
    assert error_of(response)["code"] == "upstream_timeout"
    assert len(faults.received("silent nonstream")) == 1  # a slow provider is not hammered
    assert 0.9 < took < 3


def test_no_answer_to_a_stream_is_a_504_before_it_starts(resilient: Gateway) -> None:
    response, took = timed(resilient, "silent stream", stream=True)
    assert response.status_code == 504
    assert error_of(response)["code"] == "upstream_timeout"
    assert took < 3


def test_slow_first_byte_within_the_timeout_is_a_200(resilient: Gateway) -> None:
    response, took = timed(resilient, "slow:0.5")
    assert response.status_code == 200
    assert 0.4 < took < 2


@pytest.mark.parametrize(("status", "code"), [(400, 400), (401, 502), (402, 503)])
def test_caller_or_account_errors_are_never_retried(
    resilient: Gateway, faults: FaultyUpstream, status: int, code: int
) -> None:
    content = f"status:{status} once-only"
    response, took = timed(resilient, content)
    assert response.status_code == code
    assert len(faults.received(content)) == 1
    assert took < 1.5


def test_upstream_401_is_our_credential_problem_not_the_callers(resilient: Gateway) -> None:
    response, _ = timed(resilient, "status:401 auth")
    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "upstream_auth_failed" and "MAPLEAI_API_KEY" in error["message"]
    assert response.headers["X-CloudGPT-Provider"] == "mapleai"


def test_upstream_402_is_a_503_out_of_credit(resilient: Gateway) -> None:
    response, _ = timed(resilient, "status:402 credit")
    assert response.status_code == 503
    assert error_of(response)["code"] == "upstream_out_of_credit"


# Failures after the stream started: a final error event, never [DONE], never retried.


@pytest.mark.parametrize(
    ("marker", "code", "bound"),
    [
        ("cut", "upstream_stream_cut", 1.5),
        ("stall", "upstream_timeout", 2.5),
        ("malformed", "upstream_malformed", 1.5),
        ("nodone", "upstream_stream_incomplete", 1.5),
        ("nested", "upstream_malformed", 1.5),
        ("endless", "upstream_malformed", 3),
    ],
)
def test_broken_stream_ends_in_one_error_event_in_bounded_time(
    resilient: Gateway, faults: FaultyUpstream, marker: str, code: str, bound: float
) -> None:
    content = f"{marker} stream"
    response, took = timed(resilient, content, stream=True)
    assert response.status_code == 200
    events = sse_events(response.text)
    assert "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert error["code"] == code
    stops = [e for e in events[:-1] if json.loads(e)["choices"][0]["finish_reason"] == "stop"]
    assert len(stops) == (1 if marker == "nodone" else 0)  # only the provider's own, never made up
    assert len(faults.received(content)) == 1
    assert took < bound


def test_stream_that_stalls_fails_after_the_idle_timeout(resilient: Gateway) -> None:
    response, took = timed(resilient, "stall idle", stream=True)
    assert json.loads(sse_events(response.text)[-1])["error"]["message"] == "mapleai went silent mid-answer."
    assert 0.45 < took < 2.5


def test_keep_alive_comments_flow_while_the_first_token_is_slow(resilient: Gateway) -> None:
    response, took = timed(resilient, "slowfirst:0.8 kept", stream=True)
    assert response.status_code == 200
    before_first_event = response.text.split("data: ", 1)[0]
    assert before_first_event.count(": keep-alive\n\n") >= 2
    assert sse_events(response.text)[-1] == "[DONE]"
    assert took < 2.5


def test_first_token_that_never_comes_is_an_error_event_after_the_first_byte_timeout(
    resilient: Gateway,
) -> None:
    response, took = timed(resilient, "slowfirst:5 never", stream=True)
    assert response.status_code == 200
    assert ": keep-alive" in response.text
    error = json.loads(sse_events(response.text)[-1])["error"]
    assert error["code"] == "upstream_timeout"
    assert 0.9 < took < 3


def test_stream_that_arrives_in_one_packet_is_not_mistaken_for_silence(resilient: Gateway) -> None:
    response, took = timed(resilient, "burst", stream=True)
    assert sse_events(response.text)[-1] == "[DONE]"
    assert ": keep-alive" not in response.text
    assert took < 0.9


def test_caller_who_leaves_mid_stream_closes_the_upstream_request(
    resilient: Gateway, faults: FaultyUpstream
) -> None:
    assert faults.hang_up_mid_stream(resilient.port, "leaver") < 3


# Fallbacks and the whole-call deadline.


@pytest.fixture(scope="module")
def pollinations_down() -> Iterator[FaultyUpstream]:
    fake = FaultyUpstream(always="status:503").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def with_fallback(
    start_module_gateway: Callable[..., Gateway], faults: FaultyUpstream, pollinations_down: FaultyUpstream
) -> Gateway:
    return start_module_gateway(
        POLLINATIONS_BASE_URL=pollinations_down.url,
        MAPLEAI_BASE_URL=faults.url,
        MAPLEAI_API_KEY=MAPLEAI_KEY,
        RATE_LIMIT_CHAT_ANONYMOUS="100000",
        **FAST_TIMEOUTS,
    )


def test_fallback_answers_when_the_first_provider_fails(
    with_fallback: Gateway, faults: FaultyUpstream, pollinations_down: FaultyUpstream
) -> None:
    response, took = timed(with_fallback, "fallback json", model="openai")
    assert response.status_code == 200
    assert response.headers["X-CloudGPT-Provider"] == "mapleai"
    assert response.json()["choices"][0]["message"]["content"] == "echo: fallback json"
    assert len(pollinations_down.received("fallback json")) == 3
    (sent,) = faults.received("fallback json")
    assert sent.body["model"] == "gpt-4o"
    assert took < 3


def test_fallback_answers_a_stream_too(with_fallback: Gateway) -> None:
    response, _ = timed(with_fallback, "fallback stream", model="claude", stream=True)
    assert response.headers["X-CloudGPT-Provider"] == "mapleai"
    assert sse_events(response.text)[-1] == "[DONE]"


def test_failure_of_every_provider_reports_the_first_one(with_fallback: Gateway) -> None:
    response, _ = timed(with_fallback, "status:503 everywhere", model="gemini")
    assert response.status_code == 502
    assert response.headers["X-CloudGPT-Provider"] == "pollinations"
    message = response.json()["error"]["message"]
    assert "Also tried, and failed: mapleai-gemini (mapleai):" in message  # what was tried, in order


def test_request_the_provider_rejects_is_not_sent_to_the_fallback(
    resilient: Gateway, faults: FaultyUpstream
) -> None:
    response, _ = timed(resilient, "status:400", model="openai")  # the fake Pollinations rejects it
    assert response.status_code == 400
    assert response.headers["X-CloudGPT-Provider"] == "pollinations"
    assert faults.received("status:400") == []


def test_stream_is_cut_at_the_whole_call_deadline(
    start_gateway: Callable[..., Gateway], faults: FaultyUpstream
) -> None:
    gateway = start_gateway(
        MAPLEAI_BASE_URL=faults.url, MAPLEAI_API_KEY=MAPLEAI_KEY, UPSTREAM_DEADLINE="1", **FAST_TIMEOUTS
    )
    response, took = timed(gateway, "drip:deadline", stream=True)
    error = json.loads(sse_events(response.text)[-1])["error"]
    assert error["code"] == "upstream_timeout" and "time limit" in error["message"]
    assert 0.9 < took < 2.5


def test_a_request_that_must_not_be_sent_twice_is_not_retried(faults: FaultyUpstream) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "status:503 single"}]}
    url = f"{faults.url}/v1/chat/completions"
    with pytest.raises(UpstreamError):
        open_response("mapleai", "POST", url, api_key=MAPLEAI_KEY, json_body=body, retries=0)
    assert len(faults.received("status:503 single")) == 1


def test_no_attempt_starts_once_the_deadline_has_passed(faults: FaultyUpstream) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "too late"}]}
    url = f"{faults.url}/v1/chat/completions"
    with pytest.raises(UpstreamTimeout):
        open_response("mapleai", "POST", url, api_key=MAPLEAI_KEY, json_body=body, deadline=Deadline.start(0))
    assert faults.received("too late") == []


def test_retry_settings_are_bounded() -> None:
    assert load({"UPSTREAM_RETRIES": "0"}).upstream_retries == 0
    with pytest.raises(SettingsError, match="UPSTREAM_RETRIES"):
        load({"UPSTREAM_RETRIES": "3"})
