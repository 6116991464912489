"""The OpenAPI 3.1 document of every route, built from the models the routes validate with.

Request bodies are the pydantic models of `lib.schemas`, so the document cannot say
other than what the routes accept; `model` lists the catalog's ids. The answers'
shapes are the models below. Only GET /api/openapi.json imports this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from lib import catalog
from lib.schemas import (
    ChatRequest,
    CreateKeyRequest,
    ImageGenerationRequest,
    ImageRequest,
    KeyLimits,
    KeyQuota,
    SessionRequest,
    UpdateKeyRequest,
    VideoRequest,
)

_REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    message: str = Field(description="What went wrong, in a sentence meant for a person.")
    type: Literal[
        "invalid_request_error", "authentication_error", "permission_error", "rate_limit_error", "api_error"
    ]
    code: str | None = Field(description="A stable machine-readable reason, e.g. `model_not_found`.")
    param: str | None = Field(description="The request field at fault, when there is one.")
    requestId: str | None = Field(
        None,
        description="The request's `X-Request-Id`, to quote in a bug report (absent in a stream's last event).",
        pattern=r"^req_[0-9a-f]{24}$",
    )


class ErrorEnvelope(BaseModel):
    """Every error, CloudGPT's or a provider's: OpenAI's own error shape."""

    error: ErrorDetail


class ChatChoice(BaseModel):
    model_config = ConfigDict(extra="allow")
    index: int | None = None
    message: dict[str, Any] | None = Field(None, description="`{role, content, tool_calls?}`.")
    finish_reason: str | None = None


class _ProviderObject(BaseModel):
    """What OpenAI's chat objects carry, as the provider made them: its fields are kept."""

    model_config = ConfigDict(extra="allow")
    id: str | None = None
    object: str | None = None
    created: int | None = None
    model: str | None = Field(None, description="The name the provider answered with.")


class ChatCompletion(_ProviderObject):
    """OpenAI's `chat.completion`; `choices` is always there."""

    choices: list[ChatChoice]
    usage: dict[str, Any] | None = None


class ChatCompletionChunk(_ProviderObject):
    """OpenAI's `chat.completion.chunk`: one streamed event's data."""

    choices: list[dict[str, Any]] | None = Field(None, description="`[{index, delta, finish_reason}]`.")


class ImageData(BaseModel):
    b64_json: str = Field(description="The image's bytes in base64.")


class ImagesResponse(BaseModel):
    """OpenAI's images answer: one image, inline."""

    created: int
    output_format: str = Field(description="The image's format: `png`, `jpeg`, `webp`, ...")
    data: list[ImageData] = Field(min_length=1, max_length=1)


class CatalogModel(BaseModel):
    """A model as `GET /api/models/<modality>` lists it."""

    id: str
    name: str
    provider: Literal[catalog.PROVIDERS]  # type: ignore[valid-type]
    description: str
    contextWindow: int | None = Field(None, description="Chat models: tokens of context.")
    maxDuration: int | None = Field(None, description="Video models: the longest clip, in seconds.")
    fallback: str | None = Field(
        None, description="The model tried next when this one's provider fails before answering."
    )


class CatalogModelList(BaseModel):
    object: Literal["list"]
    data: list[CatalogModel]


class OpenAIModel(CatalogModel):
    """A model in OpenAI's `model` shape, CloudGPT's fields beside OpenAI's."""

    object: Literal["model"]
    created: int = Field(description="When the catalog took the model in (Unix seconds).")
    owned_by: Literal[catalog.PROVIDERS]  # type: ignore[valid-type]
    modality: Literal["chat", "image", "video"]


class OpenAIModelList(BaseModel):
    object: Literal["list"]
    data: list[OpenAIModel]


class _Controls(BaseModel):
    expires: int | None = Field(description="Unix seconds after which the key is a 401 `api_key_expired`.")
    disabled: bool = Field(description="A disabled key is a 401 `api_key_disabled` until enabled again.")
    models: list[str] | None = Field(description="The catalog ids the key may call; null: every model.")
    limits: KeyLimits = Field(description="The key's own per-minute limits; null: only the account's.")
    quota: KeyQuota | None = Field(description="The key's cap per UTC day or month; null: none.")


