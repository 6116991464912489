"""Activity entries and GET /api/activity, on both backends (SQLite, and Upstash through its emulator).

Entries are written after the answer was sent, with the usage record, so the tests read
them back with `eventually`.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from lib.breaker import Breaker
from lib.usage import ACTIVITY_COLUMNS, ACTIVITY_DAYS, ACTIVITY_KEPT, Entry, today
from lib.usage.query import ActivityQuery
from lib.usage.sqlite import SqliteUsage
from lib.usage.upstash import UpstashUsage
from tests.api_fixtures import UNLIMITED
from tests.conftest import Gateway
from tests.fakes.mapleai import FakeMapleAI
from tests.fakes.openai_chat import STREAM_USAGE, USAGE
from tests.fakes.upstash import UpstashEmulator
from tests.key_stores import JWT_SECRET
from tests.mapleai_fixtures import MAPLEAI_KEY
from tests.test_usage import Account, each_is_a_400_naming_it, eventually
from tests.upstash_fixtures import UPSTASH_TOKEN, upstash_env


class User(Account):
    """An account that reads its activity."""

    def activity(self, query: str = "", credentials: dict[str, str] | None = None) -> httpx.Response:
        return self.gateway.client.get(f"/api/activity{query}", headers=credentials or self.token)

    def entries(self, count: int, query: str = "") -> list[dict[str, Any]]:
        """The activity's entries, once there are `count` of them."""
        return eventually(lambda: self.activity(query).json()["data"], lambda data: len(data) >= count)

    def post(self, path: str, body: dict[str, Any], auth: dict[str, str] | None = None) -> httpx.Response:
        return self.gateway.client.post(path, json=body, headers=auth or self.auth)


@pytest.fixture(scope="module")
def gateways(
    start_module_gateway: Callable[..., Gateway], upstash_emulator: UpstashEmulator, mapleai: FakeMapleAI
) -> dict[str, Gateway]:
    """One gateway per backend, MapleAI behind Pollinations' models; every test has its own user."""
    common = {
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        "MAPLEAI_BASE_URL": mapleai.url,
        "MAPLEAI_API_KEY": MAPLEAI_KEY,
        "UPSTREAM_BACKOFF": "0.01",
        **UNLIMITED,
    }
    return {
        name: start_module_gateway(**env, **common)
        for name, env in (("sqlite", {}), ("upstash", upstash_env(upstash_emulator.url)))
    }


@pytest.fixture(params=["sqlite", "upstash"])
def gateway_on(request: pytest.FixtureRequest, gateways: dict[str, Gateway]) -> Gateway:
    return gateways[request.param]


def _chat(content: str, model: str = "openai", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **fields}


