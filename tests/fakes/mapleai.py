"""A fake MapleAI on loopback: its endpoints, as `reference/mapleai-endpoints.json` has them.

    POST /v1/chat/completions                   an echo of the last message, as JSON or SSE
    POST /v1/images/generations                 {"created", "data": [{"b64_json"} | {"url"}]}
    POST /v1/video/generations                  a job: {"id", "object", "status": "queued", ...}
    GET  /v1/video/generations/{id}             the job; each poll moves it one step on
    POST /v1/video/generations/{id}/cancel      {"id", "status": "cancelled"}
    GET  /v1/video/generations/{id}/download    the clip, `video/mp4`

Every `/v1` call needs `Authorization: Bearer <key>`. The prompt picks the behaviour:

    images   "url" (a link to this server), "foreignurl" (a link to the same server by
             another host name), "link:URL" (that link), "urlbig:N" (a link to N bytes), "urlhtml" (a link to
             an HTML page), "notbase64", "notimage", "empty", "html", "status:N";
             anything else: a PNG as `b64_json`
    videos   "fail" (queued, processing, failed with a reason), "cancelled", "never"
             (processing for ever), "weird" (a status not in the reference),
             "big:N" (completes, then N bytes), "downloadhtml", "status:N";
             anything else: queued, processing, completed, then a small MP4
"""

from __future__ import annotations

import base64
import itertools
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes import files
from tests.fakes.openai_chat import completion, event, last_content, usage_event, wants_usage
from tests.fakes.pollinations import Recorded
from tests.fakes.server import FakeHandler, LoopbackFake

REASON = "The prompt was flagged by the content policy."


@dataclass
class Job:
    id: str
    prompt: str
    body: dict[str, Any]
    steps: list[str]
    polls: int = 0
    cancelled: bool = False
    created_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def status(self) -> str:
        if self.cancelled:
            return "cancelled"
        return self.steps[min(self.polls, len(self.steps) - 1)]

    def public(self) -> dict[str, Any]:
        answer = {
            "id": self.id,
            "object": "video",
            "model": self.body.get("model"),
            "status": self.status,
            "progress": 100 if self.status == "completed" else 10 * self.polls % 100,
            "created_at": self.created_at,
            "size": self.body.get("size"),
            "seconds": self.body.get("seconds"),
            "provider": "fake",
        }
        if self.status == "failed":
            answer["error"] = {"code": "content_policy", "message": REASON}
        return answer


_STEPS = {
    "fail": ["queued", "processing", "failed"],
    "cancelled": ["queued", "cancelled"],
    "never": ["queued", "processing"],
    "weird": ["queued", "exploded"],
}


class FakeMapleAI(LoopbackFake):
    def __init__(self, key: str) -> None:
        self.key = key
        self.requests: list[Recorded] = []
        self.jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        super().__init__(_handler(self))

    def job(self, prompt: str) -> Job:
        """The latest job created for `prompt`."""
        return next(job for job in reversed(self.jobs.values()) if job.prompt == prompt)

    def received(self, path: str) -> list[Recorded]:
        return [request for request in self.requests if request.path == path]


