"""Text from a client or a server, made safe to print in an operator's terminal.

A request path (`/x%0aDashboard sign-in: ...`) or a deployment's error message is
another party's text: printed raw, a line break forges a line of its own and an
escape sequence (`%1b[2J`) drives the terminal. Control characters, and the
invisible ones that reorder or hide text, are shown as Python escapes instead.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the format characters that change how text reads
# (bidirectional overrides and isolates, zero-width marks, line and paragraph separators).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control or invisible character escaped (`\\n` as `\\x0a`): one line, as sent."""
    return _UNSAFE.sub(_escaped, text)
