"""The long Schemathesis run: tests/test_api_properties.py with many more generated requests.

The CI run draws 100 examples per operation (about 4,000 requests); this one draws
`--examples` per operation (1000 by default: 19,361 requests over the 26
operations, 12 minutes on a busy 2-core machine), against the same local server
and fakes, and fails on any 5xx or answer the OpenAPI document does not allow. pytest prints the requests per
operation and status at the end.

    .venv/bin/python bench/properties.py [--examples 400]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=1000)
    args = parser.parse_args()
    env = {**os.environ, "CLOUDGPT_PROPERTY_EXAMPLES": str(args.examples)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_api_properties.py"]
    sys.exit(subprocess.run(command, cwd=ROOT, env=env).returncode)


if __name__ == "__main__":
    main()
