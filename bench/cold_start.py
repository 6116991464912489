"""Cold start as Vercel runs it: every function built by `vercel build`, started in Vercel's runtime.

The project is built with the Vercel CLI (pinned, offline, see tests/vercel_runtime.py)
twice: as deployed by default, and with `VERCEL_PYTHON_COMPILEALL=1`, which ships
bytecode. Each function's bundle is laid out from its `.vc-config.json` and started
through `vc__handler__python` with `VERCEL_IPC_PATH` set. A fresh process per
start, the median of `--rounds` starts per cell, all cells interleaved round by
round so a busy machine skews them alike.

Two tables:

- The import: `userInitDuration` from the runtime's `server-started` message, for
  every function, beside a function of the same bundle that does nothing but
  `import httpx, pydantic`.
- The first answer, in production mode: `VERCEL=1`, Upstash (tests/fakes/upstash.py
  on a real redis-server) and Supabase (tests/fakes/supabase.py on a real
  PostgreSQL) emulated on loopback, a fake Pollinations. From starting the process
  to the end of the first answer's body, for the runtime's floor (api/models/chat,
  which touches no store), an anonymous chat, a chat with an API key, an image, and
  a key listing (the dashboard's, with an access token); beside each, the CPU time
  the function's process spent by then (less swayed by a busy machine) and its
  import. "Above the floor" is what a scenario adds to the floor's first answer,
  in units of a bare `import httpx, pydantic` in a fresh interpreter on the
  bundle's path (`python -S -c "import httpx, pydantic"` less `python -S -c pass`).

The stores are reached over plain HTTP on loopback, so no TLS handshake and no
TLS context for them is in these figures; on the platform each https client
adds one context (~20-40 ms of CPU each) unless it is shared (docs/design.md).

    make bench                                     # or:
    .venv/bin/python bench/cold_start.py [--rounds 5] [--against REV]

`--against REV` also builds the project as it was at git revision REV (its files
from `git archive`) and measures it in the same run, for a before/after.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.api_fixtures import UNLIMITED  # noqa: E402
from tests.conftest import UPSTREAM_KEY, free_port  # noqa: E402
from tests.fakes.pollinations import FakePollinations  # noqa: E402
from tests.fakes.redis_server import RedisServer  # noqa: E402
from tests.fakes.supabase import FakeSupabase  # noqa: E402
from tests.fakes.upstash import UpstashEmulator  # noqa: E402
from tests.key_stores import JWT_SECRET, access_token  # noqa: E402
from tests.postgres import running_postgres  # noqa: E402
from tests.upstash_fixtures import UPSTASH_TOKEN, upstash_env  # noqa: E402
from tests.vercel_runtime import CACHE, VercelFunction, build, functions, lay_out, python312  # noqa: E402

FLOOR = "import httpx, pydantic"
_FLOOR_ROUTE = "api/bare_imports"
_FLOOR_MODULE = f'''"""The floor: {FLOOR}, and a WSGI app that answers nothing."""

import httpx  # noqa: F401
import pydantic  # noqa: F401


def app(environ, start_response):
    start_response("204 No Content", [])
    return []
'''
BUILDS = ("source", "bytecode")
CHAT = {"model": "openai", "messages": [{"role": "user", "content": "Write a haiku about AI"}]}
# What Vercel's proxy adds to a request from the internet (a documentation address).
PROXY_HEADERS = {"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https", "x-vercel-id": "bench"}


@dataclass(frozen=True)
class Platform:
    """The production settings pointed at the emulators, and a user's credentials there."""

    env: dict[str, str]
    api_key: str
    access_token: str


@dataclass(frozen=True)
class Scenario:
    name: str
    route: str
    ask: Callable[[httpx.Client, Platform], httpx.Response]


SCENARIOS = (
    Scenario("floor: api/models/chat", "api/models/chat", lambda c, p: c.get("/api/models/chat")),
    Scenario("chat, anonymous", "api/chat", lambda c, p: c.post("/api/chat", json=CHAT)),
    Scenario(
        "chat, API key",
        "api/chat",
        lambda c, p: c.post("/api/chat", json=CHAT, headers={"Authorization": f"Bearer {p.api_key}"}),
    ),
    Scenario(
        "image, anonymous",
        "api/image",
        lambda c, p: c.post("/api/image", json={"model": "flux", "prompt": "a lighthouse"}),
    ),
    Scenario(
        "key listing (access token)",
        "api/keys/index",
        lambda c, p: c.get("/api/keys", headers={"Authorization": f"Bearer {p.access_token}"}),
    ),
)


