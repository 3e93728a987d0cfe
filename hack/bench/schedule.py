"""Benchmark: 1,000 WasmApps over 200 kwok Nodes, scheduled by the real operator.

One run, side by side:
  * end to end: a real control plane (etcd, kube-apiserver, kwok with 200 Nodes), 200 agents simulated
    by this script (a WasmNode and a long heartbeat Lease each), a real registry, and the operator as a
    process; apps are created as fast as the API takes them and the clock stops when every app says
    Scheduled=True for its current generation (`all_scheduled_s`), with the operator's CPU seconds
    over that time (`operator_cpu_s`, from its process_cpu_seconds_total);
  * the scheduler core alone, in this process, on the same 200 nodes: each of the 1,000 decisions
    timed on its own (`decision_p50_ms`), as the operator makes them (one batch, capacity accounted).

Prints name=value lines. Usage: .venv/bin/python hack/bench/schedule.py [--nodes 200] [--apps 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT / "hack"), str(ROOT)]

from tests.harness.operatorproc import OperatorProcess  # noqa: E402

from localcluster.controlplane import ControlPlane, NodeShape  # noqa: E402
from localcluster.registry import Registry  # noqa: E402
from shoal_agent.oci import push_wasm  # noqa: E402
from shoal_api.naming import agent_lease_name  # noqa: E402
from shoal_operator.scheduling import Agent, AppRequest, ClusterState, Node, Resources, iter_decisions  # noqa: E402

AGENT_NAMESPACE = "shoal-system"
CAPACITY = {"cpuMillis": 4000, "memoryBytes": 8 << 30}


def log(msg: str) -> None:
    print(f"[bench schedule {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def replicas_of(i: int) -> int:
    return 1 + i % 3


def core_decisions(nodes: int, apps: int) -> list[float]:
    """Time each decision of the pure core, on plain data shaped like the cluster below."""
    now = datetime.now(UTC)
    cluster = ClusterState(
        nodes=tuple(
            Node(
                name=f"node-{i + 1}",
                labels={"topology.kubernetes.io/zone": f"zone-{'abc'[i % 3]}"},
                allocatable=Resources(8000, 16 << 30),
            )
            for i in range(nodes)
        ),
        agents=tuple(
            Agent(
                node=f"node-{i + 1}",
                capacity=Resources(CAPACITY["cpuMillis"], CAPACITY["memoryBytes"]),
                last_heartbeat=now,
                lease_duration_seconds=3600,
            )
            for i in range(nodes)
        ),
    )
    requests = [
        AppRequest(key=f"bench/app-{i}", replicas=replicas_of(i), requests=Resources(10, 32 << 20))
        for i in range(apps)
    ]
    timings = []
    decisions = iter_decisions(cluster=cluster, apps=requests, now=now)
    while True:
        start = time.perf_counter()
        if next(decisions, None) is None:
            break
        timings.append(time.perf_counter() - start)
    return timings


async def create_agents(api: client.ApiClient, names: list[str]) -> None:
    core: Any = client.CoreV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    coord: Any = client.CoordinationV1Api(api)
    await core.create_namespace({"metadata": {"name": AGENT_NAMESPACE}})
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    gate = asyncio.Semaphore(32)

    async def one(node: str) -> None:
        async with gate:
            await custom.create_cluster_custom_object(
                "shoal.dev",
                "v1alpha1",
                "wasmnodes",
                {
                    "apiVersion": "shoal.dev/v1alpha1",
                    "kind": "WasmNode",
                    "metadata": {"name": node},
                    "spec": {
                        "capacity": CAPACITY,
                        "endpoint": {"host": f"{node}.agents.bench.test", "port": 8080},
                    },
                },
            )
            await coord.create_namespaced_lease(
                AGENT_NAMESPACE,
                {
                    "metadata": {"name": agent_lease_name(node)},
                    "spec": {"holderIdentity": node, "leaseDurationSeconds": 3600, "renewTime": now},
                },
            )

    await asyncio.gather(*(one(n) for n in names))


async def run_end_to_end(
    plane: ControlPlane, image: str, apps: int, operator: OperatorProcess
) -> dict[str, float]:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(plane.kubeconfig), client_configuration=cfg)
    async with client.ApiClient(cfg) as api:
        log(f"simulating {plane.nodes} agents")
        await create_agents(api, plane.node_names())
        core: Any = client.CoreV1Api(api)
        custom: Any = client.CustomObjectsApi(api)
        await core.create_namespace({"metadata": {"name": "bench"}})
        log("starting the operator")
        operator.start()
        cpu_at_start = metric_value(operator.metrics(), "process_cpu_seconds_total")
        log(f"creating {apps} WasmApps")
        gate = asyncio.Semaphore(32)

        async def create(i: int) -> None:
            async with gate:
                await custom.create_namespaced_custom_object(
                    "shoal.dev",
                    "v1alpha1",
                    "bench",
                    "wasmapps",
                    {
                        "apiVersion": "shoal.dev/v1alpha1",
                        "kind": "WasmApp",
                        "metadata": {"name": f"app-{i}"},
                        "spec": {
                            "module": {"image": image},
                            "replicas": replicas_of(i),
                            "trigger": {"http": {"path": f"/app-{i}"}},
                            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                        },
                    },
                )

        started = time.monotonic()
        await asyncio.gather(*(create(i) for i in range(apps)))
        created_s = time.monotonic() - started
        log(f"created in {created_s:.1f}s; waiting until every app is Scheduled")
        scheduled = 0
        while True:
            listing = await custom.list_namespaced_custom_object("shoal.dev", "v1alpha1", "bench", "wasmapps")
            scheduled = sum(_scheduled(item) for item in listing["items"])
            if scheduled == apps:
                break
            if time.monotonic() - started > 600:
                raise TimeoutError(f"only {scheduled}/{apps} scheduled after 600s")
            await asyncio.sleep(0.5)
        all_scheduled_s = time.monotonic() - started
        operator_cpu_s = metric_value(operator.metrics(), "process_cpu_seconds_total") - cpu_at_start
        placements = await custom.list_namespaced_custom_object(
            "shoal.dev", "v1alpha1", "bench", "wasmplacements"
        )
        return {
            "create_s": created_s,
            "all_scheduled_s": all_scheduled_s,
            "operator_cpu_s": operator_cpu_s,
            "placements": float(len(placements["items"])),
        }


def _scheduled(item: dict[str, Any]) -> bool:
    status = item.get("status") or {}
    if status.get("observedGeneration") != item["metadata"]["generation"]:
        return False
    return any(c["type"] == "Scheduled" and c["status"] == "True" for c in status.get("conditions") or [])


def metric_value(text: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus text exposition."""
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise KeyError(name)


