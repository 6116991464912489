"""Whose anonymous budget a request counts against: the address Vercel's runtime derives, per /64 for IPv6.

On Vercel only `REMOTE_ADDR` is trusted: the runtime sets it from the exact header
`x-forwarded-for` (which the platform overwrites), while any client header, however
spelled, lands in the environ as `HTTP_*`. The end-to-end tests run `api/chat.py`
under Vercel's own runtime (`vercel_runtime.vc_init`) with Upstash as on Vercel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from lib.identity import UNPARSABLE, address_bucket, client_ip
from lib.settings import settings
from lib.web import Request
from tests.conftest import gateway_env
from tests.fakes.pollinations import FakePollinations
from tests.fakes.upstash import UpstashEmulator
from tests.test_limits import BODY, inside_one_window
from tests.upstash_fixtures import upstash_env
from tests.vercel_runtime import VercelFunction


@pytest.fixture
def on_vercel(
    upstream: FakePollinations, upstash: UpstashEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., VercelFunction]]:
    """Start api/chat.py under Vercel's runtime with VERCEL=1 and Upstash; keyword arguments add variables."""
    started: list[VercelFunction] = []

    def start(**overrides: str) -> VercelFunction:
        env = gateway_env(
            upstream, tmp_path_factory.mktemp("data"), VERCEL="1", **upstash_env(upstash.url), **overrides
        )
        started.append(VercelFunction.from_source("api/chat.py", env))
        return started[-1]

    yield start
    for function in started:
        function.stop()


def counted_buckets(upstash: UpstashEmulator) -> list[str]:
    with upstash.connection() as redis:
        keys = redis.call("KEYS", "cgpt:rl:chat:anonymous:*")
    return sorted(key.decode().removeprefix("cgpt:rl:chat:anonymous:").rsplit(":", 1)[0] for key in keys)


def test_client_headers_in_any_spelling_do_not_pick_the_bucket_on_vercel(
    on_vercel: Callable[..., VercelFunction], upstash: UpstashEmulator
) -> None:
    function = on_vercel(RATE_LIMIT_CHAT_ANONYMOUS="10")
    inside_one_window(10)
    statuses = []
    for i in range(14):  # one real client, each request claiming another address
        spelling = ("X_Real_Ip", "X-Real-Ip", "X_Forwarded_For", "x_real_ip")[i % 4]
        headers = {"X-Forwarded-For": "203.0.113.7", spelling: f"198.51.100.{i}"}
        statuses.append(function.client.post("/api/chat", json=BODY, headers=headers).status_code)
    assert statuses == [200] * 10 + [429] * 4
    assert counted_buckets(upstash) == ["203.0.113.7"]


def test_thirty_addresses_of_one_ipv6_64_share_one_budget(
    on_vercel: Callable[..., VercelFunction], upstash: UpstashEmulator
) -> None:
    function = on_vercel(RATE_LIMIT_CHAT_ANONYMOUS="10")
    inside_one_window(10)
    statuses = [
        function.client.post(
            "/api/chat", json=BODY, headers={"X-Forwarded-For": f"2001:db8:1:2::{i:x}"}
        ).status_code
        for i in range(1, 31)
    ]
    assert statuses.count(200) == 10 and statuses.count(429) == 20
    other = function.client.post("/api/chat", json=BODY, headers={"X-Forwarded-For": "2001:db8:1:3::1"})
    assert other.status_code == 200  # the next /64 is another client
    assert counted_buckets(upstash) == ["2001:db8:1:2::/64", "2001:db8:1:3::/64"]


def test_an_address_that_is_not_an_address_is_bucketed_not_a_500(
    on_vercel: Callable[..., VercelFunction], upstash: UpstashEmulator
) -> None:
    function = on_vercel(RATE_LIMIT_CHAT_ANONYMOUS="2")
    inside_one_window(10)
    garbage = ["not-an-ip", "999.1.1.1", "<script>", "::ffff:zz", "a" * 300]
    statuses = [
        function.client.post("/api/chat", json=BODY, headers={"X-Forwarded-For": value}).status_code
        for value in garbage
    ]
    assert statuses == [200, 200, 429, 429, 429]  # all garbage shares one budget
    assert counted_buckets(upstash) == [UNPARSABLE]


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),  # IPv4-mapped IPv6 counts as IPv4
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2::1]", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("", UNPARSABLE),
        ("unknown", UNPARSABLE),
    ],
)
def test_addresses_are_bucketed_ipv4_whole_and_ipv6_per_64(address: str, bucket: str) -> None:
    assert address_bucket(address) == bucket


@pytest.mark.parametrize(
    ("vercel", "environ", "expected"),
    [
        ("1", {"HTTP_X_REAL_IP": "198.51.100.1", "HTTP_X_FORWARDED_FOR": "198.51.100.2"}, "192.0.2.10"),
        ("1", {"REMOTE_ADDR": " 203.0.113.7 , 10.0.0.1"}, "203.0.113.7"),
        ("", {"REMOTE_ADDR": "192.0.2.10, 10.0.0.1"}, "192.0.2.10, 10.0.0.1"),
    ],
)
def test_only_remote_addr_names_the_client(
    monkeypatch: pytest.MonkeyPatch, vercel: str, environ: dict[str, str], expected: str
) -> None:
    monkeypatch.setenv("VERCEL", vercel)
    settings.cache_clear()
    try:
        assert client_ip(Request({"REMOTE_ADDR": "192.0.2.10", **environ})) == expected
    finally:
        monkeypatch.undo()
        settings.cache_clear()
