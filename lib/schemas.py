"""The request bodies CloudGPT accepts, as pydantic models.

They are strict (no "1" for 1, no unknown fields) and follow OpenAI's chat fields
and the spec's media fields, so what validates here is what the upstreams accept.

Each model's validator is built when it first validates (`defer_build`), not at
import: a cold start pays only for the request shapes its function reads.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from lib.errors import BadRequest

_STRICT = ConfigDict(extra="forbid", strict=True, defer_build=True)


class ContentPart(BaseModel):
    """One part of a multi-part message: text, an image, audio, a file, ..."""

    model_config = ConfigDict(extra="allow", strict=True, defer_build=True)
    type: str = Field(min_length=1)

    @model_validator(mode="after")
    def _check_known_parts(self) -> ContentPart:
        extra = self.model_extra or {}
        if self.type == "text" and not isinstance(extra.get("text"), str):
            raise ValueError("a text part needs a string 'text'")
        if self.type == "image_url":
            image = extra.get("image_url")
            if not isinstance(image, dict) or not isinstance(image.get("url"), str):
                raise ValueError("an image_url part needs 'image_url': {'url': ...}")
        return self


class FunctionCall(BaseModel):
    model_config = _STRICT
    name: str
    arguments: str


class ToolCall(BaseModel):
    model_config = _STRICT
    id: str
    type: Literal["function"]
    function: FunctionCall


# A message's content: text, or a non-empty array of parts.
Content = str | Annotated[list[ContentPart], Field(min_length=1)]


class _Message(BaseModel):
    model_config = _STRICT
    name: str | None = None


class SystemMessage(_Message):
    role: Literal["system"]
    content: Content


class DeveloperMessage(_Message):
    role: Literal["developer"]
    content: Content


class UserMessage(_Message):
    role: Literal["user"]
    content: Content


class AssistantMessage(_Message):
    role: Literal["assistant"]
    content: Content | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None  # OpenAI's older form of one tool call
    refusal: str | None = None
    audio: dict[str, Any] | None = None  # `{"id"}` of an earlier spoken answer
    # Part of a completion's message, so OpenAI's SDKs send it back when the message is
    # appended to the conversation as it came; it is not passed on.
    annotations: list[dict[str, Any]] | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _says_something(self) -> AssistantMessage:
        if self.content is None and not self.tool_calls and self.function_call is None:
            raise ValueError("an assistant message needs 'content' or 'tool_calls'")
        return self


class ToolMessage(_Message):
    role: Literal["tool"]
    content: Content
    tool_call_id: str = Field(min_length=1)


# Which fields a message has depends on its role, as in OpenAI's API.
Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]
MESSAGE_ROLES = ("system", "developer", "user", "assistant", "tool")


class FunctionTool(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(BaseModel):
    model_config = _STRICT
    type: Literal["function"]
    function: FunctionTool


class NamedToolChoice(BaseModel):
    model_config = _STRICT
    type: Literal["function"]
    function: dict[str, str]


class JsonSchemaFormat(BaseModel):
    model_config = _STRICT
    name: str
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = _STRICT
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_usage: bool | None = None


class ChatRequest(BaseModel):
    """POST /api/chat: OpenAI's chat completion request, for any catalog chat model."""

    model_config = _STRICT
    model: str
    messages: list[Message] = Field(min_length=1)
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    stream: bool = False
    top_p: float | None = Field(None, ge=0, le=1)
    stop: str | Annotated[list[str], Field(min_length=1, max_length=4)] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    user: str | None = Field(None, max_length=256)
    stream_options: StreamOptions | None = None
    max_completion_tokens: int | None = Field(None, ge=1, description="OpenAI's newer name for `max_tokens`.")
    n: Literal[1] | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    logit_bias: dict[str, Annotated[int, Field(ge=-100, le=100)]] | None = None
    reasoning_effort: str | None = Field(None, min_length=1, max_length=32)

    @field_validator("max_completion_tokens")
    @classmethod
    def _one_token_limit(cls, limit: int | None, info: ValidationInfo) -> int | None:
        if limit is not None and info.data.get("max_tokens") is not None:
            raise ValueError("give 'max_tokens' or 'max_completion_tokens', not both")
        return limit

    def upstream_body(self, upstream_model: str) -> dict[str, Any]:
        """The body to send a provider: our fields, its name for the model, the token limit as `max_tokens`."""
        body = self.model_dump(exclude_none=True, by_alias=True, exclude={"max_completion_tokens", "n"})
        body["model"] = upstream_model
        if self.max_completion_tokens is not None:
            body["max_tokens"] = self.max_completion_tokens
        return body


class _PromptRequest(BaseModel):
    """What every media request has: a prompt for a catalog model."""

    model_config = _STRICT
    # A Pollinations prompt travels in the URL path; 2000 characters keep that URL sane.
    prompt: str = Field(min_length=1, max_length=2000)
    model: str

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, prompt: str) -> str:
        if not prompt.strip():
            raise ValueError("the prompt must not be blank")
        return prompt


class _MediaRequest(_PromptRequest):
    """Image and video requests of CloudGPT's own shape: a prompt and a size in pixels."""

    width: int  # each request type sets its own default and bounds
    height: int

    @property
    def size(self) -> str:
        """`WxH`, the way OpenAI-style APIs take a size."""
        return f"{self.width}x{self.height}"


IMAGE_SIDE = (64, 2048)  # pixels, the least and the most an image side may be