def test_each_answer_has_its_entry_with_provider_status_timing_and_tokens(gateway_on: Gateway) -> None:
    user = User(gateway_on)
    answers = {
        "plain": user.post("/api/chat", _chat("hello")),
        "stream": user.post("/api/chat", _chat("hello", stream=True, stream_options={"include_usage": True})),
        "fallback": user.post("/api/chat", _chat("status:503 to maple")),
        "failure": user.post("/api/chat", _chat("status:500", model="mistral")),
        "broken stream": user.post("/api/chat", _chat("errorevent", model="mistral", stream=True)),
        "image": user.post("/api/image", {"model": "flux", "prompt": "a cat"}),
    }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {name: 502 if name == "failure" else 200 for name in answers}
    entries = {entry["id"]: entry for entry in user.entries(len(answers))}
    got = {name: entries[answer.headers["X-Request-Id"]] for name, answer in answers.items()}
    assert list(entries) == [answer.headers["X-Request-Id"] for answer in reversed(answers.values())]

    for name, entry in got.items():
        assert list(entry) == list(ACTIVITY_COLUMNS), name
        assert entry["keyId"] == user.key_id
        assert entry["latencyMs"] >= entry["firstByteMs"] > 0, name
        assert abs(entry["time"] - time.time() * 1000) < 60_000
    assert got["plain"] == {
        **got["plain"], "model": "openai", "modality": "chat", "provider": "pollinations", "status": 200,
        "error": None, "stream": False, "fallback": False,
        "promptTokens": USAGE["prompt_tokens"], "completionTokens": USAGE["completion_tokens"],
    }  # fmt: skip
    assert got["stream"] == {
        **got["stream"], "provider": "pollinations", "status": 200, "error": None, "stream": True,
        "promptTokens": STREAM_USAGE["prompt_tokens"], "completionTokens": STREAM_USAGE["completion_tokens"],
    }  # fmt: skip
    assert answers["fallback"].headers["X-CloudGPT-Provider"] == "mapleai"
    assert got["fallback"] == {
        **got["fallback"], "model": "openai", "provider": "mapleai", "fallback": True, "status": 200, "error": None,
    }  # fmt: skip
    code = answers["failure"].json()["error"]["code"]
    assert got["failure"] == {
        **got["failure"], "model": "mistral", "provider": "pollinations", "status": 502, "error": code,
        "fallback": False, "promptTokens": 0,
    }  # fmt: skip
    last_event = json.loads(answers["broken stream"].text.split("data: ")[-1])
    assert got["broken stream"] == {
        **got["broken stream"], "status": 200, "error": last_event["error"]["code"], "stream": True,
    }  # fmt: skip
    assert got["image"] == {
        **got["image"], "model": "flux", "modality": "image", "provider": "pollinations", "images": 1,
        "status": 200, "error": None, "stream": False,
    }  # fmt: skip
    stored = "".join(json.dumps(entry) for entry in entries.values())
    assert "hello" not in stored and "a cat" not in stored and "cgpt_" not in stored

    usage = user.usage().json()["totals"]
    for name in ("promptTokens", "completionTokens", "images"):
        assert usage[name] == sum(entry[name] for entry in entries.values()), name
    assert usage["requests"] == len(entries)
    assert usage["errors"] == sum(entry["error"] is not None for entry in entries.values()) == 2


def test_filters_and_pages_pick_entries_and_csv_holds_them(gateway_on: Gateway) -> None:
    user = User(gateway_on)
    other_id, other_key = user.new_key()
    other = {"Authorization": f"Bearer {other_key}"}
    sent = [
        user.post("/api/chat", _chat("one")),
        user.post("/api/chat", _chat("two", model="mistral")),
        user.post("/api/chat", _chat("status:500", model="mistral")),
        user.post("/api/chat", _chat("four"), auth=other),
        user.post("/api/chat", _chat("five"), auth=other),
    ]
    ids = [answer.headers["X-Request-Id"] for answer in reversed(sent)]  # newest first
    assert [entry["id"] for entry in user.entries(5)] == ids

    def listed(query: str) -> tuple[list[str], bool]:
        page = user.activity(query)
        assert page.status_code == 200, page.text
        assert page.json()["object"] == "list"
        return [entry["id"] for entry in page.json()["data"]], page.json()["hasMore"]

    assert listed(f"?keyId={other_id}") == (ids[:2], False)
    assert listed(f"?keyId={user.key_id}&model=mistral") == (ids[2:4], False)
    assert listed("?status=error") == ([ids[2]], False)
    assert listed("?status=ok&model=openai") == ([ids[0], ids[1], ids[4]], False)
    assert listed("?limit=2") == (ids[:2], True)
    assert listed(f"?limit=2&before={ids[1]}") == (ids[2:4], True)
    assert listed(f"?limit=2&before={ids[3]}") == (ids[4:], False)
    assert listed(f"?before={ids[0]}&status=ok") == ([ids[1], ids[3], ids[4]], False)

    download = user.activity("?format=csv")
    assert download.status_code == 200
    assert download.headers["Content-Type"].startswith("text/csv")
    assert 'filename="activity.csv"' in download.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert list(rows[0]) == list(ACTIVITY_COLUMNS)
    assert [row["id"] for row in rows] == ids
    assert rows[2]["status"] == "502" and rows[2]["error"] and rows[0]["stream"] == "false"
    assert (
        rows[0]["time"].startswith(time.strftime("%Y-%m-%dT", time.gmtime())) and rows[0]["time"][-1] == "Z"
    )
    assert [
        row["id"] for row in csv.DictReader(io.StringIO(user.activity("?format=csv&limit=1").text))
    ] == ids[:1]

    usage_csv = user.usage("?format=csv")
    assert usage_csv.headers["Content-Type"].startswith("text/csv")
    usage_rows = list(csv.DictReader(io.StringIO(usage_csv.text)))
    assert [(row["keyId"], row["model"], row["requests"]) for row in usage_rows] == [
        (row["keyId"], row["model"], str(row["requests"])) for row in user.usage().json()["data"]
    ]
    assert sum(int(row["requests"]) for row in usage_rows) == 5


