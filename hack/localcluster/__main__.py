"""`python -m localcluster up|down|status`: the command-line face of the local cluster (make up/down/status).

`up` leaves the servers running after it exits, so it records their PIDs in a state file; `down` stops
exactly those PIDs and removes the work folder; nothing else on the machine is touched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from .controlplane import ControlPlane
from .processes import Proc, stop
from .tools import cache_dir


def _state_path(name: str) -> Path:
    return cache_dir() / "clusters" / name / "state.json"


def _load(name: str) -> dict[str, object] | None:
    path = _state_path(name)
    return json.loads(path.read_text()) if path.exists() else None


def _procs(state: dict[str, object]) -> list[Proc]:
    raw = state.get("procs", [])
    assert isinstance(raw, list)
    return [Proc(name=str(p["name"]), pid=int(p["pid"]), log=str(p["log"])) for p in raw]


def up(name: str, nodes: int) -> int:
    if (state := _load(name)) is not None and any(p.alive() for p in _procs(state)):
        print(f"cluster {name!r} is already up", file=sys.stderr)
        _print_addresses(state)
        return 0
    workdir = _state_path(name).parent
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"starting the local control plane in {workdir} (nodes={nodes}) ...", file=sys.stderr)
    plane = ControlPlane(workdir=workdir, nodes=nodes)
    plane.start()
    state = plane.describe()
    try:
        from .registry import Registry

        registry = Registry(workdir=workdir / "registry")
        registry.start()
    except BaseException:
        plane.stop()
        raise
    state["registry"] = registry.address
    state["procs"] = [p.to_dict() for p in plane.procs] + [
        {"name": "docker-registry", "pid": registry.pid, "log": registry.log}
    ]
    _state_path(name).write_text(json.dumps(state, indent=2))
    _print_addresses(state)
    return 0


def _print_addresses(state: dict[str, object]) -> None:
    print(f"KUBECONFIG={state['kubeconfig']}")
    print(f"REGISTRY={state.get('registry', '')}")


def down(name: str) -> int:
    state = _load(name)
    if state is None:
        print(f"cluster {name!r} is not up", file=sys.stderr)
        return 0
    for proc in reversed(_procs(state)):
        stop(proc)
        print(f"stopped {proc.name} (pid {proc.pid})", file=sys.stderr)
    shutil.rmtree(_state_path(name).parent, ignore_errors=True)
    return 0


def status(name: str) -> int:
    state = _load(name)
    if state is None:
        print(f"cluster {name!r} is not up")
        return 1
    _print_addresses(state)
    procs = _procs(state)
    for proc in procs:
        print(f"{proc.name:<26} pid {proc.pid:<8} {'running' if proc.alive() else 'STOPPED'}  log {proc.log}")
    return 0 if all(p.alive() for p in procs) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--name", default="default", help="several clusters may run side by side")
    parser.add_argument("--nodes", type=int, default=3, help="how many kwok Nodes (default 3)")
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.name, args.nodes)
    if args.command == "down":
        return down(args.name)
    return status(args.name)


if __name__ == "__main__":
    sys.exit(main())