def histogram_quantile(text: str, name: str, q: float) -> float:
    """Upper bound of the bucket holding quantile q, from Prometheus text exposition."""
    buckets = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0
    for upper, count in buckets:
        if total and count >= q * total:
            return upper
    return float("nan")


def main() -> int:
    # SIGTERM (timeout, pkill) must still stop the servers this run started: run the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--apps", type=int, default=1000)
    args = parser.parse_args()

    timings = core_decisions(args.nodes, args.apps)
    timings_ms = sorted(t * 1000 for t in timings)

    work = Path(tempfile.mkdtemp(prefix="shoal-bench-schedule-"))
    plane = ControlPlane(
        workdir=work / "cluster", nodes=args.nodes, node_shape=NodeShape(cpu="8", memory="16Gi")
    )
    registry = Registry(workdir=work / "registry")
    operator = OperatorProcess(kubeconfig=plane.kubeconfig, workdir=work, identity="bench")
    try:
        log(f"starting a control plane with {args.nodes} kwok Nodes")
        plane.start()
        plane.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))
        registry.start()
        image = f"{registry.address}/bench/hello:v1"
        push_wasm(image, b"\0asm\x01\0\0\0")
        e2e = asyncio.run(run_end_to_end(plane, image, args.apps, operator))
        metrics = operator.metrics()
    finally:
        operator.stop()
        registry.stop()
        plane.stop()

    figures = {
        "nodes": args.nodes,
        "apps": args.apps,
        "placements": int(e2e["placements"]),
        "create_s": round(e2e["create_s"], 2),
        "all_scheduled_s": round(e2e["all_scheduled_s"], 2),
        "operator_cpu_s": round(e2e["operator_cpu_s"], 2),
        "decision_p50_ms": round(statistics.median(timings_ms), 3),
        "decision_p99_ms": round(timings_ms[int(len(timings_ms) * 0.99) - 1], 3),
        "operator_decision_p50_le_ms": histogram_quantile(
            metrics, "shoal_operator_scheduler_decision_seconds", 0.5
        )
        * 1000,
        "operator_scheduling_latency_p50_le_s": histogram_quantile(
            metrics, "shoal_operator_scheduling_latency_seconds", 0.5
        ),
        "goal_all_scheduled_s": 30,
        "goal_decision_p50_ms": 2,
    }
    for name, value in figures.items():
        print(f"{name}={value}")
    print(json.dumps(figures), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
