"""A Spin HTTP app in Python (spin-sdk 3.4.1 + componentize-py 0.17.2, a WASI preview 2 component):
counts its requests in the `default` key-value store and greets with the `greeting` variable.
`/redis` counts through Spin's Redis interface (`redis://cache`, the app's Redis dependency) and
keeps the set of seen paths; `/llm` calls Spin's LLM interface, which Shoal does not implement
(the call traps)."""

from spin_sdk import http, key_value, llm, redis, variables
from spin_sdk.http import Request, Response


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        if request.uri.endswith("/llm"):
            result = llm.infer("llama2-chat", "hello")
            return Response(200, {"content-type": "text/plain"}, result.text.encode())
        if request.uri.endswith("/redis"):
            with redis.open("redis://cache") as conn:
                hits = conn.incr("hits")
                conn.sadd("paths", [request.uri])
                members = conn.smembers("paths")
            return Response(200, {"content-type": "text/plain"}, f"redis hits {hits} {members}\n".encode())
        with key_value.open_default() as store:
            count = int(store.get("requests") or b"0") + 1
            store.set("requests", str(count).encode())
        greeting = variables.get("greeting")
        body = f"{greeting}, request {count}\n".encode()
        return Response(200, {"content-type": "text/plain"}, body)
