"""A wasi:http/proxy component in Python (componentize-py): answers every request with a greeting
that names the path and the request's method, and echoes the request body when there is one."""

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


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = request.path_with_query() or "/"
        method = "GET" if isinstance(request.method(), Method_Get) else "OTHER"
        body = b"" if method == "GET" else read_body(request)
        text = f"Hello from a Python component, {method} {path}\n".encode() + body
        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        outgoing = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        stream = outgoing.write()
        stream.blocking_write_and_flush(text)
        stream.__exit__(None, None, None)
        OutgoingBody.finish(outgoing, None)
