"""A wasi:http/proxy component in Python (componentize-py): answers every request with a greeting
that names the path and the request's method, and echoes the request body when there is one.
`?cat=PATH` answers with that file instead (404 and why, if it cannot be opened), for the tests of
`spec.files` through wasi:filesystem; `?sleep=SECONDS` waits that long before it answers (a client
may go away meanwhile)."""

import time
from urllib.parse import parse_qs, urlsplit

from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Get,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from wit_world.types import Ok


def read_body(request: IncomingRequest) -> bytes:
    body = request.consume()
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
    # A stream is a child of its body: drop it first, or the host traps ("resource has children").
    stream.__exit__(None, None, None)
    body.__exit__(None, None, None)
    return data


def cat(path: str) -> tuple[int, bytes]:
    try:
        with open(path, "rb") as f:
            return 200, f.read()
    except OSError as e:
        return 404, f"cannot open {path}: {e.strerror}\n".encode()


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = request.path_with_query() or "/"
        query = parse_qs(urlsplit(path).query)
        method = "GET" if isinstance(request.method(), Method_Get) else "OTHER"
        body = b"" if method == "GET" else read_body(request)
        status, text = 200, f"Hello from a Python component, {method} {path}\n".encode() + body
        if "cat" in query:
            status, text = cat(query["cat"][0])
        if "sleep" in query:
            time.sleep(float(query["sleep"][0]))
        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        response.set_status_code(status)
        outgoing = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        stream = outgoing.write()
        stream.blocking_write_and_flush(text)
        stream.__exit__(None, None, None)
        OutgoingBody.finish(outgoing, None)