def floor_bundle(output: Path, bundle: Path, compiled: bool) -> dict:
    """api/chat's bundle with a module that only imports httpx and pydantic as its entry point
    (httpx copied in from this environment when the functions do not need it, compiled as the
    build compiled the rest)."""
    config = lay_out(output, "api/chat", bundle)
    copied = vendor("httpx", bundle / "_vendor")
    if compiled and copied:
        subprocess.run([python312(), "-m", "compileall", "-q", *map(str, copied)], check=True)
    (bundle / f"{_FLOOR_ROUTE}.py").write_text(_FLOOR_MODULE)
    trampoline = bundle / "vc__handler__python.py"
    text = trampoline.read_text().replace('"api/chat.py"', f'"{_FLOOR_ROUTE}.py"')
    trampoline.write_text(text.replace('"api.chat"', f'"{_FLOOR_ROUTE.replace("/", ".")}"'))
    return config


def vendor(distribution: str, folder: Path) -> list[Path]:
    """Copy an installed distribution and those it requires into `folder`, each file not already there
    (bytecode left out); the files copied."""
    wanted, seen, copied = [distribution], set(), []
    while wanted:
        name = wanted.pop()
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        found = metadata.distribution(name)
        for file in found.files or []:
            target = folder / file
            if ".." not in file.parts and file.suffix != ".pyc" and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file.locate(), target)
                copied.append(target)
        for requirement in map(Requirement, found.requires or []):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(requirement.name)
    return copied


def revision(rev: str) -> Path:
    """The project's files at git revision `rev`, unpacked under .cache/."""
    folder = CACHE / "revisions" / rev.replace("/", "_")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


@contextmanager
def platform(output: Path) -> Iterator[Platform]:
    """The emulated stores and provider, the production variables, and a user with a key."""
    with ExitStack() as stack:
        upstream = stack.enter_context(FakePollinations())
        postgres = stack.enter_context(running_postgres())
        supabase = stack.enter_context(FakeSupabase(postgres, JWT_SECRET))
        redis_dir = Path(tempfile.mkdtemp(prefix="cold-start-redis-"))
        stack.callback(shutil.rmtree, redis_dir, ignore_errors=True)
        redis = RedisServer(redis_dir, free_port())
        stack.callback(redis.stop)
        upstash = stack.enter_context(UpstashEmulator(redis, UPSTASH_TOKEN))
        env = {
            "VERCEL": "1",
            "POLLINATIONS_BASE_URL": upstream.url,
            "POLLINATIONS_API_KEY": UPSTREAM_KEY,
            "SUPABASE_URL": supabase.url,
            "SUPABASE_SERVICE_ROLE_KEY": supabase.service_role_key,
            "SUPABASE_JWT_SECRET": JWT_SECRET,
            **upstash_env(upstash.url),
            **UNLIMITED,  # every start's first request is counted
        }
        token = access_token(postgres.new_user(), f"{supabase.url}/auth/v1")
        bundle = Path(tempfile.mkdtemp(prefix="keys-", dir=CACHE))
        stack.callback(shutil.rmtree, bundle, ignore_errors=True)
        keys = VercelFunction.bundled(bundle, lay_out(output, "api/keys/index", bundle), env)
        try:
            created = keys.client.post(
                "/api/keys",
                json={"name": "bench"},
                headers={"Authorization": f"Bearer {token}", **PROXY_HEADERS},
            )
            assert created.status_code == 201, created.text
        finally:
            keys.stop()
        yield Platform(env, created.json()["key"], token)


def first_answer(
    bundle: Path, config: dict, scenario: Scenario, where: Platform
) -> tuple[float, float, float]:
    """A fresh function's first answer: (ms from starting it to the answer's end, CPU ms by then, import ms)."""
    started = time.perf_counter()
    function = VercelFunction.bundled(bundle, config, where.env)
    try:
        client = function.client
        client.headers.update(PROXY_HEADERS)
        answer = scenario.ask(client, where)  # read whole
        wall_ms = (time.perf_counter() - started) * 1000
        assert answer.status_code == 200, f"{scenario.name}: {answer.status_code} {answer.text[:300]}"
        return wall_ms, function.cpu_ms, function.user_init_ms
    finally:
        function.stop()


