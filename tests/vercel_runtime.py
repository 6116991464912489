"""CloudGPT's functions built by `vercel build` and started inside Vercel's own Python runtime.

`build()` runs the Vercel CLI (from npm, pinned) offline on a copy of the project,
with a stub `.vercel/project.json`; the build is kept under `.cache/` and reused
while the project's files are unchanged. `lay_out()` copies one function's bundle
together from its `.vc-config.json` `filePathMap`, as the platform unpacks it, and
`VercelFunction.bundled()` starts it through `vc__handler__python` with
`VERCEL_IPC_PATH` on a unix socket it reads, as the platform does: the
`server-started` message gives the HTTP port and `userInitDuration`, the import
of the function's module. `VercelFunction.from_source()` runs a function of this
checkout under the `vercel-runtime` package's `vc_init` instead, with no build:
the runtime's own environ (`REMOTE_ADDR` from `x-forwarded-for`, every header as
`HTTP_*`) for tests that need nothing else of the platform.

Everything the build needs is installed into `.cache/` on first use: the CLI with
npm, `uv` (which the builder calls) from PyPI. It needs Node with npm and a
Python 3.12, the version `.python-version` asks Vercel for.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Never

import httpx

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
VERCEL_CLI_VERSION = "58.10.0"
UV_VERSION = "0.13.9"
# Never part of the deployment: what the build would otherwise pick up from a working copy.
_NOT_DEPLOYED = {
    ".git",
    ".venv",
    ".cache",
    ".vercel",
    ".cloudgpt",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
}


class Unavailable(RuntimeError):
    """A tool the build needs is missing and cannot be installed here."""


def python312() -> str:
    """A plain Python 3.12 interpreter (not a virtualenv's, whose packages would leak into a bundle)."""
    candidates = []
    if sys.version_info[:2] == (3, 12):
        candidates.append(getattr(sys, "_base_executable", sys.executable))
    candidates.append(shutil.which("python3.12") or "")
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    raise Unavailable("no Python 3.12 found (tried this interpreter, python3.12 on PATH, pyenv's)")


def _vercel_cli() -> Path:
    prefix = CACHE / f"vercel-cli-{VERCEL_CLI_VERSION}"
    cli = prefix / "node_modules" / ".bin" / "vercel"
    if not cli.exists():
        if shutil.which("npm") is None:
            raise Unavailable("npm is needed to install the Vercel CLI")
        _run(
            [
                "npm",
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                f"vercel@{VERCEL_CLI_VERSION}",
            ]
        )
    return cli


def _uv_dir() -> Path:
    target = CACHE / f"uv-{UV_VERSION}"
    if not (target / "bin" / "uv").exists():
        _run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), f"uv=={UV_VERSION}"]
        )
    return target / "bin"


def _run(argv: list[str], **kwargs: object) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def project_files(root: Path = ROOT) -> list[Path]:
    """The project's files as a deployment sees them (relative paths), without local state."""
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in _NOT_DEPLOYED]
        files += [(Path(folder) / name).relative_to(root) for name in names]
    return sorted(files)


def build(root: Path = ROOT, *, compileall: bool = False, name: str = "current") -> Path:
    """`vercel build`'s output folder for the project at `root`; rebuilt only when a file changed.

    `compileall` sets `VERCEL_PYTHON_COMPILEALL=1`, so the bundles carry bytecode;
    `name` tells builds of different sources apart in the cache.
    """
    folder = CACHE / "vercel-build" / name / ("compiled" if compileall else "source")
    folder.parent.mkdir(parents=True, exist_ok=True)
    # One build of a folder at a time: another run (or a test process of this one) waits, then reuses it.
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(root, folder, compileall)


def _build(root: Path, folder: Path, compileall: bool) -> Path:
    files = project_files(root)
    digest = hashlib.sha256(f"{VERCEL_CLI_VERSION} {UV_VERSION} {compileall}".encode())
    for relative in files:
        digest.update(str(relative).encode() + b"\0" + (root / relative).read_bytes() + b"\0")
    output = folder / "project" / ".vercel" / "output"
    stamp = folder / "stamp"
    if stamp.exists() and stamp.read_text() == digest.hexdigest() and output.is_dir():
        return output
    python, cli, uv = python312(), _vercel_cli(), _uv_dir()
    shutil.rmtree(folder, ignore_errors=True)
    project = folder / "project"
    for relative in files:
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, project / relative)
    (project / ".vercel").mkdir()
    stub = {"projectId": "prj_local", "orgId": "team_local", "settings": {"framework": None}}
    (project / ".vercel" / "project.json").write_text(json.dumps(stub))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VERCEL", "VIRTUAL_ENV", "PYTHON", "UV_"))
    }
    env |= {
        "PATH": os.pathsep.join([str(uv), str(Path(python).parent), env.get("PATH", "")]),
        "UV_PYTHON_DOWNLOADS": "never",  # only the registries are reachable: the 3.12 first on PATH
        "VERCEL_TELEMETRY_DISABLED": "1",
    }
    if compileall:
        env["VERCEL_PYTHON_COMPILEALL"] = "1"
    _run([str(cli), "build", "--yes"], cwd=project, env=env)
    stamp.write_text(digest.hexdigest())
    return output


