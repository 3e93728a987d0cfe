"""`python -m localcluster up|down|status|env`: the command-line face of the local cluster (make up/down/
status/env).

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
from .tools import bin_dir, cache_dir


def _state_path(name: str) -> Path:
    return cache_dir() / "clusters" / name / "state.json"


def _load(name: str) -> dict[str, object] | None:
    path = _state_path(name)
    return json.loads(path.read_text()) if path.exists() else None


def _procs(state: dict[str, object]) -> list[Proc]:
    raw = state.get("procs", [])
    assert isinstance(raw, list)
    return [Proc.from_dict(p) for p in raw]


def up(name: str, nodes: int, *, testnet: bool = True, real_nodes: int = 0) -> int:
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
    if real_nodes and net is None:
        print("a real node needs the test network (drop --no-testnet)", file=sys.stderr)
        return 1
    if real_nodes > 1:
        print("only one real node is supported (REAL_NODES=1)", file=sys.stderr)
        return 1
    plane = ControlPlane(workdir=workdir, nodes=nodes)
    if net is not None:
        plane.pod_cidr = net.pod_cidr
    if real_nodes and net is not None:
        plane.bind_address = net.root_ip
        plane.kwok_node_selector = "type=kwok"
    from .registry import Registry

    registries: list[Registry] = []
    node = None
    try:
        plane.start()
        state = plane.describe()
        registry = Registry(workdir=workdir / "registry")
        registry.start()
        registries.append(registry)
        if real_nodes and net is not None:
            from .realnode import RealNode

            # The same images, served on the test network: the node's containerd and its pods pull here.
            node_registry = Registry(
                workdir=workdir / "registry-node", host=net.root_ip, shared_storage=registry.storage_dir
            )
            node_registry.start()
            registries.append(node_registry)
            print("starting the real node (containerd, kubelet, kube-proxy) ...", file=sys.stderr)
            node = RealNode(
                cluster=name,
                workdir=workdir / "node",
                index=net.index,
                server=plane.server,
                registry=node_registry.address,
                pki_dir=plane.pki_dir,
            )
            node.start()
    except BaseException:
        for r in registries:
            r.stop()
        plane.stop()
        if net is not None:
            net.stop()
        raise
    if net is not None:
        state["testnet"] = net.describe()
    state["registry"] = registry.address
    state["procs"] = [p.to_dict() for p in plane.procs] + [
        {"name": f"docker-{r.workdir.name}", "pid": r.pid, "log": r.log} for r in registries
    ]
    if node is not None:
        state["realnode"] = node.describe()
        state["node_registry"] = node.registry
    _state_path(name).write_text(json.dumps(state, indent=2))
    _print_addresses(state)
    return 0


def _print_addresses(state: dict[str, object]) -> None:
    print(f"KUBECONFIG={state['kubeconfig']}")
    print(f"REGISTRY={state.get('registry', '')}")
    if state.get("node_registry"):
        print(f"NODE_REGISTRY={state['node_registry']}")
    net = state.get("testnet")
    if isinstance(net, dict):
        print(f"TESTNET={TestNet.from_description(net).netns}")


def down(name: str) -> int:
    state = _load(name)
    if state is None:
        print(f"cluster {name!r} is not up", file=sys.stderr)
        return 0
    real = state.get("realnode")
    if isinstance(real, dict):
        from .realnode import RealNode

        RealNode.from_description(real).stop()
        print(f"stopped the real node {real['name']} (containers, mounts, netns removed)", file=sys.stderr)
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
    real = state.get("realnode")
    if isinstance(real, dict):
        from .realnode import RealNode

        procs += RealNode.from_description(real).procs
    for proc in procs:
        print(f"{proc.name:<26} pid {proc.pid:<8} {'running' if proc.alive() else 'STOPPED'}  log {proc.log}")
    return 0 if all(p.alive() for p in procs) else 1


def shell_env(kubeconfig: str) -> str:
    """Lines for `eval "$(make env)"`: kubectl and helm (the cached tools) and the venv's `shoal` on
    PATH, and KUBECONFIG at the cluster, so the commands a user types next are short."""
    tools, venv = bin_dir(), Path(sys.executable).parent
    return f'export KUBECONFIG={kubeconfig}\nexport PATH="{tools}:{venv}:$PATH"\n'


def env(name: str) -> int:
    state = _load(name)
    if state is None:
        print(f"cluster {name!r} is not up (make up, or make demo)", file=sys.stderr)
        return 1
    print(shell_env(str(state["kubeconfig"])), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--name", default="default", help="several clusters may run side by side")
    parser.add_argument("--nodes", type=int, default=3, help="how many kwok Nodes (default 3)")
    parser.add_argument(
        "--no-testnet",
        dest="testnet",
        action="store_false",
        help="do not create the test network (needs root)",
    )
    parser.add_argument(
        "--real-nodes",
        type=int,
        default=0,
        help="also run a real kubelet Node (containerd, kube-proxy, CNI bridge; 0 or 1)",
    )
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.name, args.nodes, testnet=args.testnet, real_nodes=args.real_nodes)
    if args.command == "down":
        return down(args.name)
    if args.command == "env":
        return env(args.name)
    return status(args.name)


if __name__ == "__main__":
    sys.exit(main())
