"""`capabilities.allowedOutboundHosts`: where an app may send outbound HTTP, Spin's pattern syntax.

A pattern is `scheme://host[:port]`: scheme `http`, `https` or `*`; host an exact name, `*.suffix`
(any name under the suffix, not the suffix itself), `*` (any host), an IPv4 literal or a bracketed
IPv6 literal; port a number or `*`, the scheme's default (80, 443) when left out. Parsing is here,
once, where a bad pattern becomes a validation error; the data plane matches each outbound request
against the parsed triples and checks the addresses it resolved (loopback, link-local and the cloud
metadata address only when a pattern names that address as an IP literal).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_LABEL = r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?"
ALLOWED_HOST_PATTERN = (
    rf"^(\*|https?)://(\*|(\*\.)?{_LABEL}(\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(:(\*|[0-9]{{1,5}}))?/?$"
)
"""What the CRD accepts (the apiserver checks it); `parse_allowed_host` checks the rest."""

_COMPILED = re.compile(ALLOWED_HOST_PATTERN)
_PORT = re.compile(r":(\*|[0-9]+)/?$")


@dataclass(frozen=True)
class AllowedHost:
    scheme: str
    """`http`, `https` or `*`."""
    host: str
    """Lower-case name, `*.suffix`, `*`, an IPv4 literal or a bracketed IPv6 literal."""
    port: str
    """Digits, `*`, or `default` (the request scheme's default port)."""

    def parts(self) -> tuple[str, str, str]:
        """The triple the data plane's `load(allowed_outbound=...)` takes."""
        return (self.scheme, self.host, self.port)


def parse_allowed_host(pattern: str) -> AllowedHost:
    """Parse one pattern; ValueError names what is wrong with it."""
    m = _COMPILED.match(pattern)
    if m is None:
        raise ValueError(
            f"allowedOutboundHosts: {pattern!r} is not scheme://host[:port] with scheme http, https "
            "or *, and host a name, *.suffix, *, or an IP literal"
        )
    scheme, host = m.group(1), m.group(2).lower()
    port_match = _PORT.search(pattern.removeprefix(f"{scheme}://{m.group(2)}"))
    port = port_match.group(1) if port_match else "default"
    if host.startswith("["):
        try:
            ip = ipaddress.IPv6Address(host[1:-1])
        except ValueError as e:
            raise ValueError(f"allowedOutboundHosts: {pattern!r}: bad IPv6 literal ({e})") from None
        host = f"[{ip.compressed}]"
    elif all(label.isdigit() for label in host.split(".")):
        try:
            host = str(ipaddress.IPv4Address(host))
        except ValueError as e:
            raise ValueError(f"allowedOutboundHosts: {pattern!r}: bad IPv4 literal ({e})") from None
    if port.isdigit() and not 1 <= int(port) <= 65535:
        raise ValueError(f"allowedOutboundHosts: {pattern!r}: port {port} is out of range")
    return AllowedHost(scheme, host, port)
