"""What the key stores hold and answer: a new key, a verified key with its controls, a listed key.

The stores speak one flat shape (`id`, `name`, ..., `limit_chat`, `quota_period`,
..., `version`), the columns of `api_keys`; this module turns it into the API's
shape and back. The stores and the package import it; it imports neither.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lib.errors import AuthenticationError, BadRequest, ServiceUnavailable

MAX_KEYS_PER_USER = 25
TOUCH_AFTER_SECONDS = 60  # `lastUsed` is written at most this often per key
MODALITIES = ("chat", "image", "video")
CONTROLS = ("expires", "disabled", "models", "limits", "quota")
DAY_SECONDS = 86_400


class KeyLimitReached(BadRequest):
    code = "key_limit_reached"


class KeyStoreUnavailable(ServiceUnavailable):
    """The key store could not be used: unreachable, too slow, or failing.

    `problem` tells the operator which (GET /api/health shows it; a caller only gets the 503):
    `functions_missing` (migrations not applied), `wrong_key` (the store refused the
    project key), `unreachable` (no answer in time) or `failing` (anything else).
    """

    code = "key_store_unavailable"

    def __init__(self, problem: str = "failing") -> None:
        super().__init__("The API key store cannot be used right now.")
        self.problem = problem


def limit_reached() -> KeyLimitReached:
    return KeyLimitReached(
        f"A user can have at most {MAX_KEYS_PER_USER} API keys; delete one to create another."
    )


@dataclass(frozen=True)
class NewKey:
    """A key about to be stored: everything but the key itself, its controls in the flat shape."""

    id: str
    user: str
    name: str
    prefix: str
    hash: str
    controls: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Quota:
    """A key's cap per UTC day or month: requests counted as they are admitted, tokens as answers end."""

    period: str  # "day" or "month"
    requests: int | None
    tokens: int | None

    def span(self, now: float) -> tuple[str, int]:
        """The current period's name (`d20425`, `m202612`) and its end (Unix s)."""
        if self.period == "day":
            day = int(now // DAY_SECONDS)
            return f"d{day}", (day + 1) * DAY_SECONDS
        year, month = time.gmtime(now)[:2]
        after = (year + month // 12, month % 12 + 1)
        return f"m{year}{month:02}", calendar.timegm((*after, 1, 0, 0, 0))

    def tallies(self, key_id: str, now: float) -> tuple[str, str, int]:
        """The keys of this period's request and token counts, and the period's end (Unix s)."""
        name, end = self.span(now)
        base = f"cgpt:quota:{key_id}:{name}:"
        return base + "requests", base + "tokens", end

    def public(self) -> dict[str, Any]:
        return {"period": self.period, "requests": self.requests, "tokens": self.tokens}


@dataclass(frozen=True)
class VerifiedKey:
    """A key the store knows: whose it is, its id (what usage is recorded under), and its controls.

    `version` rises with every change; `hash` lets the package forget or re-verify it.
    """

    user: str
    key_id: str
    version: int = 1
    expires: int | None = None
    disabled: bool = False
    models: tuple[str, ...] | None = None
    limits: Mapping[str, int] = field(default_factory=dict)  # only the modalities with a limit
    quota: Quota | None = None
    hash: str = ""

    def refusal(self, now: float) -> AuthenticationError | None:
        """Why the key may not be used now (disabled, expired), or None."""
        if self.disabled:
            return AuthenticationError(
                "This API key is disabled; its owner can enable it again.", code="api_key_disabled"
            )
        if self.expires is not None and now >= self.expires:
            return AuthenticationError("This API key has expired.", code="api_key_expired")
        return None


def listed(row: Mapping[str, Any]) -> dict[str, Any]:
    """A key as the routes answer it, from the stores' flat shape."""
    return {
        "id": row["id"],
        "name": row["name"],
        "prefix": row["prefix"],
        "created": row["created"],
        "lastUsed": row["last_used"],
        **public_controls(row),
    }


def public_controls(row: Mapping[str, Any]) -> dict[str, Any]:
    """`expires`, `disabled`, `models`, `limits` and `quota` as the routes answer them."""
    quota = _quota(row)
    return {
        "expires": row.get("expires"),
        "disabled": bool(row.get("disabled")),
        "models": list(row["models"]) if row.get("models") is not None else None,
        "limits": {modality: row.get(f"limit_{modality}") for modality in MODALITIES},
        "quota": quota.public() if quota else None,
    }


def verified(row: Mapping[str, Any], user: str, hash: str) -> VerifiedKey:
    """A verified key from the stores' flat shape."""
    models = row.get("models")
    return VerifiedKey(
        user=user,
        key_id=row["id"],
        version=row.get("version") or 1,
        expires=row.get("expires"),
        disabled=bool(row.get("disabled")),
        models=tuple(models) if models is not None else None,
        limits={m: row[f"limit_{m}"] for m in MODALITIES if row.get(f"limit_{m}") is not None},
        quota=_quota(row),
        hash=hash,
    )


def _quota(row: Mapping[str, Any]) -> Quota | None:
    if row.get("quota_period") is None:
        return None
    return Quota(row["quota_period"], row.get("quota_requests"), row.get("quota_tokens"))


def flat(controls: Mapping[str, Any]) -> dict[str, Any]:
    """The API's controls (any of them; `None` clears one) as the stores' columns."""
    columns: dict[str, Any] = {}
    for name, value in controls.items():
        if name == "limits":
            columns |= {f"limit_{m}": (value or {}).get(m) for m in MODALITIES}
        elif name == "quota":
            columns |= {f"quota_{part}": (value or {}).get(part) for part in ("period", "requests", "tokens")}
        else:
            columns[name] = value
    return columns
