"""Who a request counts against, and what its key allows: shared by identity, limits and usage."""

from __future__ import annotations

from dataclasses import dataclass

from lib.errors import PermissionDenied
from lib.keys.records import VerifiedKey


@dataclass
class Caller:
    """Whose budget a request counts against; `key` may be replaced once its marker shows a change."""

    kind: str  # "anonymous" or "user"
    id: str  # client address bucket or user id
    key: VerifiedKey | None = None  # the API key a user called with, and its controls
    refund: str | None = None  # a failed-authentication count to give back: the key verified
    session: str | None = None  # a Supabase access token's session, refused once signed out
    session_expires: int = 0  # that token's `exp`

    @property
    def key_id(self) -> str | None:
        return self.key.key_id if self.key else None

    @property
    def authenticated(self) -> bool:
        return self.kind == "user"

    @property
    def bucket(self) -> str:
        """The rate-limit key: users across all their keys, anonymous callers per address."""
        return f"{self.kind}:{self.id}"

    def may_call(self, model: str) -> None:
        """A 403 naming the allowed models when the key is limited to others."""
        allowed = self.key.models if self.key else None
        if allowed is not None and model not in allowed:
            raise PermissionDenied(
                f"This API key may call only {', '.join(allowed)}; {model!r} is not one of them.",
                code="model_not_allowed",
                param="model",
            )
