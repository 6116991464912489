"""Generated requests to every route of the OpenAPI document: none is a 5xx or breaks the document.

Schemathesis draws bodies, paths and headers from the document (valid ones and
ones that break it on purpose) and sends them to the local server in front of
both fakes, with a real key (an access token on /api/keys, where creating and
deleting keys takes one). Each answer must be a non-5xx whose status, content
type, headers and body the document allows, and whatever breaks the document must
be refused with a 4xx. It does not insist that every body the JSON Schema allows is
accepted: rules across fields (a user message needs content) are checked by the
routes, not expressible in the schema.
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from lib.openapi import document
from tests.api_fixtures import CASES
from tests.conftest import Gateway

# bench/properties.py runs the same test with many more (CLOUDGPT_PROPERTY_EXAMPLES).
EXAMPLES_PER_OPERATION = int(os.environ.get("CLOUDGPT_PROPERTY_EXAMPLES", "100"))

# The document the server serves (tests/test_openapi.py shows they are the same).
schema = schemathesis.openapi.from_dict(document())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_generated_request_gets_a_5xx_or_an_undocumented_answer(
    case: schemathesis.Case, open_gateway: Gateway, api_key: str, account_token: str
) -> None:
    managing = case.path.startswith("/api/keys") and case.path != "/api/keys/current"  # that one takes a key
    credential = account_token if managing else api_key
    response = case.call_and_validate(
        base_url=open_gateway.url,
        headers={"Authorization": f"Bearer {credential}"},
        excluded_checks=[positive_data_acceptance],
        timeout=30,
    )
    probe = case.method.lower() != case.operation.method.lower()  # another method, sent to get its 405
    CASES["other methods, every path" if probe else f"{case.method} {case.path}"][response.status_code] += 1
