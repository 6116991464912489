"""Links a provider hands over: fetched only over https, and only from public addresses.

A link in a provider's answer is the provider's choice, not ours: fetched blindly it
could make the gateway read its own loopback services, a cloud metadata endpoint
(169.254.169.254) or a private network, and pass the answer on. The host's every
address must be global (not loopback, private, link-local, shared or reserved), and
the fetch connects to those very addresses: a name that changes its answer between
the check and the connection (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import time
from urllib.parse import urlsplit

from lib.errors import UpstreamError, UpstreamTimeout
from lib.settings import settings
from lib.transport import Address, resolve


def public_addresses(provider: str, url: str, base: str) -> list[Address] | None:
    """None for a link on the provider's own host (`base`: same scheme and host), where its
    credential may go; for any other, the public addresses to fetch it from.

    Any other link must be https to a host with only public addresses, else a 502
    `upstream_link_refused`; a host that does not resolve within the connect timeout
    is a 504.
    """
    try:
        parts = urlsplit(url)
        if parts[:2] == urlsplit(base)[:2]:
            return None
        port, host = parts.port or 443, parts.hostname
    except ValueError:  # brackets that hold no address, a port that is not a number
        raise _refused(provider, "it is not a valid link") from None
    if parts.scheme != "https" or not host:
        raise _refused(provider, "it is not an https link")
    try:
        found = resolve(host, port, time.monotonic() + settings().upstream_connect_timeout)
    except TimeoutError:
        raise UpstreamTimeout(f"The host of a link {provider} answered did not resolve in time.") from None
    except OSError:
        raise _refused(provider, "its host does not resolve") from None
    for _, address in found:
        ip = ipaddress.ip_address(address[0].split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global:
            raise _refused(provider, "its host is not a public address")
    return found


def _refused(provider: str, reason: str) -> UpstreamError:
    return UpstreamError(
        f"{provider} answered a link CloudGPT will not fetch: {reason}.", code="upstream_link_refused"
    )