class ImageRequest(_MediaRequest):
    """POST /api/image: one image from a prompt."""

    width: int = Field(1024, ge=IMAGE_SIDE[0], le=IMAGE_SIDE[1])
    height: int = Field(1024, ge=IMAGE_SIDE[0], le=IMAGE_SIDE[1])
    seed: int | None = Field(None, ge=0, le=2**32 - 1)


class ImageGenerationRequest(_PromptRequest):
    """POST /v1/images/generations: OpenAI's image request, for one image as base64.

    CloudGPT keeps no images to link to, so `b64_json` is the only (and default)
    `response_format`, and `n` is 1.
    """

    n: Literal[1] = 1
    size: str = Field(
        "1024x1024",
        pattern=r"^([0-9]{1,5}x[0-9]{1,5}|auto)$",
        description=f"`WxH` in pixels, each side {IMAGE_SIDE[0]} to {IMAGE_SIDE[1]}; `auto` is 1024x1024.",
    )
    response_format: str = Field("b64_json", json_schema_extra={"enum": ["b64_json"]})
    user: str | None = Field(None, max_length=256)

    @field_validator("size")
    @classmethod
    def _within_bounds(cls, size: str) -> str:
        if size == "auto":
            return "1024x1024"
        if not all(IMAGE_SIDE[0] <= int(side) <= IMAGE_SIDE[1] for side in size.split("x")):
            raise ValueError(f"each side must be {IMAGE_SIDE[0]} to {IMAGE_SIDE[1]} pixels, as in 1024x1024")
        return size

    @field_validator("response_format")
    @classmethod
    def _inline_only(cls, response_format: str) -> str:
        if response_format != "b64_json":
            raise ValueError("only 'b64_json' is offered: CloudGPT keeps no images, so it has no URL to give")
        return response_format

    def image_request(self) -> ImageRequest:
        """The same image asked for in CloudGPT's own shape."""
        width, height = (int(side) for side in self.size.split("x"))
        return ImageRequest(prompt=self.prompt, model=self.model, width=width, height=height)


class VideoRequest(_MediaRequest):
    """POST /api/video: one clip from a prompt; its length is checked against the model."""

    duration: int = Field(4, ge=1)
    width: int = Field(1280, ge=128, le=1920)
    height: int = Field(720, ge=128, le=1920)

    @property
    def aspect_ratio(self) -> str:
        """The two ratios video models offer: landscape `16:9` or portrait `9:16`."""
        return "16:9" if self.width >= self.height else "9:16"

    def check_duration(self, max_duration: int | None) -> None:
        """A 400 naming `duration` when the clip is longer than the model makes."""
        if max_duration is not None and self.duration > max_duration:
            raise BadRequest(
                f"Invalid 'duration': this model makes clips of at most {max_duration} seconds.",
                code="invalid_value",
                param="duration",
            )


_CAP = 10**12  # a quota's cap, requests or tokens


class KeyLimits(BaseModel):
    """A key's own per-minute limits; each at most the account's (null or absent: none of its own)."""

    model_config = _STRICT
    chat: int | None = Field(None, ge=1, le=1_000_000)
    image: int | None = Field(None, ge=1, le=1_000_000)
    video: int | None = Field(None, ge=1, le=1_000_000)


class KeyQuota(BaseModel):
    """A key's cap per UTC day or month; either cap may be null, not both."""

    model_config = _STRICT
    period: Literal["day", "month"]
    requests: int | None = Field(None, ge=1, le=_CAP, description="Requests admitted in the period.")
    tokens: int | None = Field(
        None, ge=1, le=_CAP, description="Prompt and completion tokens, counted as each answer ends."
    )


class _KeyControls(BaseModel):
    """What a key may do; each null or absent: no such control."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True, defer_build=True)
    expires: int | None = Field(
        None,
        description="Unix seconds after which the key is refused; in the future, at most ten years away.",
    )
    disabled: bool = Field(False, description="A disabled key is refused until it is enabled again.")
    models: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        None, min_length=1, max_length=100, description="Catalog model ids the key may call; null: all."
    )
    limits: KeyLimits | None = None
    quota: KeyQuota | None = None

    def controls(self) -> dict[str, Any]:
        """The controls as given (absent ones left out), in the API's shape."""
        return self.model_dump(include=self.model_fields_set - {"name"})


class CreateKeyRequest(_KeyControls):
    """POST /api/keys: an optional name, 1 to 100 characters once trimmed, and the key's controls."""

    name: str = Field(
        None,  # absent: the default name; null is refused
        min_length=1,
        max_length=100,
        description='Absent: "Default key".',
        json_schema_extra=lambda schema: schema.pop("default"),
    )


class UpdateKeyRequest(_KeyControls):
    """PATCH /api/keys/{id}: the fields to change; absent ones stay, null clears a control."""

    name: str = Field(
        None,  # absent: unchanged; null is refused
        min_length=1,
        max_length=100,
        json_schema_extra=lambda schema: schema.pop("default"),
    )
    disabled: bool = Field(
        None,  # absent: unchanged; null is refused
        description="true: refused until enabled again; false: enabled.",
        json_schema_extra=lambda schema: schema.pop("default"),
    )

    def changes(self) -> dict[str, Any]:
        """Every field given, in the API's shape."""
        return self.model_dump(include=self.model_fields_set)


class SessionRequest(BaseModel):
    """POST /api/session: the one-time code of a local sign-in link."""

    model_config = _STRICT
    code: str = Field(min_length=1, max_length=200, description="The `code` of the link `make dev` printed.")
