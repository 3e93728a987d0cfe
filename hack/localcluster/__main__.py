"""`python -m localcluster up|down|status`: the command-line face of the local cluster (make up/down/status).

`up` leaves the servers running after it exits, so it records their PIDs in a state file; `down` stops
exactly those PIDs and removes the work folder; nothing else on the machine is touched.

`up` also makes a private test network (testnet.py: a netns and a veth, root needed; `--no-testnet`
to skip) routing the cluster's own pod CIDR, so dependency servers and agents can use addresses
that EndpointSlices accept; it is recorded in the state file and `down` removes it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from .controlplane import ControlPlane
from .processes import Proc, stop
from .testnet import TestNet, TestNetError, pick_pod_cidr
from .tools import cache_dir


def _state_path(name: str) -> Path:
    return cache_dir() / "clusters" / name / "state.json"


def _load(name: str) -> dict[str, object] | None:
    path = _state_path(name)
    return json.loads(path.read_text()) if path.exists() else None


def _procs(state: dict[str, object]) -> list[Proc]:
    raw = state.get("procs", [])
    assert isinstance(raw, list)
    return [Proc.from_dict(p) for p in raw]


def up(name: str, nodes: int, *, testnet: bool = True) -> int:
    if (state := _load(name)) is not None and any(p.alive() for p in _procs(state)):
        print(f"cluster {name!r} is already up", file=sys.stderr)
        _print_addresses(state)
        return 0
    workdir = _state_path(name).parent
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"starting the local control plane in {workdir} (nodes={nodes}) ...", file=sys.stderr)
    net = None
    if testnet:
        try:
            net = TestNet.create(name=name, pod_cidr=pick_pod_cidr())
        except TestNetError as e:
            print(
                f"cannot create the test network: {e}\n(use --no-testnet to run without it)", file=sys.stderr
            )
            return 1
    plane = ControlPlane(workdir=workdir, nodes=nodes)
    if net is not None:
        plane.pod_cidr = net.pod_cidr
    try:
        plane.start()
        state = plane.describe()
        from .registry import Registry

        registry = Registry(workdir=workdir / "registry")
        registry.start()
    except BaseException:
        plane.stop()
        if net is not None:
            net.stop()
        raise
    if net is not None:
        state["testnet"] = net.describe()
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
    net = state.get("testnet")
    if isinstance(net, dict):
        print(f"TESTNET={TestNet.from_description(net).netns}")


def down(name: str) -> int:
    state = _load(name)
    if state is None:
        print(f"cluster {name!r} is not up", file=sys.stderr)
        return 0
    for proc in reversed(_procs(state)):
        stop(proc)
        print(f"stopped {proc.name} (pid {proc.pid})", file=sys.stderr)
    net = state.get("testnet")
    if isinstance(net, dict):
        TestNet.from_description(net).stop()
        print(f"removed test network {net['name']}", file=sys.stderr)
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
    parser.add_argument(
        "--no-testnet",
        dest="testnet",
        action="store_false",
        help="do not create the test network (needs root)",
    )
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.name, args.nodes, testnet=args.testnet)
    if args.command == "down":
        return down(args.name)
    return status(args.name)


if __name__ == "__main__":
    sys.exit(main())
