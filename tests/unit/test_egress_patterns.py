"""`capabilities.allowedOutboundHosts`: Spin's pattern syntax parsed to what the data plane matches."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shoal_api.egress import AllowedHost, parse_allowed_host
from shoal_api.wasmapp import Capabilities


@pytest.mark.parametrize(
    ("pattern", "parsed"),
    [
        ("https://api.example.com", AllowedHost("https", "api.example.com", "default")),
        ("https://API.Example.com/", AllowedHost("https", "api.example.com", "default")),
        ("http://*.svc.cluster.local:8080", AllowedHost("http", "*.svc.cluster.local", "8080")),
        ("*://*:*", AllowedHost("*", "*", "*")),
        ("http://127.0.0.1:8080", AllowedHost("http", "127.0.0.1", "8080")),
        ("http://[0:0::1]:80", AllowedHost("http", "[::1]", "80")),
        ("https://169.254.169.254", AllowedHost("https", "169.254.169.254", "default")),
    ],
)
def test_patterns_parse_to_scheme_host_port(pattern: str, parsed: AllowedHost) -> None:
    assert parse_allowed_host(pattern) == parsed


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("api.example.com", "is not scheme://host"),
        ("ftp://a.example", "is not scheme://host"),
        ("http://a.example/path", "is not scheme://host"),
        ("http://a*.example", "is not scheme://host"),
        ("http://a.example:0", "out of range"),
        ("http://a.example:70000", "out of range"),
        ("http://300.1.1.1", "bad IPv4 literal"),
        ("http://[1::2::3]", "bad IPv6 literal"),
    ],
)
def test_bad_patterns_are_refused_with_the_reason(pattern: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_allowed_host(pattern)
    with pytest.raises(ValidationError, match="allowedOutboundHosts"):
        Capabilities.model_validate({"allowedOutboundHosts": [pattern]})


def test_no_pattern_means_no_outbound_http() -> None:
    assert Capabilities().allowed_outbound_hosts == []
