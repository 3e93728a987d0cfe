"""A wasi:cli/run component in Python (componentize-py): prints its arguments and the CGI
response a WAGI route expects, so it serves as a job, a message handler or an HTTP handler."""

import os
import sys

from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        path = os.environ.get("PATH_INFO", "")
        data = sys.stdin.read()
        print("Content-Type: text/plain")
        print()
        print(f"Hello from a Python command component, args={sys.argv[1:]} path={path} stdin={data!r}")
