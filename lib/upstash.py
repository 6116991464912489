"""Upstash Redis' REST API: commands as a JSON array, answers as JSON, over the process's one pool.

Shared by the counters and the usage records. A call is one `POST` of a list of
commands to `/multi-exec` (one transaction) or `/pipeline` (in order, not atomic),
answered by one `{"result": ...}` or `{"error": ...}` per command (Upstash's docs:
Redis > Features > REST API). It goes over `lib/transport.py`'s keep-alive pool,
the one the providers and the key store use, with its one TLS context: a cold
instance's first request reaches Upstash without importing an HTTP library (the
`upstash-redis` client and its httpx stack cost ~140 ms of CPU on a cold
instance's first request, docs/design.md). Strings come back as Redis gives
them (no `Upstash-Encoding`): every value stored here is CloudGPT's own UTF-8.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from lib import transport
from lib.upstream import pool

Command = Sequence[str | int | float]
_ANSWER_LIMIT = 16 * 1024 * 1024  # a page of activity is a few hundred kB


class UpstashError(Exception):
    """No answer in time, or not the answer Upstash gives: the store cannot be used now."""


class Upstash:
    """One database's REST endpoint; every call bounded as a whole by `timeout` seconds."""

    def __init__(self, url: str, token: str, timeout: float) -> None:
        self._url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._timeout = timeout

    def transaction(self, commands: Sequence[Command]) -> list[Any]:
        """The commands run atomically (MULTI/EXEC); each one's result."""
        return self._call("/multi-exec", commands)

    def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """The commands run in order, each on its own; each one's result."""
        return self._call("/pipeline", commands)

    def _call(self, path: str, commands: Sequence[Command]) -> list[Any]:
        answer = self._post(path, json.dumps(commands, separators=(",", ":")).encode())
        # A transaction Redis discards as a whole is one error object; otherwise one entry per command.
        if not isinstance(answer, list) or len(answer) != len(commands):
            raise UpstashError(f"Upstash answered {_shape(answer)} for {len(commands)} commands")
        results = []
        for entry in answer:
            if not isinstance(entry, dict) or "result" not in entry:
                raise UpstashError(f"a command failed: {_shape(entry)}")
            results.append(entry["result"])
        return results

    def _post(self, path: str, body: bytes) -> Any:
        """The JSON answer to one POST, the whole exchange within the timeout; UpstashError otherwise."""
        deadline = time.monotonic() + self._timeout
        try:
            response = pool().request(
                "POST",
                self._url + path,
                headers=self._headers,
                body=body,
                connect_timeout=self._timeout / 2,  # leaves at least half for the rest
                write_timeout=self._timeout / 2,
                first_byte_timeout=self._timeout,
                until=deadline,
            )
            try:
                raw = bytearray()
                while data := response.read(max(deadline - time.monotonic(), 0.001)):
                    raw += data
                    if len(raw) > _ANSWER_LIMIT:
                        raise UpstashError("the answer is too large")
            finally:
                response.close()
        except transport.TransportError as error:
            raise UpstashError(f"no answer: {error}") from error
        try:
            answer = json.loads(raw)
        except ValueError:
            raise UpstashError(f"a {response.status_code} answer that is not JSON") from None
        if response.status_code != 200:
            raise UpstashError(f"{response.status_code}: {_shape(answer)}")
        return answer


def _shape(answer: object) -> str:
    """What an unexpected answer was, for the log: an error's text, else its type (never the data)."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return repr(answer["error"][:200])
    return type(answer).__name__
