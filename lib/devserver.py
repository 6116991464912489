"""Serve the functions in api/ locally, routed the way Vercel routes them.

`python -m lib.devserver` (what `make dev` runs) maps each `api/**/*.py` file to
its path (`index.py` to its folder, `[name]` segments passed as query parameters),
serves `public/` as static files, applies `vercel.json`'s rewrites where no file
matches (the function still sees the path asked for) and its headers.
It runs on granian: one worker process per core, each like a warm Vercel
instance, serving requests on threads over keep-alive connections, with bodies
read as they arrive and streamed answers sent chunk by chunk as they are produced.
It reads a `.env` in the working directory (the environment wins over it) and
refuses to start on a port something already listens on.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import mimetypes
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache, partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from lib.asgi_bridge import BODY_LATE, WSGIBridge
from lib.errors import NotFound, PayloadTooLarge, RequestTimeout
from lib.terminal import printable
from lib.web import WSGIApp, failing

ROOT = Path(__file__).resolve().parent.parent


def _pattern(source: str) -> re.Pattern[str]:
    """A Vercel path pattern (`/v1/models/:id`, `/docs/:path*`) as a regex."""
    regex = ""
    for segment in source.strip("/").split("/"):
        if segment.startswith(":") and segment.endswith("*"):
            regex += f"(?:/(?P<{segment[1:-1]}>.*))?"
        elif segment.startswith(":"):
            regex += f"/(?P<{segment[1:]}>[^/]+)"
        elif segment:
            regex += "/" + re.escape(segment)
    return re.compile(f"^{regex or '/'}/?\\Z")  # not "$", which also matches before a final newline


def _function_route(relative: Path) -> re.Pattern[str]:
    """The route of a function file: `keys/[id].py` serves `/api/keys/<id>`."""
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "index":
        parts.pop()
    source = "/".join(f":{p[1:-1]}" if p.startswith("[") and p.endswith("]") else p for p in parts)
    return _pattern("/api/" + source)


class Router:
    """Routes a request to a function of `root/api`, a file of `root/public`, or a 404."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        config_path = root / "vercel.json"
        config = json.loads(config_path.read_text()) if config_path.exists() else {}
        self.rewrites = [(_pattern(r["source"]), r["destination"]) for r in config.get("rewrites", [])]
        self.headers = [
            (_pattern(h["source"]), [(x["key"], x["value"]) for x in h["headers"]])
            for h in config.get("headers", [])
        ]
        # As on Vercel, a file's own path wins over a `[param]` one: /api/models/chat is chat.py.
        files = [path for path in (root / "api").rglob("*.py") if not path.name.startswith("_")]
        self.functions = [
            (_function_route(path.relative_to(root / "api")), path)
            for path in sorted(files, key=lambda path: ("[" in path.name, path))
        ]
        # public/ is listed once: a request never touches the disk to find out it is not a file.
        public = root / "public"
        self.static = {"/" + str(f.relative_to(public)): f for f in public.rglob("*") if f.is_file()}
        self.static |= {
            folder: f
            for url, f in self.static.items()
            if f.name == "index.html"
            for folder in {url.removesuffix("index.html"), url.removesuffix("/index.html") or "/"}
        }  # as on Vercel, a folder's index.html serves the folder with and without its slash
        self._public_files = frozenset(self.static.values())
        self._apps: dict[Path, WSGIApp] = {}
        self._lock = threading.Lock()
        # The same paths come again and again: each is matched against the patterns once.
        self._route = lru_cache(maxsize=4096)(self._resolve)
        self._headers_for = lru_cache(maxsize=4096)(self._match_headers)
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))

    def _load(self, path: Path) -> WSGIApp:
        app = self._apps.get(path)
        if app is not None:
            return app
        with self._lock:
            if path not in self._apps:
                name = "cloudgpt_function_" + re.sub(r"\W", "_", str(path.relative_to(self.root)))
                spec = importlib.util.spec_from_file_location(name, path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                self._apps[path] = module.app
            return self._apps[path]

    def _rewrite(self, path: str, query: str) -> tuple[str, str] | None:
        """The first rewrite's destination and query (the rewrite's parameters join it), if one matches."""
        for pattern, destination in self.rewrites:
            match = pattern.match(path)
            if match:
                params = {k: v for k, v in match.groupdict().items() if v is not None}
                for name, value in params.items():  # encoded, so a "?" or "&" in a value stays in it
                    destination = destination.replace(f":{name}", quote(value, safe="/"))
                new_path, _, new_query = destination.partition("?")
                new_path = unquote(new_path)
                merged = dict(parse_qsl(query, keep_blank_values=True))
                merged.update(parse_qsl(new_query, keep_blank_values=True))
                merged.update(params)
                return new_path, urlencode(merged)
        return None

    def _find(self, path: str, query: str) -> tuple[Path, str] | None:
        """The file of public/ or function of api/ serving `path`, and the query it gets."""
        static = self.static.get(path)
        if static is not None:
            return static, query
        for pattern, file in self.functions:
            match = pattern.match(path)
            if match:
                params = dict(parse_qsl(query, keep_blank_values=True))
                params.update({k: v for k, v in match.groupdict().items() if v is not None})
                return file, urlencode(params)
        return None

    def _resolve(self, path: str, query: str) -> tuple[Path, str] | None:
        """As on Vercel: the files first (public/, then api/), the rewrites only after them."""
        found = self._find(path, query)
        if found is None and (rewritten := self._rewrite(path, query)):
            found = self._find(*rewritten)
        return found

    def _match_headers(self, path: str) -> tuple[tuple[str, str], ...]:
        """vercel.json's headers for `path`, every matching rule's in order."""
        return tuple(h for pattern, headers in self.headers if pattern.match(path) for h in headers)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        original = environ.get("PATH_INFO", "/")
        extra = self._headers_for(original)

        def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {k.lower() for k, _ in headers}
            return start_response(
                status, headers + [h for h in extra if h[0].lower() not in present], exc_info
            )

        # A rewritten request keeps the path the client asked for.
        found = self._route(original, environ.get("QUERY_STRING", ""))
        if found is None:
            return failing(NotFound(f"No route for {original}.", code="route_not_found"))(environ, respond)
        file, query = found
        if file in self._public_files:
            return self._serve_file(file, respond)
        environ["QUERY_STRING"] = query  # the server's environ is this request's own
        return self._load(file)(environ, respond)

    def _serve_file(self, file: Path, respond: Callable[..., Any]) -> Iterable[bytes]:
        body = file.read_bytes()
        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        respond("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]


# Connections each worker admits at once. granian counts a connection from its accept to its
# close (an idle keep-alive one, or one still sending its headers, included), so this is far
# above the threads: a few slow or idle clients must not keep everyone else waiting.
CONNECTIONS_PER_WORKER = 1024


def body_cap(app: WSGIApp, limit: int, timeout: float) -> WSGIApp:
    """Refuse a body declared larger than `limit`, and one that came too late, without reading on.

    The server reads a body in its event loop before the function is called, and not at
    all when it is declared over the limit, so a refused upload is never buffered. A body
    without a length (chunked) ends where the input ends, which WSGI signals with
    `wsgi.input_terminated`; the functions read it under the same cap (the server hands
    over at most one byte past it). A body still incomplete `timeout` seconds after its
    headers (CLOUDGPT_BODY_TIMEOUT) comes marked `BODY_LATE`: a 408.
    """
    too_large = failing(
        PayloadTooLarge(f"Request body is larger than the {limit} bytes this endpoint accepts.")
    )
    too_late = failing(
        RequestTimeout(
            "The request body did not arrive in time: send it whole within "
            f"{timeout:g} seconds of the headers.",
        )
    )

    def capped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def closing(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # A 413 or a 408 leaves the rest of the body unread: the connection cannot carry
            # another request, and the client must know it before it tries one on it.
            if status.startswith(("413", "408")):
                headers = [*headers, ("Connection", "close")]
            return start_response(status, headers, exc_info)

        if environ.get(BODY_LATE):
            return too_late(environ, closing)
        declared = environ.get("CONTENT_LENGTH", "")
        if declared.isdigit() and int(declared) > limit:
            return too_large(environ, closing)
        environ["wsgi.input_terminated"] = True
        return app(environ, closing)

    return capped


def access_log(app: WSGIApp) -> WSGIApp:
    """Print one line per request once its body is sent: method, path, status, milliseconds.

    The path is the client's text, decoded: its control characters are printed escaped
    (`lib/terminal.py`), so no request can forge a line or drive the terminal.

    The function is called at once (the server reads the status as soon as the call
    returns); a list body is logged there, any other when the server closes it.
    """

    def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        status = ["-"]

        def capture(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[0] = line.split(" ", 1)[0]
            return start_response(line, headers, exc_info)

        def log() -> None:
            elapsed = (time.perf_counter() - started) * 1000
            # WSGI hands the path's bytes over as latin-1: shown as the UTF-8 the client sent.
            path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace")
            request = f"{environ.get('REQUEST_METHOD')} {path}"
            print(f"{printable(request)} {status[0]} {elapsed:.1f}ms", flush=True)

        body = app(environ, capture)
        if isinstance(body, list):
            log()
            return body
        return _Closing(body, log)

    return logged


class _Closing:
    """A response body that runs `then` once the server closes it (after the last chunk or a disconnect)."""

    def __init__(self, body: Iterable[bytes], then: Callable[[], None]) -> None:
        self._body = body
        self._next = iter(body).__next__
        self._then = then

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return self._next()

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._then()


def functions() -> WSGIApp:
    """The functions as a worker serves them: the router behind the body cap, with an access log."""
    from lib.settings import settings

    current = settings()
    return access_log(body_cap(Router(), current.max_body_bytes, current.body_timeout))


def served(threads: int = 128) -> WSGIBridge:
    """What each worker process serves: the functions, called on `threads` threads once each body is in."""
    from lib.settings import settings

    current = settings()
    return WSGIBridge(
        functions(), threads=threads, body_limit=current.max_body_bytes, body_timeout=current.body_timeout
    )


def signin_line(host: str, port: int) -> str | None:
    """A fresh one-time dashboard sign-in link, printed for the local operator (embedded default only)."""
    import sqlite3

    from lib import accounts, local_signin

    if accounts.mode() != "local":
        return None
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    try:
        code = local_signin.new_code()
    except (sqlite3.Error, OSError) as error:
        return f"Dashboard sign-in is unavailable: CLOUDGPT_DATA_DIR cannot be written ({error})."
    return f"Dashboard sign-in (one use, 15 min): http://{shown}:{port}/dashboard#code={code}"


def _where_file() -> Path:
    from lib.settings import settings

    return settings().data_dir / "devserver.json"


def _record_where(host: str, port: int) -> None:
    """Note where this server listens, so `make signin` prints a link to the port it really runs on."""
    try:
        _where_file().parent.mkdir(parents=True, exist_ok=True)
        _where_file().write_text(json.dumps({"host": host, "port": port, "pid": os.getpid()}))
    except OSError:
        pass  # `make signin` falls back to HOST and PORT


def _running_at(host: str, port: int) -> tuple[str, int]:
    """The host and port of the running local server on this data directory, else the ones given."""
    try:
        where = json.loads(_where_file().read_text())
        os.kill(int(where["pid"]), 0)  # still running (signal 0 only checks)
        return str(where["host"]), int(where["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return host, port


def read_dotenv(path: Path = Path(".env")) -> None:
    """The variables of `path` (a `.env` in the working directory), where the environment has none.

    What the shell already says wins, as with every `.env` reader: a one-off
    `PORT=4000 make dev` needs no edit of the file.
    """
    if path.is_file():
        from dotenv import load_dotenv

        load_dotenv(path, override=False)


def refuse_taken_port(host: str, port: int) -> None:
    """Exit naming the port when something listens on it already.

    granian binds with SO_REUSEPORT, so a second server on a taken port would start
    and share it with the first, requests alternating between them. A plain bind
    (SO_REUSEADDR only, which lets a port in TIME_WAIT be reused) fails instead.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            taken = error.errno == errno.EADDRINUSE
            sys.exit(
                f"Port {port} on {host} is taken: another server (another `make dev`?) listens there. "
                "Stop it, or pick another port: PORT=3001 make dev."
                if taken
                else f"Cannot listen on {host}:{port}: {error.strerror}."
            )


def main(argv: list[str] | None = None) -> None:
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    read_dotenv()
    # Local whatever the shell or `vercel env pull` says: with VERCEL set, the embedded stores
    # would be switched off and every request answered 503.
    os.environ.pop("VERCEL", None)
    from lib.settings import SettingsError, settings

    try:
        current = settings()
    except SettingsError as error:
        sys.exit(error.message)
    parser = argparse.ArgumentParser(description="Serve CloudGPT's functions locally.")
    parser.add_argument("--host", default=current.host)
    parser.add_argument("--port", type=int, default=current.port)
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes (default: one per core)"
    )
    parser.add_argument(
        "--threads", type=int, default=128, help="requests each worker serves at once (streams hold one)"
    )
    parser.add_argument(
        "--no-body-timeout",
        action="store_true",
        help="hand bodies to the functions' threads as they arrive: about half the server's CPU per "
        "request, but a client stalled mid-body then holds a thread until it leaves",
    )
    parser.add_argument(
        "--print-signin", action="store_true", help="print a fresh dashboard sign-in link, exit"
    )
    args = parser.parse_args(argv)
    if args.print_signin:
        signin = signin_line(*_running_at(args.host, args.port))
        if signin is None:
            sys.exit("Sign-in links are only for the embedded default (no Supabase, not on Vercel).")
        print(signin)
        return
    refuse_taken_port(args.host, args.port)
    signin = signin_line(args.host, args.port)
    print(f"CloudGPT serving on http://{args.host}:{args.port} ({args.workers} workers)", flush=True)
    if signin:
        _record_where(args.host, args.port)
        print(signin, flush=True)
    if args.no_body_timeout:  # granian's WSGI interface: its threads read the bodies themselves
        interface, app, threads = Interfaces.WSGI, functions, {"blocking_threads": args.threads}
    else:  # ASGI without lifespan messages: the event loop reads bodies (lib/asgi_bridge.py)
        interface, app, threads = Interfaces.ASGINL, partial(served, args.threads), {"websockets": False}
    Server(
        "lib.devserver:served",
        interface=interface,
        address=args.host,
        port=args.port,
        workers=args.workers,
        backpressure=CONNECTIONS_PER_WORKER,
        # A client still sending its headers after this is disconnected.
        http1_settings=HTTP1Settings(
            header_read_timeout=min(60_000, max(1, round(current.header_timeout * 1000)))
        ),
        # Errors only: granian warns of more threads than cores, which suits CPU-bound apps
        # (these threads mostly wait on providers), and a function's failure is still printed.
        log_level=LogLevels.error,
        **threads,
    ).serve(target_loader=app, wrap_loader=False)


if __name__ == "__main__":
    main()
