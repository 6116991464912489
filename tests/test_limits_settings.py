"""The limiter's settings, and the Upstash client kept out of a cold start that does not use it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib.settings import SettingsError, load
from tests.conftest import ROOT


def test_failure_mode_defaults_to_open_and_timeout_to_half_a_second() -> None:
    current = load({})
    assert current.rate_limit_failure_mode == "open"
    assert current.upstash_redis_timeout == 0.5
    assert load({"RATE_LIMIT_FAILURE_MODE": "Closed"}).rate_limit_failure_mode == "closed"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RATE_LIMIT_FAILURE_MODE": "ajar"}, "RATE_LIMIT_FAILURE_MODE"),
        ({"UPSTASH_REDIS_TIMEOUT": "0"}, "UPSTASH_REDIS_TIMEOUT"),
        ({"UPSTASH_REDIS_REST_URL": "https://example.upstash.io"}, "UPSTASH_REDIS_REST_TOKEN"),
        ({"UPSTASH_REDIS_REST_TOKEN": "secret-token"}, "UPSTASH_REDIS_REST_URL"),
        (
            {"UPSTASH_REDIS_REST_URL": "example.upstash.io", "UPSTASH_REDIS_REST_TOKEN": "secret-token"},
            "UPSTASH_REDIS_REST_URL",
        ),
    ],
)
def test_unusable_limiter_settings_are_refused_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load(env)
    assert named in raised.value.message
    assert "secret-token" not in raised.value.message


@pytest.mark.parametrize(
    ("env", "imported"),
    [({}, False), ({"UPSTASH_REDIS_REST_URL": "http://127.0.0.1:9", "UPSTASH_REDIS_REST_TOKEN": "t"}, True)],
)
def test_the_upstash_client_is_imported_only_when_configured_and_brings_no_http_library(
    tmp_path: Path, env: dict[str, str], imported: bool
) -> None:
    code = (
        "import sys, api.chat\n"
        "from lib.caller import Caller\n"
        "from lib.limits import enforce\n"
        "assert 'lib.upstash' not in sys.modules  # a cold import never pays for it\n"
        "enforce(Caller('anonymous', '127.0.0.1'), 'chat')\n"
        "assert 'httpx' not in sys.modules  # Upstash is called over the providers' pool\n"
        "print('lib.upstash' in sys.modules)\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("UPSTASH_", "RATE_LIMIT_", "VERCEL"))}
    env = {**clean, **env, "CLOUDGPT_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.strip() == str(imported).encode()