def _handler(fake: FakeMapleAI) -> type[BaseHTTPRequestHandler]:
    class Handler(FakeHandler):
        def _error(self, status: int, message: str) -> None:
            self.send_json(status, {"error": {"message": message, "type": "error", "code": status}})

        def _record(self) -> Any:
            body = self.read_json()
            fake.requests.append(Recorded(self.command, self.path, dict(self.headers.items()), body))
            return body

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {fake.key}":
                return True
            self._error(401, "Invalid API key")
            return False

        def do_POST(self) -> None:
            body = self._record()
            if not self._authorized():
                return
            parts = self.path.strip("/").split("/")
            if self.path == "/v1/chat/completions":
                self._chat(body)
            elif self.path == "/v1/images/generations":
                self._image(body)
            elif self.path == "/v1/video/generations":
                self._create(body)
            elif parts[:3] == ["v1", "video", "generations"] and parts[4:] == ["cancel"]:
                job = fake.jobs.get(parts[3])
                if job is None:
                    self._error(404, "No such video")
                    return
                job.cancelled = True
                self.send_json(200, {"id": job.id, "status": "cancelled"})
            else:
                self._error(404, "Not found")

        def do_GET(self) -> None:
            self._record()
            parts = self.path.strip("/").split("/")
            if parts[0] == "files":
                self._file(parts[1:])
                return
            if not self._authorized():
                return
            job = fake.jobs.get(parts[3]) if parts[:3] == ["v1", "video", "generations"] else None
            if job is None:
                self._error(404, "No such video")
            elif parts[4:] == ["download"]:
                self._download(job)
            elif not parts[4:]:
                job.polls += 1
                self.send_json(200, job.public())
            else:
                self._error(404, "Not found")

        def _chat(self, body: dict[str, Any]) -> None:
            model, text = body.get("model", ""), f"echo: {last_content(body)}"
            if not body.get("stream"):
                self.send_json(200, completion("chatcmpl-maple", model, text))
                return
            usage = wants_usage(body)
            deltas = [{"role": "assistant", "content": ""}, {"content": text}]
            events = [event("chatcmpl-maple", model, delta, usage=usage) for delta in deltas]
            events.append(event("chatcmpl-maple", model, {}, "stop", usage=usage))
            events += [usage_event("chatcmpl-maple", model)] if usage else []
            events.append(b"data: [DONE]\n\n")
            self.send(200, b"".join(events), "text/event-stream")

        def _image(self, body: dict[str, Any]) -> None:
            verb, _, argument = str(body.get("prompt")).partition(":")
            own = f"http://127.0.0.1:{fake.port}/files"
            items = {
                "url": [{"url": f"{own}/image.png"}],
                "foreignurl": [{"url": f"http://localhost:{fake.port}/files/image.png"}],
                "link": [{"url": argument}],
                "urlbig": [{"url": f"{own}/big/{argument}"}],
                "urlhtml": [{"url": f"{own}/page.html"}],
                "notbase64": [{"b64_json": "!!not base64!!"}],
                "notimage": [{"b64_json": base64.b64encode(b"plain text, not an image").decode()}],
                "empty": [],
            }
            if verb == "status":
                self._error(int(argument), f"fake upstream error {argument}")
            elif verb == "html":
                files.send_bytes(self, "text/html", b"<html><body>Bad gateway</body></html>")
            else:
                data = items.get(verb, [{"b64_json": base64.b64encode(files.png(2, 2)).decode()}])
                self.send_json(200, {"created": int(time.time()), "data": data})

        def _create(self, body: dict[str, Any]) -> None:
            prompt = str(body.get("prompt"))
            verb, _, argument = prompt.partition(":")
            if verb == "status":
                self._error(int(argument), f"fake upstream error {argument}")
                return
            job = Job(
                f"video_{next(fake._ids)}",
                prompt,
                body,
                _STEPS.get(verb, ["queued", "processing", "completed"]),
            )
            fake.jobs[job.id] = job
            self.send_json(200, job.public())

        def _download(self, job: Job) -> None:
            verb, _, argument = job.prompt.partition(":")
            if job.status != "completed":
                self._error(404, "The video is not ready")
            elif verb == "big":
                files.send_bytes(self, "video/mp4", int(argument))
            elif verb == "downloadhtml":
                files.send_bytes(self, "text/html", b"<html><body>Expired</body></html>")
            else:
                files.send_bytes(self, "video/mp4", files.MP4)

        def _file(self, parts: list[str]) -> None:
            if parts[0] == "big":
                files.send_bytes(self, "image/png", int(parts[1]))
            elif parts[0] == "page.html":
                files.send_bytes(self, "text/html", b"<html><body>Not here</body></html>")
            else:
                files.send_bytes(self, "image/png", files.png(3, 3))

    return Handler
