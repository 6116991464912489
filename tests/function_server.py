"""Serve one function of api/ with the standard library's wsgiref, for measuring it alone.

`python -m tests.function_server api/video.py --port 3001`. Unlike the local server
(granian, whose workers also hold the router and a few chunks in flight), wsgiref writes
each chunk the function yields straight to the socket, so the process's memory is
the function's own.
"""

from __future__ import annotations

import argparse
import importlib.util
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("function", help="a file of api/, e.g. api/image.py")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("function", args.function)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    make_server("127.0.0.1", args.port, module.app, ThreadingServer, QuietHandler).serve_forever()


if __name__ == "__main__":
    main()
