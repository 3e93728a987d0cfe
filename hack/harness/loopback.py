"""A blocking HTTP/1.1 client for a listener on 127.0.0.1 (the data plane's listener is native, so
tests of it need no event loop)."""

from __future__ import annotations

import http.client
from collections.abc import Mapping


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, str]:
    """(status, body) of one request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def get(port: int, path: str, *, timeout: float = 30) -> tuple[int, str]:
    return request(port, "GET", path, timeout=timeout)
