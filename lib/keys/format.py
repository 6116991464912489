"""What an API key looks like: `cgpt_`, 192 random bits, a checksum; stored only as a hash.

The checksum lets a mistyped or made-up key be refused without a trip to the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string

PREFIX = "cgpt_"
_RANDOM_BYTES = 24  # 192 bits, as 32 URL-safe characters
_CHECKSUM_CHARS = 6
_SHAPE = re.compile(rf"{PREFIX}([A-Za-z0-9_-]{{32}})([A-Za-z0-9_-]{{{_CHECKSUM_CHARS}}})")
_ID_ALPHABET = string.ascii_letters + string.digits
SHOWN_CHARS = len(PREFIX) + 4  # what a listing shows of a key: `cgpt_AbCd...`


def _checksum(body: str) -> str:
    digest = hashlib.sha256(body.encode()).digest()
    return base64.urlsafe_b64encode(digest[:6]).decode()[:_CHECKSUM_CHARS]


def new_key() -> str:
    body = secrets.token_urlsafe(_RANDOM_BYTES)
    return PREFIX + body + _checksum(body)


def well_formed(key: str) -> bool:
    """Whether `key` has a key's shape and a matching checksum."""
    match = _SHAPE.fullmatch(key)
    return bool(match) and hmac.compare_digest(_checksum(match[1]), match[2])


def key_hash(key: str) -> str:
    """What the stores keep instead of the key: its SHA-256, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def shown(key: str) -> str:
    return key[:SHOWN_CHARS] + "..."


def new_key_id() -> str:
    return "key_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))
