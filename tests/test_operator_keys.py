"""A key made in the terminal for the local operator is one the local dashboard shows."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.conftest import Gateway
from tests.key_stores import fresh_code
from tests.test_key_lifecycle import chat, cli


def test_a_key_made_with_operator_appears_on_the_local_dashboard(
    start_gateway: Callable[..., Gateway], tmp_path_factory
) -> None:
    data_dir = str(tmp_path_factory.mktemp("operator"))
    gateway = start_gateway(CLOUDGPT_DATA_DIR=data_dir)
    created = cli({"CLOUDGPT_DATA_DIR": data_dir}, "create", "--operator", "--name", "terminal")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert chat(gateway, key["key"]) == 200

    # What the dashboard does after a `make signin` link: redeem it, then list its keys.
    session = gateway.client.post("/api/session", json={"code": fresh_code(data_dir)}).json()
    listed = gateway.client.get("/api/keys", headers={"Authorization": f"Bearer {session['accessToken']}"})
    assert [(k["id"], k["name"]) for k in listed.json()["data"]] == [(key["id"], "terminal")]
    operator = json.loads(cli({"CLOUDGPT_DATA_DIR": data_dir}, "list", "--operator").stdout)["data"]
    assert [k["id"] for k in operator] == [key["id"]]


def test_operator_is_refused_where_accounts_are_supabases() -> None:
    done = cli({"SUPABASE_URL": "https://project.example.co"}, "list", "--operator")
    assert done.returncode == 2
    assert "--operator is the local dashboard's user" in done.stderr
    both = cli({}, "list", "--operator", "--user", "6f1c1a55-3c35-4a52-8a47-1f4b1b8b2f10")
    assert both.returncode == 2
    assert "not allowed with" in both.stderr
