"""WAGI (CGI for WebAssembly) as pure functions: the request environment and the response parser.

Semantics follow deislabs/wagi: the request body is stdin, request metadata is CGI environment
variables (RFC 3875 plus WAGI's X_* extras), and stdout is a CGI response: header lines, a blank
line, then the body. `Status:` sets the status, a `Location:` without one means 302.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

SERVER_SOFTWARE = "shoal-wagi/1"
# Never handed to guests: credentials and hop-by-hop headers that describe our connection, not theirs.
DROPPED_HEADERS = frozenset({"authorization", "proxy-authorization", "connection", "keep-alive", "upgrade"})
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 302: "Found",
    304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
}  # fmt: skip


@dataclass(frozen=True)
class CgiRequest:
    """The parts of an HTTP request that WAGI exposes; independent of any HTTP library."""

    method: str
    path: str  # raw (still percent-encoded) path
    query: str = ""
    headers: Iterable[tuple[str, str]] = ()
    body_length: int = 0
    host: str = "localhost"
    port: int = 80
    scheme: str = "http"
    remote_addr: str = ""
    protocol: str = "HTTP/1.1"


def split_route(route: str, raw_path: str) -> tuple[str, str]:
    """(SCRIPT_NAME, PATH_INFO) for a prefix route like `/api` or a wildcard `/api/...`."""
    prefix = route[: -len("/...")] if route.endswith("/...") else route
    prefix = prefix.rstrip("/")
    rest = raw_path[len(prefix) :] if raw_path.startswith(prefix) else raw_path
    return prefix, rest


def build_env(
    req: CgiRequest,
    route: str,
    app_env: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """CGI/WAGI environment for `req` matched by `route`; app env first so request data wins."""
    script_name, raw_path_info = split_route(route, req.path)
    host_port = req.host if req.port in (80, 443) else f"{req.host}:{req.port}"
    full_url = f"{req.scheme}://{host_port}{req.path}" + (f"?{req.query}" if req.query else "")
    content_type = ""
    env: dict[str, str] = dict(app_env or {})
    from_request: set[str] = set()
    for name, value in req.headers:
        lower = name.lower()
        if lower in DROPPED_HEADERS:
            continue
        if lower == "content-type":
            content_type = value
        key = "HTTP_" + name.upper().replace("-", "_")
        # A repeated header is joined with ", " as HTTP allows.
        env[key] = f"{env[key]}, {value}" if key in from_request else value
        from_request.add(key)
    env.update(
        {
            "AUTH_TYPE": "",
            "CONTENT_LENGTH": str(req.body_length),
            "CONTENT_TYPE": content_type,
            "GATEWAY_INTERFACE": "CGI/1.1",
            "PATH_INFO": unquote(raw_path_info),
            "PATH_TRANSLATED": unquote(raw_path_info),
            "QUERY_STRING": req.query,
            "REMOTE_ADDR": req.remote_addr,
            "REMOTE_HOST": req.remote_addr,
            "REMOTE_USER": "",
            "REQUEST_METHOD": req.method.upper(),
            "SCRIPT_NAME": script_name,
            "SERVER_NAME": req.host,
            "SERVER_PORT": str(req.port),
            "SERVER_PROTOCOL": req.protocol,
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "X_MATCHED_ROUTE": route,
            "X_FULL_URL": full_url,
            "X_RAW_PATH_INFO": raw_path_info,
        }
    )
    return list(env.items())


def build_args(script_name: str, query: str) -> list[str]:
    """argv after argv[0]: CGI "ISINDEX" queries (no `=`) become arguments, split on `+`."""
    if not query or "=" in query:
        return []
    return [unquote(part) for part in query.split("+") if part]


class MalformedResponse(ValueError):
    """stdout was not a CGI response; the HTTP layer answers 502 with this message."""


@dataclass(frozen=True)
class CgiResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def reason(self) -> str:
        return _REASONS.get(self.status, "")


def _split_head(stdout: bytes) -> tuple[bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        idx = stdout.find(sep)
        if idx >= 0:
            # Use whichever blank line comes first when both styles appear.
            other = stdout.find(b"\n\n" if sep == b"\r\n\r\n" else b"\r\n\r\n")
            if other >= 0 and other < idx:
                continue
            return stdout[:idx], stdout[idx + len(sep) :]
    raise MalformedResponse("no blank line after the CGI headers")


def parse_response(stdout: bytes) -> CgiResponse:
    """Parse a CGI response; raises MalformedResponse with a message for the 502 body."""
    if not stdout:
        raise MalformedResponse("empty response: the module printed nothing")
    head, body = _split_head(stdout)
    status: int | None = None
    headers: list[tuple[str, str]] = []
    has_content_type = has_location = False
    for raw_line in head.replace(b"\r\n", b"\n").split(b"\n"):
        try:
            line = raw_line.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
            raise MalformedResponse("header is not text") from None
        name, sep, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or not _HEADER_NAME.match(name):
            raise MalformedResponse(f"malformed header line {line[:80]!r}")
        lower = name.lower()
        if lower == "status":
            code = value.split(" ", 1)[0]
            if not (code.isdigit() and len(code) == 3 and 100 <= int(code) <= 599):
                raise MalformedResponse(f"bad Status header {value[:40]!r}")
            status = int(code)
            continue
        if "\r" in value or "\n" in value:
            raise MalformedResponse(f"header {name} has a line break")
        has_content_type |= lower == "content-type"
        has_location |= lower == "location"
        headers.append((name, value))
    if not (has_content_type or has_location or status is not None):
        raise MalformedResponse("response has none of Content-Type, Location or Status")
    if status is None:
        status = 302 if has_location and not has_content_type else 200
    return CgiResponse(status, headers, body)
