"""Is the operator's RSS growth under churn a leak? `python -m chaos.leakprobe [--minutes N]`

Runs the chaos cluster, replaces its operator with the same operator started under tracemalloc (a
wrapper: `python -c ... runpy.run_module("shoal_operator")`, nothing in the operator changes), churns
apps as the soak does, and every `--every` seconds has the operator write (on SIGUSR1) its Python
heap by allocation site and its live objects by type. Prints the sites and types that grew from the
first sample after the warm-up to the last, and the RSS and traced-heap slopes. Growth that keeps
pace with the churn is a leak; a heap that levels off while RSS creeps is the allocator, not us.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from chaos.cluster import APPS, chaos_cluster
from chaos.figures import slope_per_minute
from chaos.scenarios import hello_spec
from chaos.soak import proc_sample
from localcluster.processes import spawn, stop, stop_cleanly_on_sigterm, wait_until

WRAPPER = r"""
import collections, ctypes, gc, json, os, runpy, signal, sys, tracemalloc
import shoal_operator.__main__  # imported untraced: tracing the imports would only slow them down
trace = os.environ.get("LEAKPROBE_TRACE") == "1"
if trace:
    tracemalloc.start(8)
out = os.environ["LEAKPROBE_OUT"]
trim = os.environ.get("LEAKPROBE_TRIM") == "1"
n = [0]
libc = ctypes.CDLL("libc.so.6")
class MallInfo2(ctypes.Structure):  # glibc >= 2.33; sums every arena
    _fields_ = [(f, ctypes.c_size_t) for f in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]
libc.mallinfo2.restype = MallInfo2
def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
def malloc_state():
    m = libc.mallinfo2()
    return {"in_use": m.uordblks + m.hblkhd, "free_held": m.fordblks, "arena": m.arena, "mmapped": m.hblkhd}
WATCHED = ("set", "ReferenceType", "builtin_function_or_method", "dict")
seen = {}  # dump number -> ids of the watched objects alive then
def describe(o):
    t = type(o).__qualname__
    if isinstance(o, dict):
        return f"dict{sorted(map(str, o))[:6]}"
    if t == "ReferenceType":  # what it points at says who creates these
        target = o()
        name = getattr(target, "__qualname__", type(target).__qualname__)
        return f"weakref to {getattr(target, '__module__', '?')}.{name}"
    if hasattr(o, "__self__") and t == "builtin_function_or_method":
        return f"{t}:{getattr(o, '__name__', '?')} of {type(o.__self__).__qualname__}"
    return t
def chain(o, mine, depth=6):
    # who keeps `o` alive: the first referrer that is not this probe's own frames or lists, 6 levels up
    out = [describe(o)]
    refs = []
    for _ in range(depth):
        refs = [r for r in gc.get_referrers(o) if id(r) not in mine and type(r).__name__ != "frame"
                and r is not seen and r is not globals() and r is not out and r is not refs]
        if not refs:
            break
        o = refs[0]
        out.append(describe(o))
    return " <- ".join(out)
