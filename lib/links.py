"""Links a provider hands over: fetched only over https, and only from public addresses.

A link in a provider's answer is the provider's choice, not ours: fetched blindly it
could make the gateway read its own loopback services, a cloud metadata endpoint
(169.254.169.254) or a private network, and pass the answer on. The host's every
address must be global (not loopback, private, link-local, shared or reserved).
The name is resolved here and again by the HTTP client when it connects, so a
name that changes its answer in between (DNS rebinding) is not caught.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from lib.errors import UpstreamError


def check_public(provider: str, url: str) -> None:
    """A 502 `upstream_link_refused` unless `url` is https to a host with only public addresses."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise _refused(provider, "it is not an https link")
    try:
        port = parts.port or 443
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError):
        raise _refused(provider, "its host does not resolve") from None
    for *_, address in found:
        ip = ipaddress.ip_address(address[0].split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global:
            raise _refused(provider, "its host is not a public address")


def _refused(provider: str, reason: str) -> UpstreamError:
    return UpstreamError(
        f"{provider} answered a link CloudGPT will not fetch: {reason}.", code="upstream_link_refused"
    )
