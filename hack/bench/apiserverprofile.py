"""Where kube-apiserver's CPU goes: a CPU profile taken from its /debug/pprof while a bench phase
runs, sorted into a few kinds of work by the functions on each sampled stack.

Used by `schedule.py --apiserver-profile`: when the operator waits on a saturated apiserver, these
shares say which requests cost it (creates, status updates), what every request pays (client
certificate checks, TLS, the watch cache decoding each write back from etcd), and Go's own garbage
collection. `go tool pprof -raw` turns the profile into text; `go` is already on the machines that
build the Kubernetes tools, and without it the bench keeps the profile file and prints no shares.
"""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import urllib.request
from collections.abc import Iterable
from pathlib import Path

CATEGORIES: tuple[tuple[str, str], ...] = (
    # Ordered: a sample counts for the first kind whose pattern any frame of its stack matches.
    ("gc", r"runtime\.gcBgMarkWorker|runtime\.bgsweep|runtime\.bgscavenge"),
    ("client_cert_auth", r"authentication/request/x509\."),
    ("tls", r"^crypto/tls\."),
    ("status_update", r"customresource\.\(\*StatusREST\)\.Update|/storage\.\(\*StatusREST\)\.Update"),
    ("create", r"handlers\.createHandler|CreateResource"),
    ("patch", r"handlers\.PatchResource|\(\*patcher\)"),
    ("update", r"handlers\.UpdateResource"),
    ("delete", r"handlers\.DeleteResource|handlers\.DeleteCollection"),
    ("list_get", r"handlers\.ListResource|handlers\.GetResource"),
    ("etcd_watch_decode", r"etcd3\.\(\*watchChan\)"),
    ("watch_send", r"handlers\.serveWatch|\(\*WatchServer\)|watchEncoder"),
    ("watch_cache", r"cacher\.|watchCache"),
    ("etcd_client", r"^go\.etcd\.io/|^google\.golang\.org/grpc"),
    ("http", r"^net/http\.|^golang\.org/x/net/http2"),
)
"""(kind, pattern over function names). What matches none is `other`."""

_COMPILED = tuple((name, re.compile(pattern)) for name, pattern in CATEGORIES)
_SAMPLE = re.compile(r"\s*\d+\s+(\d+): ([\d ]+)$")
_LOCATION = re.compile(r"\s*(\d+): 0x[0-9a-f]+ M=\d+ (\S+)")
_INLINED = re.compile(r"\s+(\S+) \S+:\d+:\d+ s=\d+$")


def take(server: str, context: ssl.SSLContext, seconds: int) -> bytes:
    """A CPU profile of `seconds` (the call blocks that long); needs a client allowed /debug/*."""
    url = f"{server}/debug/pprof/profile?seconds={seconds}"
    with urllib.request.urlopen(url, context=context, timeout=seconds + 30) as resp:
        profile: bytes = resp.read()
    return profile


def parse_raw(text: str) -> list[tuple[float, list[str]]]:
    """`go tool pprof -raw` output as (CPU seconds, function names from leaf to root) per stack."""
    samples_text, _, rest = text.partition("\nLocations\n")
    functions: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in rest.partition("\nMappings\n")[0].splitlines():
        if m := _LOCATION.match(line):
            current = functions.setdefault(int(m.group(1)), [])
            current.append(m.group(2))
        elif current is not None and (m := _INLINED.match(line)):
            current.append(m.group(1))
    stacks: list[tuple[float, list[str]]] = []
    for line in samples_text.splitlines():
        if m := _SAMPLE.match(line):
            names = [f for loc in m.group(2).split() for f in functions.get(int(loc), [])]
            stacks.append((int(m.group(1)) / 1e9, names))
    return stacks


def kind_of(functions: Iterable[str]) -> str:
    names = list(functions)
    for kind, pattern in _COMPILED:
        if any(pattern.search(f) for f in names):
            return kind
    return "other"


def shares(stacks: list[tuple[float, list[str]]]) -> tuple[float, dict[str, float]]:
    """Total sampled CPU seconds, and each kind's percentage of it (every kind listed, 0 included)."""
    total = sum(seconds for seconds, _ in stacks)
    by_kind = dict.fromkeys([name for name, _ in CATEGORIES] + ["other"], 0.0)
    for seconds, functions in stacks:
        by_kind[kind_of(functions)] += seconds
    return total, {k: (100 * v / total if total else 0.0) for k, v in by_kind.items()}


def record(path: Path, server: str, context: ssl.SSLContext, seconds: int) -> dict[str, float]:
    """Take a profile of `seconds`, keep it at `path` (for `go tool pprof`), return its figures."""
    path.write_bytes(take(server, context, seconds))
    return figures(path)


def figures(profile: Path, prefix: str = "apiserver_profile") -> dict[str, float]:
    """`<prefix>_cpu_s` and `<prefix>_<kind>_pct` for a saved profile; empty without `go`."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        return {}
    raw = subprocess.run(
        [go, "tool", "pprof", "-raw", str(profile)], capture_output=True, text=True, check=True
    ).stdout
    total, pct = shares(parse_raw(raw))
    return {f"{prefix}_cpu_s": round(total, 2), **{f"{prefix}_{k}_pct": round(v, 1) for k, v in pct.items()}}
