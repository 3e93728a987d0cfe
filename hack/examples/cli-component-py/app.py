"""A wasi:cli/run component in Python (componentize-py): prints its arguments and the CGI
response a WAGI route expects, so it serves as a job, a message handler or an HTTP handler.
With the arguments `cat PATH` it prints that file instead (or why it cannot), for the tests of
`spec.files` through wasi:filesystem."""

import os
import sys

from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        if sys.argv[1:2] == ["cat"] and len(sys.argv) == 3:
            print("Content-Type: text/plain")
            print()
            try:
                with open(sys.argv[2]) as f:
                    print(f.read(), end="")
            except OSError as e:
                print(f"cannot open {sys.argv[2]}: {e.strerror}")
            return
        path = os.environ.get("PATH_INFO", "")
        data = sys.stdin.read()
        print("Content-Type: text/plain")
        print()
        print(f"Hello from a Python command component, args={sys.argv[1:]} path={path} stdin={data!r}")