class QuotaUsed(BaseModel):
    requests: int = Field(description="Requests admitted in the current period.")
    tokens: int = Field(description="Tokens of the answers that ended in the current period.")
    resets: int = Field(description="When the period ends (Unix seconds, UTC midnight).")


class CreatedKey(_Controls):
    id: str
    key: str = Field(description="The key itself (`cgpt_...`): shown this once, never again.")
    name: str
    created: int


class KeyInfo(_Controls):
    id: str
    name: str
    prefix: str = Field(description="The key's first characters, e.g. `cgpt_AbCd...`.")
    created: int
    lastUsed: int | None
    quotaUsed: QuotaUsed | None = Field(
        None, description="How much of the quota is used (only for a key with a quota, when known)."
    )


class KeyList(BaseModel):
    data: list[KeyInfo]


class DeletedKey(BaseModel):
    deleted: Literal[True]
    id: str


class StoreHealth(BaseModel):
    backend: Literal["supabase", "upstash", "sqlite"] | None = Field(
        description="The store the functions use; null on Vercel when none is configured."
    )
    reachable: bool
    roundTripMs: float | None = Field(description="One read of the store, timed inside the function.")
    error: str | None = Field(description="The error code the store's failure answers, when it failed.")
    problem: Literal["functions_missing", "wrong_key", "unreachable", "failing"] | None = Field(
        description="(key store) Which failure: migrations not applied, the project key refused, "
        "no answer in time, anything else."
    )


class ProviderHealth(BaseModel):
    apiKey: bool = Field(description="Whether CloudGPT's key for this provider is set (never the key).")


class Health(BaseModel):
    """What the deployment sees of itself; nothing secret."""

    status: Literal["ok", "degraded"] = Field(description="`degraded` when a store cannot be used.")
    runtime: Literal["vercel", "local"]
    region: str | None = Field(description="The Vercel region the function ran in (`VERCEL_REGION`).")
    missing: list[str] = Field(description="Variables whose absence turns something off.")
    providers: dict[str, ProviderHealth]
    accountTokens: dict[str, bool] = Field(description="`jwtSecret` (HS256), `jwks` (RS256/ES256).")
    checkedAt: int = Field(description="When the stores were last probed (Unix s): at most every 5 s.")
    keyStore: StoreHealth
    counters: StoreHealth


class SupabaseProject(BaseModel):
    url: str = Field(description="The Supabase project's URL, for `supabase.createClient`.")
    anonKey: str = Field(description="The project's anon key: public by design.")


class AuthConfig(BaseModel):
    mode: Literal["supabase", "local", "none"] = Field(
        description="`supabase`: Supabase Auth; `local`: the embedded default's one-time links; `none`: no accounts."
    )
    supabase: SupabaseProject | None
    methods: list[str] = Field(
        description="Supabase sign-in methods: `password`, `magiclink`, OAuth providers."
    )


class ModalityLimits(BaseModel):
    anonymous: int = Field(description="Requests per minute without a key, per IP.")
    authenticated: int = Field(description="Requests per minute with a key, per user.")


class PublicConfig(BaseModel):
    """What the pages need to know; nothing in it is secret."""

    baseUrl: str = Field(description="The OpenAI-compatible base URL, `<origin>/v1`.")
    auth: AuthConfig
    limits: dict[Literal["chat", "image", "video"], ModalityLimits]
    maxKeys: int = Field(description="API keys a user may have at once.")


class SessionUser(BaseModel):
    id: str = Field(description="The local operator's stable user id.")
    email: None


class Session(BaseModel):
    """A local sign-in: an access token for /api/keys."""

    accessToken: str
    expiresAt: int = Field(description="When the token expires (Unix seconds).")
    user: SessionUser


class UsageCounts(BaseModel):
    requests: int = Field(ge=0)
    errors: int = Field(ge=0, description="4xx answers after the rate-limit check, 5xx, broken streams.")
    promptTokens: int = Field(ge=0, description="As the provider stated them; 0 when it gave none.")
    completionTokens: int = Field(ge=0)
    images: int = Field(ge=0, description="Images delivered.")
    videoSeconds: int = Field(ge=0, description="The requested duration of each clip delivered.")


