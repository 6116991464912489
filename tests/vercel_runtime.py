"""One function of api/ served by Vercel's own Python runtime (`vercel_runtime.vc_init`), as the platform starts it.

The runtime reads its handler from `__VC_HANDLER_*` variables, reports on a unix
socket (`VERCEL_IPC_PATH`) that it serves HTTP on a loopback port, and builds each
WSGI environ itself: `REMOTE_ADDR` from `x-forwarded-for`, every header as `HTTP_*`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT


class VercelFunction:
    """`api/<file>` running under vc_init, and a client for it."""

    def __init__(self, function: str, env: dict[str, str]) -> None:
        self._dir = tempfile.TemporaryDirectory()
        ipc_path = str(Path(self._dir.name) / "ipc.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(ipc_path)
        listener.listen(1)
        listener.settimeout(30)
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import vercel_runtime.vc_init"],
            cwd=ROOT,
            env={
                **env,
                "PYTHONPATH": str(ROOT),
                "VERCEL_IPC_PATH": ipc_path,
                "__VC_HANDLER_ENTRYPOINT": function,
                "__VC_HANDLER_ENTRYPOINT_ABS": str(ROOT / function),
                "__VC_HANDLER_MODULE_NAME": function.removesuffix(".py").replace("/", "."),
                "__VC_HANDLER_VARIABLE_NAME": "app",
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._ipc, _ = listener.accept()
        finally:
            listener.close()
        self.messages: list[dict] = []
        port = self._read_until_started()
        threading.Thread(target=self._drain, daemon=True).start()  # the runtime blocks on a full socket
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def _read_until_started(self) -> int:
        buffered, deadline = b"", time.monotonic() + 30
        self._ipc.settimeout(30)
        while time.monotonic() < deadline:
            *messages, buffered = (buffered + self._ipc.recv(65536)).split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if message.get("type") == "server-started":
                    return message["payload"]["httpPort"]
        self.log.seek(0)
        raise RuntimeError(f"vc_init did not start: {self.log.read().decode()}")

    def _drain(self) -> None:
        try:
            while self._ipc.recv(65536):
                pass
        except OSError:
            pass

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(10)
        self._ipc.close()
        self.log.close()
        self._dir.cleanup()
