"""GET /api/openapi.json: a valid OpenAPI 3.1 document of exactly the routes that are served."""

from __future__ import annotations

import json
import re

import pytest
from openapi_spec_validator import validate

from lib import catalog
from tests.conftest import ROOT, Gateway

METHODS = ("get", "post", "patch", "delete")


@pytest.fixture(scope="module")
def document(gateway: Gateway) -> dict:
    response = gateway.client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


def test_the_document_is_valid_openapi_3_1(document: dict) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_the_home_page_links_the_document(gateway: Gateway) -> None:
    assert 'href="/api/openapi.json"' in gateway.client.get("/").text


def test_every_documented_path_is_served_with_exactly_its_documented_methods(
    gateway: Gateway, document: dict
) -> None:
    for path, operations in document["paths"].items():
        response = gateway.client.options(path.replace("{id}", "some-id"))
        assert response.status_code == 204, path
        served = set(response.headers["Allow"].lower().split(", ")) - {"options"}
        assert served == {method for method in operations if method in METHODS}, path


def test_every_function_and_every_rewrite_is_documented(document: dict) -> None:
    rewrites = json.loads((ROOT / "vercel.json").read_text())["rewrites"]
    functions = set()
    for file in (ROOT / "api").rglob("*.py"):
        route = "/" + str(file.relative_to(ROOT).with_suffix("")).removesuffix("/index")
        functions.add(re.sub(r"\[(\w+)\]", r"{\1}", route))
    documented = set(document["paths"])
    routes = [rewrite for rewrite in rewrites if not rewrite["source"].endswith("*")]  # not a catch-all
    assert {re.sub(r":(\w+)", r"{\1}", rewrite["source"]) for rewrite in routes} <= documented
    assert functions <= documented | {rewrite["destination"] for rewrite in rewrites}


@pytest.mark.parametrize(
    ("schema", "modality"),
    [
        ("ChatRequest", "chat"),
        ("ImageRequest", "image"),
        ("ImageGenerationRequest", "image"),
        ("VideoRequest", "video"),
    ],
)
def test_request_models_list_the_catalogs_ids_of_their_modality(
    document: dict, schema: str, modality: str
) -> None:
    model = document["components"]["schemas"][schema]["properties"]["model"]
    assert model["enum"] == [m.id for m in catalog.models(modality)]


def test_limited_routes_document_their_rate_limit_headers_and_the_bearer_key(document: dict) -> None:
    chat = document["paths"]["/v1/chat/completions"]["post"]
    assert chat["security"] == [{}, {"bearer": []}]
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(
        chat["responses"]["200"]["headers"]
    )
    assert chat["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
