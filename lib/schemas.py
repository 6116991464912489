"""The request bodies CloudGPT accepts, as pydantic models.

They are strict (no "1" for 1, no unknown fields) and follow OpenAI's chat fields,
so what validates here is what the upstreams accept.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_STRICT = ConfigDict(extra="forbid", strict=True)


class ContentPart(BaseModel):
    """One part of a multi-part message: text, an image, audio, a file, ..."""

    model_config = ConfigDict(extra="allow", strict=True)
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


class Message(BaseModel):
    model_config = _STRICT
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _check_role_fields(self) -> Message:
        if self.role == "assistant":
            if self.content is None and not self.tool_calls:
                raise ValueError("an assistant message needs 'content' or 'tool_calls'")
        elif self.content is None:
            raise ValueError(f"a {self.role} message needs 'content'")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs 'tool_call_id'")
        if isinstance(self.content, list) and not self.content:
            raise ValueError("'content' as an array needs at least one part")
        return self


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

    def upstream_body(self, upstream_model: str) -> dict[str, Any]:
        """The body to send a provider: our fields, its name for the model."""
        body = self.model_dump(exclude_none=True, by_alias=True)
        body["model"] = upstream_model
        return body


class CreateKeyRequest(BaseModel):
    """POST /api/keys: an optional name, 1 to 100 characters once trimmed."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)
    name: str = Field(None, min_length=1, max_length=100)  # absent: the default name
