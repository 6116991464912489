"""Generated requests to every route of the OpenAPI document: none is a 5xx or breaks the document.

Schemathesis draws bodies, paths and headers from the document (valid ones and
ones that break it on purpose) and sends them to the local server in front of
both fakes, with a real key (an access token on /api/keys, where creating and
deleting keys takes one), except the cases that leave the credential out on
purpose: those go without one, to be refused. Each answer must be a non-5xx
whose status, content type, headers and body the document allows, and whatever
breaks the document must be refused with a 4xx. It does not insist that every
body the JSON Schema allows is accepted: rules across fields (a user message
needs content) are checked by the routes, not expressible in the schema.
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, Phase, find, settings
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import positive_data_acceptance

from lib.openapi import document
from tests.api_fixtures import CASES
from tests.conftest import Gateway

# bench/properties.py runs the same test with many more (CLOUDGPT_PROPERTY_EXAMPLES).
EXAMPLES_PER_OPERATION = int(os.environ.get("CLOUDGPT_PROPERTY_EXAMPLES", "100"))

# The document the server serves (tests/test_openapi.py shows they are the same).
schema = schemathesis.openapi.from_dict(document())


def leaves_out_the_credential(case: schemathesis.Case) -> bool:
    """Whether Schemathesis dropped or broke the Authorization header on purpose, for the server to refuse."""
    return case.operation.schema.is_security_param_negated(case)


def send(case: schemathesis.Case, gateway: Gateway, api_key: str, account_token: str) -> Response:
    """Send a case with the credential its route takes, unless it leaves the credential out on purpose."""
    managing = case.path.startswith("/api/keys") and case.path != "/api/keys/current"  # that one takes a key
    credential = account_token if managing else api_key
    headers = {} if leaves_out_the_credential(case) else {"Authorization": f"Bearer {credential}"}
    return case.call_and_validate(
        base_url=gateway.url, headers=headers, excluded_checks=[positive_data_acceptance], timeout=30
    )


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
    response = send(case, open_gateway, api_key, account_token)
    probe = case.method.lower() != case.operation.method.lower()  # another method, sent to get its 405
    CASES["other methods, every path" if probe else f"{case.method} {case.path}"][response.status_code] += 1


def test_a_case_generated_without_its_credential_is_sent_without_one(
    open_gateway: Gateway, api_key: str, account_token: str
) -> None:
    """Schemathesis keeps an explicit header off such a case only when the case breaks nothing but its headers.

    With a broken query too, the key went out anyway and the long run reported the 200 it got as a broken
    request accepted.
    """
    draw = settings(database=None, derandomize=True, max_examples=1000, phases=[Phase.generate])
    operation = schema["/api/usage"]["GET"]
    anonymous = find(
        operation.as_strategy(GenerationMode.NEGATIVE),
        lambda case: (
            leaves_out_the_credential(case)
            and "Authorization" not in (case.headers or {})
            and case.meta is not None
            and case.meta.is_negative_at(ParameterLocation.QUERY)
        ),
        settings=draw,
    )
    refused = send(anonymous, open_gateway, api_key, account_token)
    assert "Authorization" not in refused.request.headers
    assert refused.status_code == 401
    signed = find(operation.as_strategy(GenerationMode.POSITIVE), lambda case: True, settings=draw)
    assert send(signed, open_gateway, api_key, account_token).status_code == 200