class UsageRow(UsageCounts):
    date: str = Field(description="The UTC day (`YYYY-MM-DD`).", pattern=r"^\d{4}-\d{2}-\d{2}$")
    keyId: str = Field(description="The key the requests were made with; revoked keys stay listed.")
    model: str | None = Field(description="The model asked for; null if the request failed before one.")
    modality: Literal["chat", "image", "video"]


class UsageReport(BaseModel):
    object: Literal["usage"]
    from_: str = Field(alias="from", description="The first UTC day covered.")
    to: str = Field(description="The last UTC day covered: today.")
    data: list[UsageRow] = Field(description="Newest day first; rows with nothing in them are left out.")
    totals: UsageCounts
    revokedKeys: dict[str, str] = Field(
        description="The names of the revoked keys `data` has rows of, by key id (keys revoked through the API)."
    )


class ActivityEntry(BaseModel):
    """One request of one of the user's keys, once answered: what happened to it, never what it said."""

    id: str = Field(description="The request's `X-Request-Id`.", pattern=r"^req_[0-9a-f]{24}$")
    time: int = Field(description="When it arrived (Unix milliseconds).")
    keyId: str = Field(
        description='The key it was made with (revoked keys stay listed); `""` for a signed-in call.'
    )
    model: str | None = Field(description="The model asked for; null if the request failed before one.")
    modality: Literal["chat", "image", "video"]
    provider: str | None = Field(
        description="The provider that answered (or failed); null if none was asked."
    )
    status: int = Field(description="The HTTP status the caller got.")
    error: str | None = Field(
        description="The error code the caller got, in the envelope or a stream's last event; null if none."
    )
    latencyMs: int = Field(ge=1, description="From the request's arrival to its answer's last byte.")
    firstByteMs: int = Field(ge=1, description="From the request's arrival to its answer's first byte.")
    promptTokens: int = Field(ge=0, description="As the provider stated them; 0 when it gave none.")
    completionTokens: int = Field(ge=0)
    images: int = Field(ge=0, description="Images delivered.")
    videoSeconds: int = Field(ge=0, description="The requested duration of the clip delivered.")
    stream: bool = Field(description="Whether a stream was asked for.")
    fallback: bool = Field(
        description="Whether `provider` was not the first one tried: the model's fallback."
    )


class ActivityList(BaseModel):
    object: Literal["list"]
    data: list[ActivityEntry] = Field(description="Newest first.")
    hasMore: bool = Field(description="Whether older entries match: ask again with `before` the last id.")


_ERRORS = {
    400: "The request is malformed: a field is missing or invalid, or the model is unknown.",
    401: (
        "The key (or access token, or sign-in code) is missing, malformed, unknown, used or revoked, "
        "or the token's session was signed out (`session_ended`)."
    ),
    403: (
        "The credential is valid but cannot do this: creating, changing and deleting keys needs an "
        "account session (a Supabase Auth access token), not an API key; anonymous sign-ins get no "
        "keys; a key limited to some models cannot call others (`model_not_allowed`)."
    ),
    404: "No such resource (/api/session: not in this configuration).",
    413: "The body is larger than the route accepts.",
    429: (
        "Past the minute's rate limit (CloudGPT's, the key's own, or the provider's), or past the key's "
        "quota (`key_quota_exceeded`): retry after `Retry-After` seconds."
    ),
    502: "The provider answered with an error or with something unusable.",
    503: "A provider or backend is unavailable or not configured.",
    504: "The provider did not answer in time.",
}
_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-Id": {
        "description": "This request's id; quote it when reporting a problem.",
        "schema": {"type": "string", "pattern": "^req_[0-9a-f]{24}$"},
    },
    "X-RateLimit-Limit": {
        "description": "Requests allowed in the current minute.",
        "schema": {"type": "integer", "minimum": 1},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the current minute (absent when unchecked).",
        "schema": {"type": "integer", "minimum": 0},
    },
    "X-RateLimit-Reset": {
        "description": "When the current minute's window ends (Unix seconds).",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Status": {
        "description": "`unchecked` when the counters could not be reached and the request was served anyway.",
        "schema": {"type": "string", "enum": ["unchecked"]},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    },
    "X-CloudGPT-Provider": {
        "description": "The provider that answered, or that failed.",
        "schema": {"type": "string", "enum": list(catalog.PROVIDERS)},
    },
}
_SECURITY = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "A CloudGPT API key (`cgpt_...`). Listing keys and reading usage also take a Supabase Auth "
            "access token; creating, changing and deleting keys take only that."
        ),
    }
}


