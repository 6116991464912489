"""What the OpenAI-compatible surface costs, measured on loopback with the official `openai` SDK.

Starts a zero-delay fake Pollinations (in its own process) and the local server, then:

- the SDK's `chat.completions.create` pointed at the fake directly and at CloudGPT's /v1;
- the same request to /api/chat and to /v1/chat/completions (what the rewrite costs);
- `images.generate` (base64 JSON) against /api/image (raw bytes) for a 1 MiB image;
- GET /api/openapi.json: the cold import and first build of the document, then warm answers.

    .venv/bin/python bench/sdk.py --requests 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import httpx
import openai
from gateway import ROOT, p50_p99, post, sample, start_upstream

from tests.api_fixtures import issue_key
from tests.conftest import Gateway
from tests.key_stores import JWT_SECRET

MESSAGES = [{"role": "user", "content": "Write a haiku about AI"}]
IMAGE_BYTES = 1024 * 1024


def row(name: str, samples: list[float], baseline: tuple[float, float] | None = None) -> tuple[float, float]:
    p50, p99 = p50_p99(samples)
    added = f"{p50 - baseline[0]:+9.2f} {p99 - baseline[1]:+9.2f}" if baseline else ""
    print(f"{name:<44} {p50:8.2f} {p99:8.2f} {added}")
    return p50, p99


def first_document_ms(rounds: int) -> list[float]:
    """Import api/openapi.py and build the document once, in fresh interpreters."""
    code = (
        "import sys, time; t = time.perf_counter(); sys.path.insert(0, '.');"
        "import importlib.util as u; s = u.spec_from_file_location('openapi', 'api/openapi.py');"
        "m = u.module_from_spec(s); s.loader.exec_module(m); m.document();"
        "print((time.perf_counter() - t) * 1000)"
    )
    return [
        float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=True).stdout)
        for _ in range(rounds)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="per sequential run")
    args = parser.parse_args()
    n = args.requests
    upstream_url, stop_upstream = start_upstream()
    with tempfile.TemporaryDirectory() as data_dir:
        unlimited = {
            f"RATE_LIMIT_{m}_{c}": "1000000000"
            for m in ("CHAT", "IMAGE")
            for c in ("ANONYMOUS", "AUTHENTICATED")
        }
        env = {
            **os.environ,
            "POLLINATIONS_BASE_URL": upstream_url,
            "POLLINATIONS_API_KEY": "bench",
            "CLOUDGPT_DATA_DIR": data_dir,
            "SUPABASE_JWT_SECRET": JWT_SECRET,
            **unlimited,
        }
        gateway = Gateway(env)
        try:
            print(f"latency in ms, loopback, {os.cpu_count()} cores")
            print(f"{'':<44} {'p50':>8} {'p99':>8} {'added p50':>9} {'p99':>9}")
            key = issue_key(gateway)
            with (
                openai.OpenAI(base_url=f"{upstream_url}/v1", api_key="bench", max_retries=0) as direct,
                openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as cloudgpt,
                httpx.Client(
                    base_url=gateway.url, timeout=30, headers={"Authorization": f"Bearer {key}"}
                ) as client,
            ):

                def create(sdk: openai.OpenAI):
                    return lambda: sdk.chat.completions.create(model="openai", messages=MESSAGES)

                base = row("SDK chat.completions.create, direct", sample(create(direct), n))
                row("SDK chat.completions.create, CloudGPT /v1", sample(create(cloudgpt), n), base)
                api = row("httpx POST /api/chat", sample(post(client, "/api/chat"), n))
                row(
                    "httpx POST /v1/chat/completions (rewrite)",
                    sample(post(client, "/v1/chat/completions"), n),
                    api,
                )

                prompt = f"big:{IMAGE_BYTES}"
                rounds = max(50, n // 10)

                def raw_image():
                    response = client.post("/api/image", json={"model": "flux", "prompt": prompt})
                    assert len(response.content) == IMAGE_BYTES

                def b64_image():
                    image = cloudgpt.images.generate(model="flux", prompt=prompt)
                    assert len(image.data[0].b64_json) == 4 * -(-IMAGE_BYTES // 3)

                raw = row("1 MiB image, POST /api/image (bytes)", sample(raw_image, rounds))
                row("1 MiB image, SDK images.generate (b64_json)", sample(b64_image, rounds), raw)
                row("GET /api/openapi.json, warm", sample(lambda: client.get("/api/openapi.json"), n))
        finally:
            gateway.stop()
            stop_upstream()
    firsts = first_document_ms(15)
    print(
        f"cold import of api/openapi.py and first document build: median {statistics.median(firsts):.1f} ms, "
        f"max {max(firsts):.1f} ms over 15 fresh interpreters"
    )


if __name__ == "__main__":
    main()