@functools.cache
def background_build() -> Future[Path]:
    """`build()` of this checkout, started on a thread: the tests that need it find it done.

    A build mostly waits on npm and PyPI (80 s, 20 s of CPU on 2 cores), so the
    rest of the suite runs meanwhile.
    """
    future: Future[Path] = Future()

    def run() -> None:
        try:
            future.set_result(build())
        except BaseException as error:
            future.set_exception(error)

    threading.Thread(target=run, name="vercel-build", daemon=True).start()
    return future


def wait_for_background_build() -> None:
    """Return once the build `background_build()` started, if it started one, has ended."""
    if background_build.cache_info().currsize:
        background_build().exception()


def functions(output: Path) -> list[str]:
    """Every function's route in the build, as `api/chat`, `api/keys/[id]`."""
    found = (path.parent.relative_to(output / "functions") for path in output.rglob(".vc-config.json"))
    return sorted(str(route.with_suffix("")) for route in found)


def lay_out(output: Path, route: str, bundle: Path) -> dict:
    """Unpack one function as the platform does: its `filePathMap`, then its trampoline; its config."""
    function = output / "functions" / f"{route}.func"
    config = json.loads((function / ".vc-config.json").read_text())
    project = output.parent.parent
    for inside, source in config["filePathMap"].items():
        target = bundle / inside
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(project / source, target)  # the bundle's files are as built, mtimes included
        except OSError:
            shutil.copy2(project / source, target)
    for path in function.iterdir():
        if path.name != ".vc-config.json":
            shutil.copy2(path, bundle / path.name)
    return config


class VercelFunction:
    """One function running in Vercel's runtime: `vc_init` serving it on 127.0.0.1."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 60) -> None:
        self.messages: list[dict] = []
        self._started = threading.Event()
        self._client: httpx.Client | None = None
        self._folder = tempfile.mkdtemp(prefix="vc-ipc-")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(Path(self._folder) / "ipc.sock"))
        listener.listen(1)
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**env, "VERCEL_IPC_PATH": listener.getsockname()},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            connection = self._accept(listener, time.monotonic() + timeout)
        finally:
            listener.close()
        threading.Thread(target=self._read, args=(connection,), daemon=True).start()
        if not self._started.wait(timeout) or "httpPort" not in self.server_started:
            self._fail(f"the function did not start: {self.messages}")
        self.url = f"http://127.0.0.1:{self.server_started['httpPort']}"

    @classmethod
    def bundled(cls, bundle: Path, config: dict, env: dict[str, str], timeout: float = 60) -> VercelFunction:
        """A function laid out by `lay_out()`, started through its `vc__handler__python` trampoline."""
        # The platform's environment: the function's own, what the project sets, no local Python state.
        clean = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TZ") if key in os.environ}
        # -S: no site-packages of the host interpreter; the trampoline adds `_vendor` itself.
        argv = [python312(), "-S", "-c", "import vc__handler__python"]
        return cls(argv, bundle, {**clean, **config["environment"], **env}, timeout)

    @classmethod
    def from_source(cls, function: str, env: dict[str, str]) -> VercelFunction:
        """`api/<file>` from this checkout under the `vercel-runtime` package's vc_init: no build needed.

        The variables are the ones the trampoline sets before it imports vc_init.
        """
        handler = {
            "PYTHONPATH": str(ROOT),
            "__VC_HANDLER_ENTRYPOINT": function,
            "__VC_HANDLER_ENTRYPOINT_ABS": str(ROOT / function),
            "__VC_HANDLER_MODULE_NAME": function.removesuffix(".py").replace("/", "."),
            "__VC_HANDLER_VARIABLE_NAME": "app",
        }
        return cls([sys.executable, "-c", "import vercel_runtime.vc_init"], ROOT, {**env, **handler})

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, timeout=30)
        return self._client

    def _accept(self, listener: socket.socket, deadline: float) -> socket.socket:
        listener.settimeout(0.1)
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                return listener.accept()[0]
            except TimeoutError:
                continue
        self._fail("the runtime never connected to VERCEL_IPC_PATH")

    def _fail(self, why: str) -> Never:
        output = self.output()
        self.stop()
        raise RuntimeError(f"{why}; its output:\n{output}")

    @property
    def server_started(self) -> dict:
        return next((m["payload"] for m in self.messages if m.get("type") == "server-started"), {})

    @property
    def user_init_ms(self) -> int:
        """The import of the function's module, as the runtime reports it."""
        return self.server_started["userInitDuration"]

    @property
    def cpu_ms(self) -> float:
        """The CPU time (user and system, all threads) the process has used so far, at 10 ms resolution."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")

    def _read(self, connection: socket.socket) -> None:
        buffer = b""
        with connection:
            while chunk := connection.recv(65536):
                buffer += chunk
                *complete, buffer = buffer.split(b"\0")
                for raw in complete:
                    message = json.loads(raw)
                    self.messages.append(message)
                    if message.get("type") in ("server-started", "unrecoverable-error"):
                        self._started.set()
        self._started.set()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self._folder, ignore_errors=True)