@dataclass(frozen=True)
class _Answer:
    """A success: its status, media types (a pydantic model for JSON) and description."""

    description: str
    content: dict[str, type[BaseModel] | dict[str, Any]]
    status: int = 200


def _json(model: type[BaseModel], description: str, status: int = 200) -> _Answer:
    return _Answer(description, {"application/json": model}, status)


def _binary(media_type: str, description: str) -> _Answer:
    return _Answer(description, {media_type: {"type": "string", "format": "binary"}})


@dataclass(frozen=True)
class _Operation:
    method: str
    paths: tuple[str, ...]  # the route, then the OpenAI-compatible paths served by the same code
    summary: str
    tag: str
    answer: _Answer
    body: type[BaseModel] | None = None
    body_required: bool = True
    auth: Literal["none", "optional", "required"] = "none"
    limited: bool = False  # counted against a per-minute rate limit
    provider: bool = False  # answered by a provider
    errors: tuple[int, ...] = ()
    query: tuple[dict[str, Any], ...] = ()  # query parameters, as OpenAPI describes them


_PROVIDER_ERRORS = (400, 401, 403, 413, 429, 502, 503, 504)


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    """An optional query parameter, as OpenAPI describes one."""
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _key_id(what: str) -> dict[str, Any]:
    return _query(
        "keyId", f"Only this key's {what} (one of yours; another user's key id has none).",
        type="string", pattern="^key_[A-Za-z0-9]{20}$",
    )  # fmt: skip


def _format(what: str) -> dict[str, Any]:
    return _query(
        "format", f"`csv`: the {what} as `text/csv` with a header row, for spreadsheets.",
        type="string", enum=["json", "csv"], default="json",
    )  # fmt: skip


_USAGE_QUERY = (
    _query(
        "days",
        "How many UTC days to cover, today included.",
        type="integer",
        minimum=1,
        maximum=90,
        default=30,
    ),
    _key_id("usage"),
    _format("rows"),
)
_ACTIVITY_QUERY = (
    _query(
        "limit", "How many entries at most (a CSV without it holds every entry kept that matches).",
        type="integer", minimum=1, maximum=200, default=50,
    ),
    _query(
        "before", "An entry's id: the page of entries older than it (one of yours, still kept).",
        type="string", pattern="^req_[0-9a-f]{24}$",
    ),
    _key_id("requests"),
    _query("model", "Only requests for this model id.", type="string", pattern="^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$"),
    _query(
        "status", "`ok`: only answers without an error; `error`: only those with one.",
        type="string", enum=["ok", "error"],
    ),
    _format("entries (times in ISO 8601, UTC)"),
)  # fmt: skip
_CSV = {"type": "string", "description": "A header row, then one line per row."}
_KEY_ERRORS = (401, 429, 503)

# One server-sent event of a streamed completion (the schema of each event, as OpenAPI 3.1 has it).
_CHAT_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "anyOf": [
                {"const": "[DONE]"},
                {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {
                        "anyOf": [
                            {"$ref": _REF.format(model="ChatCompletionChunk")},
                            {"$ref": _REF.format(model="ErrorEnvelope")},
                        ]
                    },
                },
            ]
        }
    },
}
_CHAT_ANSWER = _Answer(
    "A `chat.completion`; with `stream: true` a `text/event-stream` of `data: {chat.completion.chunk}` "
    "events ending in `data: [DONE]` (a failure after the first event arrives as a last "
    '`data: {"error": ...}` event, and no `[DONE]`).',
    {"application/json": ChatCompletion, "text/event-stream": _CHAT_EVENT},
)


def _provided(
    paths: tuple[str, ...], summary: str, tag: str, answer: _Answer, body: type[BaseModel]
) -> _Operation:
    """A route a provider answers: a key is optional, it is rate limited, it can fail upstream."""
    return _Operation(
        "post",
        paths,
        summary,
        tag,
        answer,
        body,
        auth="optional",
        limited=True,
        provider=True,
        errors=_PROVIDER_ERRORS,
    )