def test_another_user_sees_none_of_it_and_a_key_reads_its_own_users(gateway_on: Gateway) -> None:
    mine, theirs = User(gateway_on), User(gateway_on)
    answer = theirs.post("/api/chat", _chat("secret"))
    their_id = answer.headers["X-Request-Id"]
    assert [entry["id"] for entry in theirs.entries(1)] == [their_id]
    read_with_key = theirs.activity(credentials=theirs.auth)
    assert [entry["id"] for entry in read_with_key.json()["data"]] == [their_id]

    assert mine.activity().json() == {"object": "list", "data": [], "hasMore": False}
    assert mine.activity(f"?keyId={theirs.key_id}").json()["data"] == []
    assert mine.activity("?format=csv").text.splitlines() == [",".join(ACTIVITY_COLUMNS)]
    stolen = mine.activity(f"?before={their_id}")
    assert stolen.status_code == 400 and stolen.json()["error"]["param"] == "before"


def test_an_error_envelope_carries_the_request_id_its_entry_has(gateways: dict[str, Gateway]) -> None:
    user = User(gateways["sqlite"])
    failed = user.post("/api/chat", _chat("status:500", model="mistral"))
    assert failed.status_code == 502
    request_id = failed.headers["X-Request-Id"]
    assert failed.json()["error"]["requestId"] == request_id
    assert user.entries(1)[0]["id"] == request_id
    unrouted = gateways["sqlite"].client.get("/api/nowhere")
    assert unrouted.json()["error"]["requestId"] == unrouted.headers["X-Request-Id"]


def test_anonymous_traffic_leaves_no_entry(gateway_on: Gateway) -> None:
    user = User(gateway_on)
    anonymous = gateway_on.client.post("/api/chat", json=_chat("anonymous"))
    assert anonymous.status_code == 200
    assert user.post("/api/chat", _chat("mine")).status_code == 200
    assert [entry["id"] for entry in user.entries(1)] != [anonymous.headers["X-Request-Id"]]


BAD_QUERIES = (
    "limit=0",
    "limit=201",
    "limit=ten",
    "limit=",
    "before=nope",
    "before=req_123",
    "keyId=key_x",
    "model=",
    "model=<script>",
    "status=failed",
    "status=",
    "format=xml",
    "page=2",
)


