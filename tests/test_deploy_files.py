"""The files a deployment starts from: .env.example, the Deploy button, .vercelignore."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

from lib.settings import load
from tests.conftest import ROOT

ENV_LINE = re.compile(r"^(?:# )?([A-Z][A-Z0-9_]*)=(.*)$")
BUTTON = re.compile(
    r"\[!\[Deploy with Vercel\]\(https://vercel\.com/button\)\]\((https://vercel\.com/new/clone\?[^)\s]+)\)"
)
SET_BY_VERCEL = {"VERCEL", "VERCEL_REGION"}


class Recording(dict):
    """An environment that remembers every name asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def get(self, name: str, default: object = None) -> object:
        self.asked.append(name)
        return super().get(name, default)


def read_by_settings() -> set[str]:
    env = Recording()
    load(env)
    return set(env.asked)


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    found = [match.groups() for line in lines if (match := ENV_LINE.match(line))]
    names = [name for name, _ in found]
    assert len(names) == len(set(names)), "a variable listed twice"
    return dict(found)


def test_env_example_lists_exactly_what_the_settings_read() -> None:
    assert set(env_example()) == read_by_settings()


def test_env_example_defaults_are_the_settings_defaults() -> None:
    defaults = {name: value for name, value in env_example().items() if value and name not in SET_BY_VERCEL}
    assert defaults, "the optional variables show their defaults"
    assert load(defaults) == load({})


def test_env_example_needs_first_and_sets_no_secret() -> None:
    text = (ROOT / ".env.example").read_text()
    assigned = [line for line in text.splitlines() if ENV_LINE.match(line) and not line.startswith("#")]
    assert all(line.endswith("=") for line in assigned), "values to fill in stay empty"
    first = [line.removesuffix("=") for line in assigned][:6]
    assert first == [
        "POLLINATIONS_API_KEY",
        "SUPABASE_URL",
        "SUPABASE_SECRET_KEY",
        "SUPABASE_PUBLISHABLE_KEY",
        "UPSTASH_REDIS_REST_URL",
        "UPSTASH_REDIS_REST_TOKEN",
    ]


def deploy_buttons() -> dict[str, str]:
    found = {}
    for doc in ("README.md", "docs/deploy.md"):
        urls = BUTTON.findall((ROOT / doc).read_text())
        assert len(urls) == 1, f"{doc} has one Deploy button"
        found[doc] = urls[0]
    return found


def test_the_deploy_buttons_agree_and_are_well_formed() -> None:
    buttons = deploy_buttons()
    assert len(set(buttons.values())) == 1, "README.md and docs/deploy.md show the same button"
    url = urlsplit(next(iter(buttons.values())))
    query = parse_qs(url.query, strict_parsing=True)
    assert all(len(values) == 1 for values in query.values()), "no parameter repeated"
    params = {name: values[0] for name, values in query.items()}
    assert set(params) == {
        "repository-url",
        "project-name",
        "repository-name",
        "env",
        "envDescription",
        "envLink",
        "products",
    }
    assert re.fullmatch(r"https://github\.com/[A-Za-z0-9-]+/[A-Za-z0-9._-]+", params["repository-url"])
    assert urlsplit(params["envLink"]).scheme == "https"
    assert params["envDescription"].strip()

    asked = params["env"].split(",")
    assert set(asked) <= read_by_settings(), "the button asks only for variables CloudGPT reads"
    assert "POLLINATIONS_API_KEY" in asked

    products = json.loads(params["products"])
    assert {(p["type"], p["protocol"], p["integrationSlug"], p["productSlug"]) for p in products} == {
        ("integration", "storage", "supabase", "supabase"),
        ("integration", "storage", "upstash", "upstash-kv"),
    }
    # What those integrations set is read: the Supabase pair, and Upstash's KV_REST_API_* pair.
    assert {"SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_ANON_KEY"} <= read_by_settings()
    assert {"KV_REST_API_URL", "KV_REST_API_TOKEN"} <= read_by_settings()


def test_vercelignore_keeps_local_state_and_secrets_out_of_the_upload() -> None:
    ignored = {
        line.strip() for line in (ROOT / ".vercelignore").read_text().splitlines() if not line.startswith("#")
    }
    assert {".cloudgpt/", ".venv/", ".cache/", ".env", ".env.*", ".pytest_cache/", ".hypothesis/"} <= ignored


def test_every_variable_the_guide_names_is_read_or_said_to_be_someone_elses() -> None:
    """A renamed or removed setting cannot leave the guide sending people to set a dead variable."""
    guide = (ROOT / "docs/deploy.md").read_text()
    named = set(re.findall(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=[^`]*)?`", guide))
    # Read by Vercel's Python builder at build time, and by the Supabase CLI (step 5).
    others = {"VERCEL_PYTHON_COMPILEALL", "POSTGRES_URL_NON_POOLING"}
    assert named - others <= read_by_settings()
    assert {"SUPABASE_SECRET_KEY", "SUPABASE_PUBLISHABLE_KEY"} <= named
    # Today's keys come first, the legacy ones after, as the older way.
    assert guide.index("SUPABASE_SECRET_KEY") < guide.index("SUPABASE_SERVICE_ROLE_KEY")
    assert guide.index("SUPABASE_PUBLISHABLE_KEY") < guide.index("SUPABASE_ANON_KEY")
