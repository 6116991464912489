"""What a function's cold import leaves for later: each part loads when a request first needs it.

bench/cold_start.py measures the time in Vercel's runtime; these tests keep the
import path from growing back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEFERRED = (
    "pydantic.main",
    "lib.schemas",
    "lib.providers.pollinations",
    "lib.providers.mapleai",
    "lib.media",
    "httpx",
    "httptools",
)


def loaded_after(code: str, tmp_path: Path) -> list[str]:
    """Which of DEFERRED are imported after running `code` in a fresh interpreter."""
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {DEFERRED!r} if m in sys.modules))"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("VERCEL", "RATE_LIMIT_"))}
    env |= {
        "CLOUDGPT_DATA_DIR": str(tmp_path),
        "POLLINATIONS_BASE_URL": "http://127.0.0.1:9",
        "UPSTREAM_BACKOFF": "0.01",
    }
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().split()


@pytest.mark.parametrize(
    "module", ["api.chat", "api.image", "api.video", "api.keys.index", "api.models.index", "api.models.chat"]
)
def test_a_cold_import_loads_no_request_model_no_provider_and_no_http_library(
    module: str, tmp_path: Path
) -> None:
    assert loaded_after(f"import importlib; importlib.import_module({module!r})", tmp_path) == []


def test_the_first_request_loads_the_request_models_and_only_its_providers_adapter(tmp_path: Path) -> None:
    # A chat for a Pollinations model: the provider is unreachable (a 502), but by then
    # the body was validated and the adapter asked.
    code = """
import io, json, importlib
app = importlib.import_module("api.chat").app
body = json.dumps({"model": "openai-fast", "messages": [{"role": "user", "content": "hi"}]}).encode()
environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/chat", "CONTENT_LENGTH": str(len(body)),
           "CONTENT_TYPE": "application/json", "wsgi.input": io.BytesIO(body), "REMOTE_ADDR": "127.0.0.1"}
statuses = []
b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
assert statuses[0].startswith("502"), statuses
"""
    loaded = loaded_after(code, tmp_path)
    assert {"pydantic.main", "lib.schemas", "lib.providers.pollinations"} <= set(loaded)
    assert "lib.providers.mapleai" not in loaded
    assert "httpx" not in loaded  # provider calls go through lib/transport.py