_OPERATIONS = (
    _provided(("/api/chat", "/v1/chat/completions"), "Create a chat completion", "Chat", _CHAT_ANSWER, ChatRequest),
    _provided(
        ("/api/image",), "Generate an image", "Images",
        _binary("image/*", "The image's bytes, streamed as they arrive."), ImageRequest,
    ),
    _provided(
        ("/api/images/generations", "/v1/images/generations"), "Generate an image as base64 JSON", "Images",
        _json(ImagesResponse, "The image in base64, written as it arrives."), ImageGenerationRequest,
    ),
    _provided(
        ("/api/video",), "Generate a video", "Videos",
        _binary("video/*", "The clip's bytes (`video/mp4`), streamed as they arrive."), VideoRequest,
    ),
    _Operation(
        "get", ("/api/models", "/v1/models"), "List every model", "Models",
        _json(OpenAIModelList, "Every model of every modality, in OpenAI's list shape."),
    ),
    _Operation(
        "get", ("/api/models/{id}", "/v1/models/{id}"), "Retrieve a model", "Models",
        _json(OpenAIModel, "The model."), errors=(404,),
    ),
    *(
        _Operation(
            "get", (f"/api/models/{modality}",), f"List the {modality} models", "Models",
            _json(CatalogModelList, f"The catalog's {modality} models."),
        )
        for modality in ("chat", "image", "video")
    ),
    _Operation(
        "get", ("/api/keys",), "List your API keys", "Keys",
        _json(KeyList, "The caller's keys, newest first."), auth="required", limited=True,
        errors=_KEY_ERRORS,
    ),
    _Operation(
        "post", ("/api/keys",), "Create an API key", "Keys",
        _json(CreatedKey, "The new key: the only time it is shown.", status=201),
        CreateKeyRequest, body_required=False, auth="required", limited=True,
        errors=(400, 403, 413, *_KEY_ERRORS),
    ),
    _Operation(
        "get", ("/api/keys/current",), "The key you call with: its settings and quota use", "Keys",
        _json(KeyInfo, "The calling key as listed, never the key itself."), auth="required", limited=True,
        errors=_KEY_ERRORS,
    ),
    _Operation(
        "patch", ("/api/keys/{id}",), "Change an API key's name or controls", "Keys",
        _json(KeyInfo, "The key as changed; every instance holds to it within a second."),
        UpdateKeyRequest, auth="required", limited=True, errors=(400, 403, 404, 413, *_KEY_ERRORS),
    ),
    _Operation(
        "delete", ("/api/keys/{id}",), "Revoke an API key", "Keys",
        _json(DeletedKey, "The key is revoked."), auth="required", limited=True,
        errors=(403, 404, *_KEY_ERRORS),
    ),
    _Operation(
        "get", ("/api/health",), "What the deployment sees of itself", "Meta",
        _json(Health, "Backends, missing variables, each store's round trip from the function."),
        errors=(429, 503),
    ),
    _Operation(
        "get", ("/api/config",), "What the pages need to know", "Accounts",
        _json(PublicConfig, "The base URL, how to sign in, the limits, the key cap: nothing secret."),
    ),
    _Operation(
        "post", ("/api/session",), "Redeem a local sign-in code", "Accounts",
        _json(Session, "An access token for the local operator; the code is used up."),
        SessionRequest, errors=(400, 401, 404, 413, 503),
    ),
    _Operation(
        "delete", ("/api/session",), "Sign out: end the access token's session", "Accounts",
        _Answer("The session has ended: its access token is refused from now on.", {}, 204),
        auth="required", errors=(401, 404, 503),
    ),
    _Operation(
        "get", ("/api/usage",), "Your usage per day, key, model and modality", "Usage",
        _Answer(
            "The caller's usage, all of their keys (revoked ones too), and its totals.",
            {"application/json": UsageReport, "text/csv": _CSV},
        ),
        auth="required", limited=True, errors=(400, *_KEY_ERRORS), query=_USAGE_QUERY,
    ),
    _Operation(
        "get", ("/api/activity",), "Your requests one by one, newest first", "Usage",
        _Answer(
            "The caller's requests (of their keys, to the generation routes), each once answered; "
            "kept at least 7 days and at least the last 1,000.",
            {"application/json": ActivityList, "text/csv": _CSV},
        ),
        auth="required", limited=True, errors=(400, *_KEY_ERRORS), query=_ACTIVITY_QUERY,
    ),
    _Operation(
        "get", ("/api/openapi.json",), "This document", "Meta",
        _Answer("The OpenAPI 3.1 document.", {"application/json": {"type": "object"}}),
    ),
)  # fmt: skip

