"""A wasi:http/proxy component in Python (componentize-py) that makes one outbound request:
`GET /?url=http://host:port/path` fetches that URL through wasi:http/outgoing-handler and answers
`fetched <status>: <body>`; `&host=NAME` also sets a Host header (a bypass attempt the host must
refuse). A refused or failed call answers 502 `refused: <error>`, so a test sees what the guest saw."""

from urllib.parse import parse_qs, urlsplit

from wit_world import exports
from wit_world.imports import outgoing_handler, poll
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    IncomingResponse,
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
    Scheme_Https,
)
from wit_world.types import Err, Ok


def read_all(response: IncomingResponse) -> bytes:
    body = response.consume()
    stream = body.stream()
    data = b""
    while True:
        try:
            chunk = stream.blocking_read(65536)
        except Exception:  # the stream's end is an error variant (closed)
            break
        if not chunk:
            break
        data += chunk
    stream.__exit__(None, None, None)
    body.__exit__(None, None, None)
    return data


def fetch(url: str, host: str | None) -> tuple[int, bytes]:
    parts = urlsplit(url)
    headers = [("host", host.encode())] if host else []
    request = OutgoingRequest(Fields.from_list(headers))
    request.set_scheme(Scheme_Https() if parts.scheme == "https" else Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    future = outgoing_handler.handle(request, None)
    while (result := future.get()) is None:
        pollable = future.subscribe()
        poll.poll([pollable])
        # A pollable is a child of its future: drop it first, or the host traps ("has children").
        pollable.__exit__(None, None, None)
    future.__exit__(None, None, None)
    if isinstance(result, Err):
        raise RuntimeError("the response future was already taken")
    inner = result.value
    if isinstance(inner, Err):
        raise RuntimeError(f"{inner.value!r}")
    response = inner.value
    return response.status(), read_all(response)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        query = parse_qs(urlsplit(request.path_with_query() or "/").query)
        url = query.get("url", [""])[0]
        host = query.get("host", [None])[0]
        try:
            status, body = fetch(url, host)
            code, text = 200, f"fetched {status}: ".encode() + body
        except Err as e:  # handle() itself refused, or a header was forbidden
            code, text = 502, f"refused: {e.value!r}".encode()
        except Exception as e:  # the guest reports whatever failed
            code, text = 502, f"refused: {e}".encode()
        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        response.set_status_code(code)
        outgoing = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        stream = outgoing.write()
        stream.blocking_write_and_flush(text)
        stream.__exit__(None, None, None)
        OutgoingBody.finish(outgoing, None)