def test_a_bad_query_is_a_400_naming_it_and_no_credentials_a_401(open_gateway: Gateway, api_key: str) -> None:
    each_is_a_400_naming_it(open_gateway, api_key, "/api/activity", BAD_QUERIES)
    unknown = open_gateway.client.get(
        f"/api/activity?before=req_{uuid.uuid4().hex[:24]}", headers={"Authorization": f"Bearer {api_key}"}
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "before"
    anonymous = open_gateway.client.get("/api/activity")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "missing_credentials"


def test_the_entry_is_written_in_the_usage_records_round_trip(
    start_gateway: Callable[..., Gateway], upstash: UpstashEmulator
) -> None:
    gateway = start_gateway(**upstash_env(upstash.url), SUPABASE_JWT_SECRET=JWT_SECRET, **UNLIMITED)
    user = User(gateway)
    assert user.post("/api/chat", _chat("warm up")).status_code == 200  # opens the instance's clients
    user.entries(1)
    upstash.reset()
    answer = user.post("/api/chat", _chat("counted"))
    assert answer.status_code == 200
    mine = eventually(
        lambda: [body for body in upstash.bodies if user.user.encode() in body],
        lambda bodies: any(b"HINCRBY" in body for body in bodies),
    )
    # The rate-limit check before the answer, then one transaction after it: the usage
    # record's counts and the activity entry together.
    assert [b"INCR" in body and b"HINCRBY" not in body for body in mine] == [True, False]
    assert b'"HINCRBY"' in mine[1] and b'"EVAL"' in mine[1]
    assert answer.headers["X-Request-Id"].encode() in mine[1]
    assert user.entries(2)[0]["id"] == answer.headers["X-Request-Id"]


def _old_entries(user: str, count: int, start_ms: int) -> list[Entry]:
    """`count` requests' records, a millisecond apart from `start_ms` on."""
    return [
        Entry(today(), user, "key_" + "a" * 20, "openai", "chat", {"requests": 1}, {
            "id": f"req_{n:024x}", "time": start_ms + n, "keyId": "key_" + "a" * 20, "model": "openai",
            "modality": "chat", "provider": "pollinations", "status": 200, "error": None, "latencyMs": 2,
            "firstByteMs": 1, "promptTokens": 0, "completionTokens": 0, "images": 0, "videoSeconds": 0,
            "stream": False, "fallback": False,
        })
        for n in range(count)
    ]  # fmt: skip


@pytest.mark.parametrize("on", ["sqlite", "upstash"])
def test_entries_past_seven_days_and_the_last_thousand_are_dropped_by_the_store(
    request: pytest.FixtureRequest, tmp_path: Path, on: str
) -> None:
    if on == "upstash":
        emulator = request.getfixturevalue("upstash")
        store: Any = UpstashUsage(emulator.url, UPSTASH_TOKEN, 10, Breaker(5, 1))
    else:
        store = SqliteUsage(tmp_path / "usage.sqlite3")
    now = int(time.time() * 1000)
    week_ago = now - ACTIVITY_DAYS * 86_400_000
    old, recent = str(uuid.uuid4()), str(uuid.uuid4())
    # One user with 1,200 entries older than a week keeps their last 1,000; another with
    # 1,200 entries of this week keeps them all, however many.
    store.add(_old_entries(old, 1200, week_ago - 10_000_000))
    store.add(_old_entries(recent, 1200, now - 10_000_000))
    if on == "sqlite":  # the embedded store sweeps once a day: a new process's first write does
        store = SqliteUsage(tmp_path / "usage.sqlite3")
        store.add(_old_entries(str(uuid.uuid4()), 1, now))
    kept_old, more = store.activity(old, ActivityQuery(limit=None))
    assert (len(kept_old), more) == (ACTIVITY_KEPT, False)
    assert kept_old[0]["id"] == f"req_{1199:024x}" and kept_old[-1]["id"] == f"req_{200:024x}"
    assert len(store.activity(recent, ActivityQuery(limit=None))[0]) == 1200
    page, more = store.activity(recent, ActivityQuery(limit=200, before=f"req_{300:024x}", status="ok"))
    assert (page[0]["id"], page[-1]["id"], more) == (f"req_{299:024x}", f"req_{100:024x}", True)
    if on == "upstash":
        with emulator.connection() as redis:
            assert 90 * 86_400 < redis.call("TTL", f"cgpt:activity:{old}") <= 100 * 86_400
            assert redis.call("HLEN", f"cgpt:activity:{old}:entries") == ACTIVITY_KEPT
