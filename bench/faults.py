"""What a caller sees when a provider fails, and how long it takes, on loopback.

Starts the fault-injecting fake MapleAI (tests/fakes/faults.py), a fake Pollinations
that is down (503 every time) and the local server, then sends each fault scenario
a few times and prints one table row per scenario: the outcome the caller saw and
the time to the end of the answer (median and max).

Settings are short so the run takes under a minute; each row's bound says how the
time follows from them, so it scales to the defaults (first byte 120 s, silence
25 s, backoff base 0.5 s, Retry-After honoured up to 10 s, keep-alive 15 s).

    .venv/bin/python bench/faults.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import Gateway  # noqa: E402
from tests.fakes.faults import FaultyUpstream  # noqa: E402

SETTINGS = {
    "UPSTREAM_CONNECT_TIMEOUT": "1",
    "UPSTREAM_FIRST_BYTE_TIMEOUT": "2",
    "UPSTREAM_READ_TIMEOUT": "1",
    "UPSTREAM_BACKOFF": "0.25",
    "UPSTREAM_RETRY_AFTER_CAP": "2",
    "STREAM_KEEPALIVE_INTERVAL": "0.5",
    "UPSTREAM_DEADLINE": "4",
}

# (scenario, model, message, stream, bound in terms of the settings)
SCENARIOS = [
    (
        "429 without Retry-After",
        "mapleai-gpt4o",
        "status:429",
        False,
        "2 backoffs: 0.25 s, 0.5 s, each jittered to 50-100 %",
    ),
    ("429 with Retry-After: 1", "mapleai-gpt4o", "retry-after:1", False, "2 x Retry-After (1 s, cap 2 s)"),
    ("429 with Retry-After: 30", "mapleai-gpt4o", "retry-after:30", False, "no retry: past the 2 s cap"),
    ("500 once, then success", "mapleai-gpt4o", "once:500", False, "1 backoff: 0.25 s jittered"),
    ("503 every time", "mapleai-gpt4o", "status:503", False, "2 backoffs"),
    ("connection reset", "mapleai-gpt4o", "reset", False, "2 backoffs"),
    ("no answer at all", "mapleai-gpt4o", "silent", False, "first-byte timeout (2 s), no retry"),
    ("slow first byte (1 s)", "mapleai-gpt4o", "slow:1", False, "the provider's 1 s"),
    ("slow first token, stream (1.5 s)", "mapleai-gpt4o", "slowfirst:1.5", True, "keep-alive every 0.5 s"),
    ("first token never comes, stream", "mapleai-gpt4o", "slowfirst:10", True, "first-byte timeout (2 s)"),
    ("stream cut mid-way", "mapleai-gpt4o", "cut", True, "immediate"),
    ("stream stalls", "mapleai-gpt4o", "stall", True, "silence timeout (1 s)"),
    ("malformed chunk", "mapleai-gpt4o", "malformed", True, "immediate"),
    ("missing [DONE]", "mapleai-gpt4o", "nodone", True, "immediate"),
    ("stream longer than the deadline", "mapleai-gpt4o", "drip:bench", True, "whole-call deadline (4 s)"),
    ("upstream 400", "mapleai-gpt4o", "status:400", False, "immediate, never retried"),
    ("upstream 401", "mapleai-gpt4o", "status:401", False, "immediate, never retried"),
    ("upstream 402", "mapleai-gpt4o", "status:402", False, "immediate, never retried"),
    ("fallback: Pollinations 503, MapleAI answers", "openai", "fallback", False, "2 backoffs, then MapleAI"),
]


def run(client: httpx.Client, model: str, content: str, stream: bool) -> tuple[str, float]:
    """The outcome as a caller reads it, and the seconds to the end of the answer."""
    body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream}
    started = time.monotonic()
    response = client.post("/api/chat", json=body)
    took = time.monotonic() - started
    provider = response.headers.get("X-CloudGPT-Provider", "-")
    if response.headers["Content-Type"].startswith("application/json"):
        data = response.json()
        what = data["error"]["code"] if "error" in data else "completion"
        retry = (
            f", Retry-After {response.headers['Retry-After']}" if "Retry-After" in response.headers else ""
        )
        return f"{response.status_code} {what}{retry} ({provider})", took
    keepalives = response.text.split("data: ", 1)[0].count(": keep-alive")
    last = [e for e in response.text.split("\n\n") if e.startswith("data: ")][-1][6:]
    end = "[DONE]" if last == "[DONE]" else "error event " + json.loads(last)["error"]["code"]
    ticks = f", {keepalives} keep-alives" if keepalives else ""
    return f"200 stream{ticks}, {end} ({provider})", took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario")
    args = parser.parse_args()
    faults, down = FaultyUpstream().start(), FaultyUpstream(always="status:503").start()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("POLLINATIONS_", "MAPLEAI_", "UPSTREAM_"))
            },
            "POLLINATIONS_BASE_URL": down.url,
            "MAPLEAI_BASE_URL": faults.url,
            "MAPLEAI_API_KEY": "bench",
            "CLOUDGPT_DATA_DIR": data_dir,
            "RATE_LIMIT_CHAT_ANONYMOUS": "1000000000",
            **SETTINGS,
        }
        gateway = Gateway(env)
        try:
            print("settings: " + ", ".join(f"{k}={v}" for k, v in SETTINGS.items()))
            print(
                f"{args.repeat} runs per scenario, {os.cpu_count()} cores, loopback; times to the end of the answer"
            )
            print()
            print("| scenario | outcome the caller sees | median s | max s | bound |")
            print("|---|---|---|---|---|")
            with httpx.Client(base_url=gateway.url, timeout=30) as client:
                for scenario, model, marker, stream, bound in SCENARIOS:
                    outcomes, times = set(), []
                    for attempt in range(args.repeat):
                        content = (
                            f"{marker}-{attempt}" if marker.startswith("drip:") else f"{marker} {attempt}"
                        )
                        outcome, took = run(client, model, content, stream)
                        outcomes.add(outcome)
                        times.append(took)
                    print(
                        f"| {scenario} | {' / '.join(sorted(outcomes))} | "
                        f"{statistics.median(times):.3f} | {max(times):.3f} | {bound} |"
                    )
            closes = [faults.hang_up_mid_stream(gateway.port, f"leaver-{n}") for n in range(args.repeat)]
            print(
                f"| caller disconnects mid-stream | provider connection closed | "
                f"{statistics.median(closes):.3f} | {max(closes):.3f} | the next chunk relayed (50 ms apart) |"
            )
        finally:
            gateway.stop()
            faults.stop()
            down.stop()


if __name__ == "__main__":
    main()
