# make dev   serve every function in api/ on http://127.0.0.1:3000 (HOST, PORT)
# make test  run the whole test suite
# make bench measure the latency the gateway adds, time to first byte, cold import,
#            memory passing a large video through, each provider failure's outcome and time,
#            what key verification and the rate-limit check add on each backend,
#            what the OpenAI-compatible routes cost through the official SDK,
#            the local server beside LiteLLM's proxy and Portkey's gateway (bench/peers.py)
# make lint  ruff
.PHONY: dev test bench lint

dev:
	@scripts/venv requirements.txt requirements-dev.txt
	.venv/bin/python -m lib.devserver

test:
	@scripts/venv requirements.txt requirements-dev.txt
	.venv/bin/python -m ruff check .
	.venv/bin/python -m pytest

bench:
	@scripts/venv requirements.txt requirements-dev.txt
	@command -v wrk >/dev/null || scripts/apt-install wrk
	.venv/bin/python bench/gateway.py
	.venv/bin/python bench/media.py
	.venv/bin/python bench/faults.py
	.venv/bin/python bench/keys.py
	.venv/bin/python bench/limits.py
	.venv/bin/python bench/sdk.py
	.venv/bin/python bench/peers.py

lint:
	@scripts/venv requirements.txt requirements-dev.txt
	.venv/bin/python -m ruff check .
	.venv/bin/python -m ruff format --check .