def survivors():
    # objects born after the first dump that lived through two later ones: they pile up
    objs = [o for o in gc.get_objects() if type(o).__qualname__ in WATCHED]
    seen[n[0]] = {id(o) for o in objs}
    if n[0] < 3:
        return []
    born = seen[n[0] - 2] - seen[0]
    keep = [o for o in objs if id(o) in born and id(o) in seen.get(n[0] - 1, ())]
    per_type = collections.defaultdict(list)
    for o in keep:
        per_type[type(o).__qualname__].append(o)
    for old in [k for k in seen if 0 < k < n[0] - 2]:
        del seen[old]  # ids cost memory; only the first dump and the last two are compared
    picks = per_type.get("set", [])[:3] + per_type.get("ReferenceType", [])[:12]
    picks += per_type.get("dict", [])[-3:]
    mine = {id(objs), id(keep), id(picks), *(id(got) for got in per_type.values())}
    return [f"{t} x{len(got)}: " + chain(got[len(got) // 2], mine) for t, got in per_type.items()] + [
        "  " + chain(o, mine) for o in picks]
def dump(*_):
    gc.collect()
    alive = survivors() if os.environ.get("LEAKPROBE_REFS") == "1" else []
    sites = {}
    snap = tracemalloc.take_snapshot() if trace else None
    for stat in snap.statistics("traceback") if snap else []:
        frames = stat.traceback[:6]
        key = " <- ".join(f"{f.filename.rsplit('site-packages/', 1)[-1]}:{f.lineno}" for f in frames)
        sites[key] = [stat.size, stat.count]
    types = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    traced = tracemalloc.get_traced_memory()[0] if trace else 0
    malloc = malloc_state()
    malloc["rss_kib"] = rss_kib()
    if trim:  # hand free pages back: what RSS keeps after this is memory in use, not the allocator's cache
        libc.malloc_trim(0)
        malloc["rss_after_trim_kib"] = rss_kib()
    with open(f"{out}/{n[0]:04d}.json", "w") as f:
        blocks = sys.getallocatedblocks()
        doc = {"traced": traced, "blocks": blocks, "sites": sites, "types": dict(types), "malloc": malloc,
               "survivors": alive}
        json.dump(doc, f)
    n[0] += 1
signal.signal(signal.SIGUSR1, dump)
sys.argv = ["shoal_operator", *sys.argv[1:]]
runpy.run_module("shoal_operator", run_name="__main__", alter_sys=True)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.leakprobe", description=__doc__)
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--every", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument(
        "--trace",
        action="store_true",
        help="tracemalloc allocation sites (its own memory makes RSS meaningless)",
    )
    parser.add_argument(
        "--refs",
        action="store_true",
        help="who holds the sets, weakrefs, dicts and bound builtins born after the first dump that live on",
    )
    parser.add_argument(
        "--trim",
        action="store_true",
        help="malloc_trim(0) at each dump: RSS after it shows what stays once glibc returns its free pages",
    )
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="shoal-leakprobe-") as tmp, chaos_cluster(Path(tmp)) as c:
        dumps = Path(tmp) / "dumps"
        dumps.mkdir()
        op = c.shoal.operator
        assert op is not None and op.proc is not None
        stop(op.proc, timeout=20)
        rel = c.release
        proc = spawn(
            "shoal-operator-leakprobe",
            [
                sys.executable, "-c", WRAPPER,
                f"--agent-namespace={rel.namespace}", f"--lease-namespace={rel.namespace}",
                f"--identity={op.pod.name}", "--metrics-host=127.0.0.1", f"--metrics-port={op.metrics_port}",
            ],
            log_dir=Path(os.environ.get("LEAKPROBE_LOGS", tmp)),
            env={"KUBECONFIG": str(op.kubeconfig), "PYTHONUNBUFFERED": "1", "POD_NAMESPACE": rel.namespace,
                 "LEAKPROBE_OUT": str(dumps), "LEAKPROBE_TRACE": "1" if args.trace else "0",
                 "LEAKPROBE_TRIM": "1" if args.trim else "0", "LEAKPROBE_REFS": "1" if args.refs else "0"},
        )  # fmt: skip
        op.proc = proc
        from chaos.load import get_text

        wait_until(
            lambda: bool(get_text(("127.0.0.1", op.metrics_port), "/metrics")), what="operator", timeout=300
        )
        ns = c.namespace("leakprobe")
        image = c.push("hello-c", "v1", repository="leakprobe")
        stopping = threading.Event()

        def churn() -> None:
            alive: list[str] = []
            for i in range(int(args.minutes * 20) + 1):
                if stopping.wait(3.0):
                    return
                name = f"churn-{i}"
                c.apply_app(ns, name, hello_spec(image, 1 + i % 2))
                alive.append(name)
                if len(alive) > 1:
                    c.apply_app(ns, alive[-2], hello_spec(image, 1, env=[{"name": "I", "value": str(i)}]))
                if len(alive) > 3:
                    c.kube.delete(f"{APPS}/namespaces/{ns}/wasmapps/{alive.pop(0)}")

        churner = threading.Thread(target=churn)
        churner.start()
        began = time.monotonic()
        rss: list[tuple[float, float]] = []
        signalled: list[float] = []
        traced: list[tuple[float, float]] = []
        try:
            next_dump = began + args.warmup
            while time.monotonic() - began < args.minutes * 60:
                time.sleep(1.0)
                sample = proc_sample(proc.pid)
                if sample is not None and time.monotonic() - began >= args.warmup:
                    rss.append((time.monotonic() - began, float(sample[0])))
                if time.monotonic() >= next_dump:
                    os.kill(proc.pid, signal.SIGUSR1)
                    signalled.append(time.monotonic() - began)
                    next_dump += args.every
        finally:
            stopping.set()
            churner.join(timeout=30)
        time.sleep(3.0)
        files = sorted(dumps.glob("*.json"))
        docs = [json.loads(f.read_text()) for f in files]
        for d, at in zip(docs, signalled, strict=False):  # a dump answers the signal sent before it
            d["at"] = at
        blocks: list[tuple[float, float]] = []
        for d in docs:
            traced.append((d["at"], d["traced"] / 1024))
            blocks.append((d["at"], float(d["blocks"])))
        print(f"dumps={len(docs)}")
        print(f"operator_rss_slope_kib_per_min={slope_per_minute(rss):.1f}")
        print(f"operator_traced_heap_slope_kib_per_min={slope_per_minute(traced):.1f}")
        print(f"operator_pymalloc_blocks_slope_per_min={slope_per_minute(blocks):.1f}")
        for key in ("in_use", "free_held", "arena"):
            series = [(d["at"], d["malloc"][key] / 1024) for d in docs]
            print(f"operator_malloc_{key}_slope_kib_per_min={slope_per_minute(series):.1f}")
        if args.trim:
            trimmed = [(d["at"], float(d["malloc"]["rss_after_trim_kib"])) for d in docs]
            print(f"operator_rss_after_trim_slope_kib_per_min={slope_per_minute(trimmed):.1f}")
            print("rss after trim kib: " + " ".join(f"{t:.0f}s={v:.0f}" for t, v in trimmed))
        in_use = " ".join(f"{d['at']:.0f}s={d['malloc']['in_use'] / 1024:.0f}" for d in docs)
        print(f"malloc in use kib: {in_use}")
        print("pymalloc blocks: " + " ".join(f"{t:.0f}s={b:.0f}" for t, b in blocks))
        print("rss kib: " + " ".join(f"{t:.0f}s={v:.0f}" for t, v in rss[:: max(1, len(rss) // 12)]))
        if len(docs) >= 2:
            first, last = docs[0], docs[-1]
            print(
                f"traced_first_kib={first['traced'] / 1024:.0f} traced_last_kib={last['traced'] / 1024:.0f}"
            )
            grew = sorted(
                ((v[0] - first["sites"].get(k, [0, 0])[0], v[1] - first["sites"].get(k, [0, 0])[1], k)
                 for k, v in last["sites"].items()),
                reverse=True,
            )  # fmt: skip
            print("top growing allocation sites (bytes, blocks):")
            for size, count, key in grew[:15]:
                print(f"  {size:+9d} B {count:+6d}  {key}")
            types = sorted(
                ((n - first["types"].get(t, 0), t) for t, n in last["types"].items()), reverse=True
            )
            if last.get("survivors"):
                print("born after the first dump and still alive (type xcount: referrer chain):")
                for line in last["survivors"]:
                    print(f"  {line}")
            print("top growing object types:")
            for n, t in types[:15]:
                print(f"  {n:+7d}  {t}")
        stop(proc, timeout=20)
        op.proc = None
        for a in c.apps(ns):
            c.kube.delete(f"{APPS}/namespaces/{ns}/wasmapps/{a['metadata']['name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