_BODIES = {
    ChatRequest: "chat",
    ImageRequest: "image",
    ImageGenerationRequest: "image",
    VideoRequest: "video",
    CreateKeyRequest: None,
    UpdateKeyRequest: None,
    SessionRequest: None,
}


@cache
def document() -> dict[str, Any]:
    """The whole document, built once per process."""
    answer_models = {
        content
        for operation in _OPERATIONS
        for content in operation.answer.content.values()
        if isinstance(content, type)
    }
    refs, defs = models_json_schema(
        [(model, "validation") for model in [*_BODIES, *sorted(answer_models, key=lambda m: m.__name__)]]
        + [(ErrorEnvelope, "validation"), (ChatCompletionChunk, "validation")],
        ref_template=_REF,
    )
    schemas = defs["$defs"]
    for model, modality in _BODIES.items():
        if modality is not None:  # the catalog's ids, so a client can offer them
            schemas[model.__name__]["properties"]["model"]["enum"] = [m.id for m in catalog.models(modality)]
    paths: dict[str, dict[str, Any]] = {}
    for operation in _OPERATIONS:
        for path in operation.paths:
            paths.setdefault(path, {})[operation.method] = _operation(operation, path, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CloudGPT",
            "version": "1.0",
            "description": (
                "One API key, one error format and one set of rate limits in front of several AI "
                "providers, for chat, image and video generation. The /v1 routes are OpenAI-compatible: "
                "point an OpenAI SDK's base URL at `<host>/v1`."
            ),
        },
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": _SECURITY},
    }


def _operation(operation: _Operation, path: str, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    answer = operation.answer
    item: dict[str, Any] = {
        "operationId": operation.method
        + re.sub(r"[^a-z0-9]+", "_", path).rstrip("_"),  # post_v1_chat_completions
        "summary": operation.summary,
        "tags": [operation.tag],
        "responses": {
            str(answer.status): {
                "description": answer.description,
                "headers": _headers(operation, answer.status),
                **(
                    {
                        "content": {
                            media_type: {
                                "schema": refs[(schema, "validation")] if isinstance(schema, type) else schema
                            }
                            for media_type, schema in answer.content.items()
                        }
                    }
                    if answer.content
                    else {}
                ),
            },
            **{
                str(status): {
                    "description": _ERRORS[status],
                    "headers": _headers(operation, status),
                    "content": {"application/json": {"schema": refs[(ErrorEnvelope, "validation")]}},
                }
                for status in operation.errors
            },
        },
    }
    if operation.body is not None:
        item["requestBody"] = {
            "required": operation.body_required,
            "content": {"application/json": {"schema": refs[(operation.body, "validation")]}},
        }
    if operation.query:
        item["parameters"] = list(operation.query)
    if "{id}" in path:
        ids = {"enum": [model.id for model in catalog.every_model()]} if operation.tag == "Models" else {}
        item["parameters"] = [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string", **ids}}
        ]
    if operation.auth == "required":
        item["security"] = [{"bearer": []}]
    elif operation.auth == "optional":
        item["security"] = [{}, {"bearer": []}]  # without a key: the anonymous limits, per IP
    return item


def _headers(operation: _Operation, status: int) -> dict[str, Any]:
    """The headers a response carries; the ones it always carries are `required`."""
    names: dict[str, bool] = {"X-Request-Id": True}
    if operation.limited and status != 401:  # a refused key is refused before it is counted
        always = status in (200, 429)
        names |= {"X-RateLimit-Limit": always, "X-RateLimit-Reset": always}
        names |= {"X-RateLimit-Remaining": False, "X-RateLimit-Status": False}
    if status == 429:
        names["Retry-After"] = True
    if operation.provider and status in (200, 502, 503, 504):
        names["X-CloudGPT-Provider"] = status == 200
    return {name: {**_HEADERS[name], "required": required} for name, required in names.items()}
