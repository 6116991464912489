"""Every environment variable CloudGPT reads, read here and nowhere else.

Settings are read once per process (a warm serverless instance keeps them); a
malformed value fails loudly with the variable's name rather than being guessed:
every request then answers a 503 `gateway_misconfigured` that names it.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from lib.errors import ServiceUnavailable

MODALITIES = ("chat", "image", "video")

# Per-minute limits: (anonymous, authenticated), from the public API contract.
DEFAULT_LIMITS = {"chat": (10, 60), "image": (5, 30), "video": (2, 10)}


class SettingsError(ServiceUnavailable):
    """An environment variable holds a value CloudGPT cannot use: the operator's to fix."""

    code = "gateway_misconfigured"


@dataclass(frozen=True)
class Limits:
    anonymous: int
    authenticated: int


@dataclass(frozen=True)
class Settings:
    pollinations_api_key: str | None
    pollinations_base_url: str
    mapleai_api_key: str | None
    mapleai_base_url: str
    supabase_url: str | None
    # The project's secret key (SUPABASE_SECRET_KEY, or the legacy SUPABASE_SERVICE_ROLE_KEY).
    supabase_service_role_key: str | None
    supabase_jwt_secret: str | None
    # The project's publishable key (SUPABASE_PUBLISHABLE_KEY, or the legacy SUPABASE_ANON_KEY).
    supabase_anon_key: str | None
    supabase_auth_methods: tuple[str, ...]
    jwks_cache_seconds: float
    key_cache_seconds: int
    key_stale_seconds: int
    breaker_failures: int
    breaker_cooldown: float
    upstash_redis_rest_url: str | None
    upstash_redis_rest_token: str | None
    upstash_redis_timeout: float
    rate_limit_failure_mode: str
    data_dir: Path
    limits: dict[str, Limits]
    account_limit: int
    failed_auth_limit: int
    max_body_bytes: int
    upstream_connect_timeout: float
    upstream_read_timeout: float
    upstream_first_byte_timeout: float
    upstream_deadline: float
    upstream_retries: int
    upstream_backoff: float
    upstream_retry_after_cap: float
    stream_keepalive_interval: float
    on_vercel: bool
    cors_origins: tuple[str, ...]
    host: str
    port: int
    header_timeout: float
    body_timeout: float
    video_job_timeout: float
    region: str | None


