# make dev   serve every function in api/ on http://127.0.0.1:3000 (HOST, PORT)
# make signin print a fresh one-time dashboard sign-in link for the running `make dev`
# make test  ruff, then the whole test suite (installs the test tools on top of what dev needs)
# make bench measure the latency the gateway adds, time to first byte, cold import,
#            memory passing a large video through, each provider failure's outcome and time,
#            what key verification and the rate-limit check add on each backend,
#            what GET /api/health costs Upstash per 1,000 calls,
#            what the OpenAI-compatible routes cost through the official SDK,
#            what the accounts routes (config, local sign-in) cost and import
#            what recording usage adds to the time to the last byte
#            store outages before/after the breakers, a 10-minute soak, the long Schemathesis run
#            every function's cold start in Vercel's own runtime (vercel build)
#            the local server beside LiteLLM's proxy and Portkey's gateway (bench/peers.py)
# make screenshots  retake the README's screenshots of the dashboard and playground into docs/img/
# make lint  ruff
.PHONY: dev signin test bench screenshots lint

dev:
	@scripts/venv requirements.txt requirements-dev.txt
	.venv/bin/python -m lib.devserver

signin:
	@scripts/venv requirements.txt requirements-dev.txt
	.venv/bin/python -m lib.devserver --print-signin

# Two test processes (pytest-xdist): most tests wait on servers, so two halve the suite's time on
# 2 cores. `worksteal` gives each a contiguous half (one module's fixtures start once), then
# balances. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

test:
	@scripts/venv requirements.txt requirements-dev.txt requirements-test.txt
	.venv/bin/python -m ruff check .
	.venv/bin/python -m pytest -n $(TEST_WORKERS) --dist worksteal

bench:
	@scripts/venv requirements.txt requirements-dev.txt requirements-test.txt
	@command -v wrk >/dev/null || scripts/apt-install wrk
	.venv/bin/python bench/gateway.py
	.venv/bin/python bench/media.py
	.venv/bin/python bench/faults.py
	.venv/bin/python bench/keys.py
	.venv/bin/python bench/limits.py
	.venv/bin/python bench/health.py
	.venv/bin/python bench/sdk.py
	.venv/bin/python bench/accounts.py
	.venv/bin/python bench/usage.py
	.venv/bin/python bench/outages.py
	.venv/bin/python bench/soak.py
	.venv/bin/python bench/properties.py
	.venv/bin/python bench/cold_start.py
	.venv/bin/python bench/peers.py

screenshots:
	@scripts/venv requirements.txt requirements-dev.txt requirements-test.txt
	CLOUDGPT_SCREENSHOTS=docs/img .venv/bin/python -m pytest -q \
		tests/test_pages_dashboard.py::test_dashboard_screenshot \
		tests/test_pages_playground.py::test_a_conversation_is_sent_whole_with_system_prompt_temperature_and_max_tokens

lint:
	@scripts/venv requirements.txt requirements-dev.txt requirements-test.txt
	.venv/bin/python -m ruff check .
	.venv/bin/python -m ruff format --check .
