"""`make chaos` (`python -m chaos`): break Shoal under load on a local cluster of its own and print
what happened: `name=value` figures and a verdict per scenario, then a table.

`--short` is the version `make test` runs (a short soak); `--only NAME` runs some scenarios.
The exit code is 1 when a scenario could not run to its end, or with `--strict` when a goal was
missed; a missed goal is otherwise reported, not hidden.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

from chaos.cluster import chaos_cluster
from chaos.figures import Result, fmt, table
from chaos.scenarios import Profile
from chaos.suite import SCENARIOS
from localcluster.processes import stop_cleanly_on_sigterm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the make-test version: a short soak")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), help="run only these")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--workdir", type=Path, help="keep the cluster's files (logs) here")
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    profile = Profile(short=args.short)
    names = args.only or list(SCENARIOS)
    started = time.monotonic()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="shoal-chaos-") as tmp:
        workdir = args.workdir or Path(tmp)
        print(f"==> chaos: local cluster in {workdir}", flush=True)
        with chaos_cluster(workdir) as cluster:
            print(f"==> cluster up in {time.monotonic() - started:.0f}s", flush=True)
            for name in names:
                print(f"==> {name}", flush=True)
                begun = time.monotonic()
                try:
                    if cluster.ensure_operator():  # one scenario's outage must not break the next one
                        print(
                            "note: the operator had exited; restarted it as its Deployment would", flush=True
                        )
                    result = SCENARIOS[name](cluster, profile)
                except Exception as e:  # one broken scenario must not hide the others' figures
                    traceback.print_exc()
                    result = Result(name, error=f"{type(e).__name__}: {e}")
                result.figures.setdefault(f"{name}_scenario_s", time.monotonic() - begun)
                for line in result.lines():
                    print(line, flush=True)
                print(f"verdict: {result.verdict()}", flush=True)
                results.append(result)
            if any(r.error for r in results):
                print(f"logs: {workdir / 'shoal' / 'logs'}", flush=True)
    print()
    print(table(results))
    print(f"chaos_total_s={fmt(time.monotonic() - started)}")
    if any(r.error for r in results):
        return 1
    if args.strict and not all(r.passed for r in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