def _text(env: dict[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _number(
    env: dict[str, str], name: str, default: float, kind: type = int, *, maximum: float | None = None
) -> float:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = -1
    # A count with a maximum may be zero; the value itself is never repeated (it may be a misplaced secret).
    if maximum is None and value <= 0:
        raise SettingsError(f"CloudGPT is misconfigured: {name} must be a positive {kind.__name__}.")
    if maximum is not None and not 0 <= value <= maximum:
        raise SettingsError(
            f"CloudGPT is misconfigured: {name} must be an {kind.__name__} from 0 to {maximum}."
        )
    return value


def _url(env: dict[str, str], name: str, default: str | None = None) -> str | None:
    """An http(s) URL with a host, without its trailing slash: `{url}/auth/v1` must not double it."""
    value = _text(env, name) or default
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise SettingsError(f"CloudGPT is misconfigured: {name} must be an http(s) URL.")
    return value.rstrip("/")


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first is the default), matched case-insensitively."""
    value = (_text(env, name) or choices[0]).lower()
    if value not in choices:
        raise SettingsError(f"CloudGPT is misconfigured: {name} must be one of {', '.join(choices)}.")
    return value


# Vercel's Upstash integration names the same two values KV_REST_API_URL and KV_REST_API_TOKEN.
UPSTASH_NAMES = (
    ("UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN"),
    ("KV_REST_API_URL", "KV_REST_API_TOKEN"),
)


def _methods(env: dict[str, str], name: str, default: str) -> tuple[str, ...]:
    """A comma list of sign-in methods (`password`, `magiclink`, OAuth provider names), lower-cased."""
    methods = tuple(m.strip().lower() for m in (_text(env, name) or default).split(",") if m.strip())
    if not all(re.fullmatch(r"[a-z][a-z0-9_]{0,31}", m) for m in methods):
        raise SettingsError(f"CloudGPT is misconfigured: {name} must be a comma list of method names.")
    return tuple(dict.fromkeys(methods))


def _upstash(env: dict[str, str]) -> tuple[str | None, str | None]:
    """Upstash's URL and token: both or neither, so half a configuration is not silently ignored.

    UPSTASH_REDIS_REST_* win when either is set; the KV_REST_API_* pair is read only otherwise.
    """
    for url_name, token_name in UPSTASH_NAMES:
        url, token = _text(env, url_name), _text(env, token_name)
        if url is None and token is None:
            continue
        if url is None or token is None:
            missing = token_name if token is None else url_name
            raise SettingsError(
                f"CloudGPT is misconfigured: {missing} is needed with the other Upstash variable."
            )
        return _url(env, url_name), token
    return None, None


# Supabase's project keys: (current name, legacy name). Either holds either format: `sb_...` or a JWT.
SUPABASE_SECRET_NAMES = ("SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY")
SUPABASE_PUBLISHABLE_NAMES = ("SUPABASE_PUBLISHABLE_KEY", "SUPABASE_ANON_KEY")


def _jwt_role(value: str) -> str | None:
    """The `role` claim of a legacy JWT key, read without verifying it (it only tells the two apart)."""
    try:
        payload = value.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("role")
    except (IndexError, ValueError, AttributeError):
        return None


def _supabase_key(env: dict[str, str], names: tuple[str, str], secret: bool) -> str | None:
    """A project key under its current name, else its legacy one (the current name wins when both are set).

    A key of the other kind is refused by name: a secret key where the publishable one belongs
    would be handed to every browser by GET /api/config.
    """
    for name in names:
        value = _text(env, name)
        if value is None:
            continue
        role = _jwt_role(value)
        if secret and (value.startswith("sb_publishable_") or role == "anon"):
            raise SettingsError(
                f"CloudGPT is misconfigured: {name} holds a publishable key; it needs the secret "
                "(sb_secret_...) or service_role key."
            )
        if not secret and (value.startswith("sb_secret_") or role == "service_role"):
            raise SettingsError(
                f"CloudGPT is misconfigured: {name} holds a secret key, which the pages would show to "
                "every visitor; it needs the publishable (sb_publishable_...) or anon key."
            )
        return value
    return None


def _origins(env: dict[str, str], name: str, default: str) -> tuple[str, ...]:
    """`*` (any origin), or a comma list of origins (`https://app.example`), lower-cased, no slash."""
    raw = _text(env, name)
    origins = tuple(
        dict.fromkeys(o.strip().lower().rstrip("/") for o in (raw or default).split(",") if o.strip())
    )
    if origins != ("*",) and not all(re.fullmatch(r"https?://[^/\s*,]+", o) for o in origins):
        raise SettingsError(
            f"CloudGPT is misconfigured: {name} must be * or a comma list of origins (https://app.example)."
        )
    return origins


def load(env: dict[str, str] | None = None) -> Settings:
    """Read settings from `env` (the process environment by default)."""
    env = dict(os.environ) if env is None else env
    limits = {
        modality: Limits(
            anonymous=_number(env, f"RATE_LIMIT_{modality.upper()}_ANONYMOUS", anon),
            authenticated=_number(env, f"RATE_LIMIT_{modality.upper()}_AUTHENTICATED", auth),
        )
        for modality, (anon, auth) in DEFAULT_LIMITS.items()
    }
    upstash_url, upstash_token = _upstash(env)
    return Settings(
        pollinations_api_key=_text(env, "POLLINATIONS_API_KEY"),
        pollinations_base_url=_url(env, "POLLINATIONS_BASE_URL", "https://gen.pollinations.ai"),
        mapleai_api_key=_text(env, "MAPLEAI_API_KEY"),
        mapleai_base_url=_url(env, "MAPLEAI_BASE_URL", "https://api.mapleai.de"),
        supabase_url=_url(env, "SUPABASE_URL"),
        supabase_service_role_key=_supabase_key(env, SUPABASE_SECRET_NAMES, secret=True),
        supabase_jwt_secret=_text(env, "SUPABASE_JWT_SECRET"),
        # Public by design: the browser holds it.
        supabase_anon_key=_supabase_key(env, SUPABASE_PUBLISHABLE_NAMES, secret=False),
        supabase_auth_methods=_methods(env, "SUPABASE_AUTH_METHODS", "password,magiclink"),
        # A signing key revoked in Supabase stops being accepted within this time.
        jwks_cache_seconds=_number(env, "SUPABASE_JWKS_CACHE_SECONDS", 300.0, float),
        # A revoked key must stop working everywhere within a minute.
        key_cache_seconds=_number(env, "CLOUDGPT_KEY_CACHE_SECONDS", 30, maximum=60),
        # While the key store is down, a key verified this long ago still works (0: none does).
        key_stale_seconds=_number(env, "CLOUDGPT_KEY_STALE_SECONDS", 300, maximum=86400),
        breaker_failures=_number(env, "CLOUDGPT_BREAKER_FAILURES", 3),
        breaker_cooldown=_number(env, "CLOUDGPT_BREAKER_COOLDOWN", 5.0, float),
        upstash_redis_rest_url=upstash_url,
        upstash_redis_rest_token=upstash_token,
        upstash_redis_timeout=_number(env, "UPSTASH_REDIS_TIMEOUT", 0.5, float),
        rate_limit_failure_mode=_choice(env, "RATE_LIMIT_FAILURE_MODE", ("open", "closed")),
        data_dir=Path(_text(env, "CLOUDGPT_DATA_DIR") or ".cloudgpt"),
        limits=limits,
        # Per user and minute on the account routes (/api/keys, /api/usage).
        account_limit=_number(env, "RATE_LIMIT_ACCOUNT", 30),
        # Per client address and minute: keys the store refused, before it is asked again.
        failed_auth_limit=_number(env, "RATE_LIMIT_FAILED_AUTH", 10),
        max_body_bytes=_number(env, "CLOUDGPT_MAX_BODY_BYTES", 1024 * 1024),
        upstream_connect_timeout=_number(env, "UPSTREAM_CONNECT_TIMEOUT", 10.0, float),
        upstream_read_timeout=_number(env, "UPSTREAM_READ_TIMEOUT", 25.0, float),
        upstream_first_byte_timeout=_number(env, "UPSTREAM_FIRST_BYTE_TIMEOUT", 120.0, float),
        upstream_deadline=_number(env, "UPSTREAM_DEADLINE", 270.0, float),
        upstream_retries=_number(env, "UPSTREAM_RETRIES", 2, maximum=2),
        upstream_backoff=_number(env, "UPSTREAM_BACKOFF", 0.5, float),
        upstream_retry_after_cap=_number(env, "UPSTREAM_RETRY_AFTER_CAP", 10.0, float),
        stream_keepalive_interval=_number(env, "STREAM_KEEPALIVE_INTERVAL", 15.0, float),
        on_vercel=bool(_text(env, "VERCEL")),
        # Web pages of other origins that may call the API: any on Vercel (a public API, each
        # visitor on their own budget), none locally (every tab shares the operator's address and keys).
        cors_origins=_origins(env, "CLOUDGPT_CORS_ORIGINS", "*" if _text(env, "VERCEL") else ""),
        host=_text(env, "HOST") or "127.0.0.1",
        port=_number(env, "PORT", 3000),
        # How long the local server waits for a request's headers before it lets the client go.
        header_timeout=_number(env, "CLOUDGPT_HEADER_TIMEOUT", 30.0, float),
        # How long it waits for a request's body, once its headers are in, before a 408.
        body_timeout=_number(env, "CLOUDGPT_BODY_TIMEOUT", 30.0, float),
        # Seconds an asynchronous video job may take; the rest of the function's 300 s is the download.
        video_job_timeout=_number(env, "VIDEO_JOB_TIMEOUT", 240.0, float),
        region=_text(env, "VERCEL_REGION"),  # set by Vercel: where this function runs
    )


@cache
def settings() -> Settings:
    """The process's settings, read on first use."""
    return load()