def bare_import_ms(bundle: Path, config: dict, rounds: int) -> tuple[float, float]:
    """`import httpx, pydantic` in a fresh interpreter on the bundle's path, less the interpreter's own
    start: (wall ms, CPU ms), medians of `rounds`."""
    env = {**config["environment"], "PATH": os.environ.get("PATH", "")}

    def run(code: str) -> tuple[float, float]:
        before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run([python312(), "-S", "-c", code], cwd=bundle, env=env, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return (time.perf_counter() - started) * 1000, cpu * 1000

    samples = [
        (run(f"import sys; sys.path.insert(0, '_vendor'); {FLOOR}"), run("pass")) for _ in range(rounds)
    ]
    wall = statistics.median(imported[0] - bare[0] for imported, bare in samples)
    return wall, statistics.median(imported[1] - bare[1] for imported, bare in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="fresh starts per cell")
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
        for kind in BUILDS:
            print(f"vercel build: {name}, {kind} ...", flush=True)
            output = build(root, compileall=kind == "bytecode", name=name.replace("/", "_"))
            for route in functions(output):
                bundle = bundles_root / name.replace("/", "_") / kind / route
                cells[name, kind, route] = bundle, lay_out(output, route, bundle)
                routes += [route] if route not in routes else []
            bundle = bundles_root / name.replace("/", "_") / kind / _FLOOR_ROUTE
            cells[name, kind, FLOOR] = bundle, floor_bundle(output, bundle, kind == "bytecode")
    columns = [(name, kind) for name in sources for kind in BUILDS]

    with platform(build(ROOT, compileall=True)) as where:
        imports: dict[tuple[str, str, str], list[float]] = {cell: [] for cell in cells}
        answers: dict[tuple[str, str, str], list[tuple[float, float, float]]] = {
            (name, kind, scenario.name): [] for name, kind in columns for scenario in SCENARIOS
        }
        for round_ in range(args.rounds):
            print(f"round {round_ + 1} of {args.rounds} ...", flush=True)
            for (name, kind, route), (bundle, config) in cells.items():
                function = VercelFunction.bundled(bundle, config, {})
                imports[name, kind, route].append(function.user_init_ms)
                function.stop()
            for name, kind in columns:
                for scenario in SCENARIOS:
                    bundle, config = cells[name, kind, scenario.route]
                    answers[name, kind, scenario.name].append(first_answer(bundle, config, scenario, where))
        bare = {
            (name, kind): bare_import_ms(*cells[name, kind, FLOOR], args.rounds) for name, kind in columns
        }

    width = 18
    header = "".join(f"{f'{name}, {kind}':>{width}}" for name, kind in columns)
    print(f"\nuserInitDuration in Vercel's runtime, ms, median of {args.rounds} cold starts")
    print(f"{'function':<30}{header}")
    for route in [*routes, FLOOR]:
        row = "".join(
            f"{statistics.median(imports[name, kind, route]):>{width}.0f}" for name, kind in columns
        )
        print(f"{route:<30}{row}")

    print(
        f"\nFirst answer of a fresh function, production settings (emulated stores on loopback), "
        f"median of {args.rounds}: ms from starting the process to the end of the answer / "
        "CPU ms of the process by then / its import (userInitDuration)"
    )
    print(f"{'':<30}{header}")
    medians = {
        cell: tuple(statistics.median(sample[i] for sample in samples) for i in range(3))
        for cell, samples in answers.items()
    }
    for scenario in SCENARIOS:
        cells_ = [medians[name, kind, scenario.name] for name, kind in columns]
        print(
            f"{scenario.name:<30}"
            + "".join(f"{f'{w:.0f} / {c:.0f} / {i:.0f}':>{width}}" for w, c, i in cells_)
        )
    print(
        f"{'bare ' + FLOOR:<30}"
        + "".join(f"{f'{bare[column][0]:.0f} / {bare[column][1]:.0f} / -':>{width}}" for column in columns)
    )
    floor = SCENARIOS[0].name
    for measure, index in (("wall", 0), ("CPU", 1)):
        print(f"above the floor, in bare imports ({measure}):")
        for scenario in SCENARIOS[1:]:
            above = [
                (medians[name, kind, scenario.name][index] - medians[name, kind, floor][index])
                / bare[name, kind][index]
                for name, kind in columns
            ]
            print(f"{'  ' + scenario.name:<30}" + "".join(f"{a:>{width - 1}.1f}x" for a in above))
    print("source: as Vercel builds by default; bytecode: VERCEL_PYTHON_COMPILEALL=1")


if __name__ == "__main__":
    main()
