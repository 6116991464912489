"""Cold start as Vercel runs it: every function built by `vercel build`, started in Vercel's runtime.

The project is built with the Vercel CLI (pinned, offline, see tests/vercel_runtime.py)
twice: as deployed by default, and with `VERCEL_PYTHON_COMPILEALL=1`, which ships
bytecode. Each function's bundle is laid out from its `.vc-config.json` and started
through `vc__handler__python` with `VERCEL_IPC_PATH` set; the runtime's
`server-started` message reports `userInitDuration`, the import of the function's
module. A fresh process per start, the median of `--rounds` starts per cell, all
cells interleaved round by round so a busy machine skews them alike.

The floor is a function of the same bundle that does nothing but `import httpx,
pydantic` (what any of ours must import), started the same way. And since work
kept out of the import is paid by the first request instead, api/chat's row
"+ first request" adds the wall time of its first request after the start (a body
that validation refuses, so no provider is involved, but the request models and
the rate-limit counters are loaded).

    make bench                                     # or:
    .venv/bin/python bench/cold_start.py [--rounds 5] [--against REV]

`--against REV` also builds the project as it was at git revision REV (its files
from `git archive`) and measures it in the same run, for a before/after.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.vercel_runtime import CACHE, VercelFunction, build, functions, lay_out  # noqa: E402

FLOOR = "import httpx, pydantic"
FIRST_REQUEST = "api/chat + first request"
NO_LIMIT = {"RATE_LIMIT_CHAT_ANONYMOUS": "1000000"}  # every start's first request is counted
_FLOOR_ROUTE = "api/bare_imports"
_FLOOR_MODULE = f'''"""The floor: {FLOOR}, and a WSGI app that answers nothing."""

import httpx  # noqa: F401
import pydantic  # noqa: F401


def app(environ, start_response):
    start_response("204 No Content", [])
    return []
'''


def floor_bundle(output: Path, bundle: Path) -> dict:
    """api/chat's bundle with a module that only imports httpx and pydantic as its entry point."""
    config = lay_out(output, "api/chat", bundle)
    (bundle / f"{_FLOOR_ROUTE}.py").write_text(_FLOOR_MODULE)
    trampoline = bundle / "vc__handler__python.py"
    text = trampoline.read_text().replace('"api/chat.py"', f'"{_FLOOR_ROUTE}.py"')
    trampoline.write_text(text.replace('"api.chat"', f'"{_FLOOR_ROUTE.replace("/", ".")}"'))
    return config


def revision(rev: str) -> Path:
    """The project's files at git revision `rev`, unpacked under .cache/."""
    folder = CACHE / "revisions" / rev.replace("/", "_")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="fresh starts per function and build")
    parser.add_argument("--against", metavar="REV", help="also measure the project at this git revision")
    args = parser.parse_args()

    sources = {"current": ROOT}
    if args.against:
        sources[args.against] = revision(args.against)
    bundles_root = CACHE / "bench-bundles"
    shutil.rmtree(bundles_root, ignore_errors=True)
    cells: dict[tuple[str, str, str], tuple[Path, dict]] = {}  # (source, build, route) -> bundle
    routes: list[str] = []
    for name, root in sources.items():
        for kind, compileall in (("source", False), ("bytecode", True)):
            print(f"vercel build: {name}, {kind} ...", flush=True)
            output = build(root, compileall=compileall, name=name.replace("/", "_"))
            for route in functions(output):
                bundle = bundles_root / name.replace("/", "_") / kind / route
                cells[name, kind, route] = bundle, lay_out(output, route, bundle)
                routes += [route] if route not in routes else []
            bundle = bundles_root / name.replace("/", "_") / kind / _FLOOR_ROUTE
            cells[name, kind, FLOOR] = bundle, floor_bundle(output, bundle)

    samples: dict[tuple[str, str, str], list[float]] = {cell: [] for cell in cells}
    samples |= {(name, kind, FIRST_REQUEST): [] for name, kind, route in cells if route == "api/chat"}
    data_dir = tempfile.mkdtemp(prefix="cold-start-")  # the local counters' SQLite file
    for round_ in range(args.rounds):
        print(f"round {round_ + 1} of {args.rounds} ...", flush=True)
        for (name, kind, route), (bundle, config) in cells.items():
            function = VercelFunction.bundled(bundle, config, {"CLOUDGPT_DATA_DIR": data_dir, **NO_LIMIT})
            samples[name, kind, route].append(function.user_init_ms)
            if route == "api/chat":
                started = time.perf_counter()
                refused = httpx.post(f"{function.url}/api/chat", json={"model": "openai", "messages": []})
                assert refused.status_code == 400, refused.text
                first_ms = (time.perf_counter() - started) * 1000
                samples[name, kind, FIRST_REQUEST].append(function.user_init_ms + first_ms)
            function.stop()
    shutil.rmtree(data_dir, ignore_errors=True)

    median = {cell: statistics.median(values) for cell, values in samples.items()}
    columns = [(name, kind) for name in sources for kind in ("source", "bytecode")]
    print(f"\nuserInitDuration in Vercel's runtime, ms, median of {args.rounds} cold starts")
    print(f"{'function':<28}" + "".join(f"{f'{name}, {kind}':>22}" for name, kind in columns))
    for route in [*routes, FIRST_REQUEST, FLOOR]:
        print(
            f"{route:<28}"
            + "".join(f"{median.get((name, kind, route), float('nan')):>22.0f}" for name, kind in columns)
        )
    print(
        f"{'api/chat / floor':<28}"
        + "".join(
            f"{median[name, kind, 'api/chat'] / median[name, kind, FLOOR]:>21.2f}x" for name, kind in columns
        )
    )
    print("source: as Vercel builds by default; bytecode: VERCEL_PYTHON_COMPILEALL=1")


if __name__ == "__main__":
    main()
