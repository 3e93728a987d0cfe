"""WAGI pure functions: the CGI environment and the CGI response parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal_agent.triggers.wagi import (
    CgiRequest,
    MalformedResponse,
    build_args,
    build_env,
    parse_response,
    split_route,
)

pytestmark = pytest.mark.unit


def env_of(req: CgiRequest, route: str = "/api/...", app_env: dict[str, str] | None = None) -> dict[str, str]:
    pairs = build_env(req, route, app_env)
    assert len({k for k, _ in pairs}) == len(pairs), "duplicate keys"
    return dict(pairs)


def test_env_has_the_cgi_and_wagi_variables() -> None:
    req = CgiRequest(
        method="post",
        path="/api/items/a%20b",
        query="x=1&y=2",
        headers=[
            ("Content-Type", "application/json"),
            ("X-Trace-Id", "t1"),
            ("Accept", "a"),
            ("accept", "b"),
        ],
        body_length=17,
        host="shop.example",
        port=8080,
        remote_addr="10.0.0.9",
    )
    env = env_of(req, app_env={"GREETING": "hi", "QUERY_STRING": "app cannot override"})
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/api"
    assert env["PATH_INFO"] == "/items/a b"
    assert env["X_RAW_PATH_INFO"] == "/items/a%20b"
    assert env["QUERY_STRING"] == "x=1&y=2"
    assert env["CONTENT_TYPE"] == "application/json"
    assert env["CONTENT_LENGTH"] == "17"
    assert env["SERVER_NAME"] == "shop.example"
    assert env["SERVER_PORT"] == "8080"
    assert env["X_MATCHED_ROUTE"] == "/api/..."
    assert env["X_FULL_URL"] == "http://shop.example:8080/api/items/a%20b?x=1&y=2"
    assert env["HTTP_X_TRACE_ID"] == "t1"
    assert env["HTTP_ACCEPT"] == "a, b"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["REMOTE_ADDR"] == "10.0.0.9"
    assert env["GREETING"] == "hi"


def test_credentials_and_hop_by_hop_headers_are_not_passed() -> None:
    req = CgiRequest("GET", "/", headers=[("Authorization", "Bearer s3cret"), ("Connection", "close")])
    env = env_of(req, "/")
    assert not any("s3cret" in v for v in env.values())
    assert "HTTP_CONNECTION" not in env


def test_exact_route_and_root_wildcard() -> None:
    assert split_route("/hello", "/hello") == ("/hello", "")
    assert split_route("/...", "/a/b") == ("", "/a/b")
    assert env_of(CgiRequest("GET", "/"), "/...")["PATH_INFO"] == "/"


def test_isindex_query_becomes_args() -> None:
    assert build_args("/s", "a+b%20c") == ["a", "b c"]
    assert build_args("/s", "a=1") == []
    assert build_args("/s", "") == []


def test_parse_plain_response() -> None:
    r = parse_response(b"Content-Type: text/plain\n\nHello\n")
    assert (r.status, r.headers, r.body) == (200, [("Content-Type", "text/plain")], b"Hello\n")


def test_parse_status_location_and_crlf() -> None:
    r = parse_response(b"Status: 404 Not Found\r\nContent-Type: text/html\r\nX-A: 1\r\n\r\n<h1>no</h1>")
    assert (r.status, r.body, r.reason) == (404, b"<h1>no</h1>", "Not Found")
    assert ("X-A", "1") in r.headers
    r = parse_response(b"Location: /elsewhere\n\n")
    assert (r.status, r.headers) == (302, [("Location", "/elsewhere")])
    r = parse_response(b"Status: 204\n\n")
    assert (r.status, r.body) == (204, b"")


def test_body_may_contain_blank_lines_and_binary() -> None:
    body = b"\x00\xff\n\nmore"
    assert parse_response(b"Content-Type: application/octet-stream\n\n" + body).body == body


@pytest.mark.parametrize(
    ("stdout", "why"),
    [
        (b"", "empty"),
        (b"this is not a CGI response", "no blank line"),
        (b"Content-Type: text/plain\nHello", "no blank line"),
        (b"no colon here\n\nbody", "malformed header"),
        (b"Bad Header Name: x\n\n", "malformed header"),
        (b"Status: abc\n\n", "bad Status"),
        (b"Status: 999 Nope\n\n", "bad Status"),
        (b"X-Only: 1\n\nbody", "none of Content-Type"),
    ],
)
def test_malformed_responses_say_why(stdout: bytes, why: str) -> None:
    with pytest.raises(MalformedResponse, match=why):
        parse_response(stdout)


@given(st.binary(max_size=200))
def test_parser_never_raises_anything_but_malformed(data: bytes) -> None:
    try:
        r = parse_response(data)
    except MalformedResponse:
        return
    assert 100 <= r.status <= 599
