"""Benchmark: 1,000 WasmApps over 200 kwok Nodes, scheduled by the real operator, side by side with
1,000 Deployments on the same cluster.

One run:
  * Shoal end to end: a real control plane (etcd, kube-apiserver, kube-controller-manager,
    kube-scheduler, kwok with 200 Nodes), 200 agents simulated by this script (a WasmNode and a long
    heartbeat Lease each), a real registry, and the operator as a process; apps are created as fast as
    the API takes them and the clock stops when every app says Scheduled=True for its current
    generation (`all_scheduled_s`; its Service and EndpointSlice, written after, are all there at
    `all_published_s`), with the operator's CPU seconds over that time (`operator_cpu_s`,
    from its process_cpu_seconds_total; `operator_cpu_published_s` until all_published_s) and its
    peak resident memory (`operator_peak_rss_mb`); before the apps, the operator's CPU over 20 s
    with nothing to do but the Nodes' heartbeats (`operator_idle_cpu_pct`, of one core); and where
    the cores went until all_scheduled_s: each process's CPU seconds (`scheduled_cpu_<process>_s`:
    kube-apiserver, etcd, the operator, this script's clients, ...) and their sum as a share of what
    the cores offered (`scheduled_cpu_busy_pct`; near 100 means the machine, not a wait, is the limit);
  * the Deployment path on the same cluster, with the operator stopped: 1,000 Deployments of 2
    replicas (what one pod per replica costs: the pods SpinKube's operator would have created for
    1,000 SpinApps), the clock stopping when every pod is bound and Running on a kwok Node; once with
    the control plane's default client limits (`deployments_all_running_s`) and once with
    kube-controller-manager and kube-scheduler restarted with raised ones
    (`deployments_tuned_all_running_s`, flags in `deployments_tuned_flags`);
  * for each path, the apiserver requests per app (deltas of apiserver_request_total over the
    phase, every client included; `*_writes_per_app` counts only mutating verbs);
  * the scheduler core alone, in this process, on the same 200 nodes: each of the 1,000 decisions
    timed on its own (`decision_p50_ms`), as the operator makes them (one batch, capacity accounted).

`--scale-probe` adds a Shoal-only run of 10,000 apps over 1,000 Nodes on a second cluster (figures
prefixed `scale_`), with the core's decision time over the first and the last tenth of the apps, to see
whether it stays flat as the cluster fills.

`--apiserver-profile FILE` saves kube-apiserver's CPU profile of the Shoal phase's first seconds and
prints its shares by kind of work (`apiserver_profile_<kind>_pct`: creates, status updates, client
certificate checks, GC, ...; see apiserverprofile.py). Under `taskset -c 0` the whole run gets one
core, which says how the time scales with cores (`scheduled_cpu_busy_pct` counts the cores offered).

Prints name=value lines. Usage:
  .venv/bin/python hack/bench/schedule.py [--nodes 200] [--apps 1000] [--no-deployments] [--scale-probe]
                                          [--apiserver-profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
from bench import apiserverprofile  # noqa: E402
from harness.operatorproc import OperatorProcess  # noqa: E402
from localcluster.controlplane import ControlPlane, NodeShape  # noqa: E402
from localcluster.processes import stop_cleanly_on_sigterm  # noqa: E402
from localcluster.registry import Registry  # noqa: E402
from shoal_api.naming import agent_lease_name  # noqa: E402
from shoal_oci import push_wasm  # noqa: E402
from shoal_operator.kube import look_up_proxy_once  # noqa: E402
from shoal_operator.scheduling import Agent, AppRequest, ClusterState, Node, Resources, iter_decisions  # noqa: E402

AGENT_NAMESPACE = "shoal-system"
CAPACITY = {"cpuMillis": 4000, "memoryBytes": 8 << 30}
DEPLOYMENT_REPLICAS = 2
TUNED_FLAGS = ("--kube-api-qps=200", "--kube-api-burst=400")
"""How large clusters run kube-controller-manager (default 20 QPS, burst 30) and kube-scheduler
(default 50, 100): the Deployment path's own client limits raised, so that the comparison is with
the fastest the pod path goes here, not with its defaults."""
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
PHASE_TIMEOUT_S = 1500.0
PROFILE_S = 10
"""`--apiserver-profile`: kube-apiserver's CPU is profiled over the phase's first seconds (inside
`all_scheduled_s` wherever that takes longer)."""
IDLE_PROBE_S = 20.0
HEARTBEATS = ("leases", "nodes")
"""Resources kwok's Nodes write to as they heartbeat (the bench's own agents' Leases never renew)."""


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
    plane: ControlPlane, image: str, apps: int, operator: OperatorProcess, *, profile: Path | None = None
) -> dict[str, float]:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(plane.kubeconfig), client_configuration=cfg)
    async with client.ApiClient(cfg) as api:
        look_up_proxy_once(api, cfg.host)  # this script's own CPU is taken from the cluster's
        log(f"simulating {plane.nodes} agents")
        await create_agents(api, plane.node_names())
        core: Any = client.CoreV1Api(api)
        custom: Any = client.CustomObjectsApi(api)
        await core.create_namespace({"metadata": {"name": "bench"}})
        log("starting the operator")
        operator.start()
        # The clock starts once the operator has warmed its cache (its first listing can take
        # seconds of 429 retries on a busy apiserver): apps it lists there take the path of apps
        # that existed before a restart, not the one measured here.
        deadline = time.monotonic() + 120
        while "cache warm:" not in operator.log():
            if time.monotonic() > deadline:
                raise TimeoutError("the operator did not warm its cache within 120s")
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # and opened its watches
        # What the Nodes' heartbeats alone cost an operator with nothing to do (kwok renews each
        # Node's Lease every 10 s and patches its status about every 20 s, as kubelets do).
        cpu_idle_start = metric_value(operator.metrics(), "process_cpu_seconds_total")
        await asyncio.sleep(IDLE_PROBE_S)
        cpu_at_start = metric_value(operator.metrics(), "process_cpu_seconds_total")
        idle_cpu_s = cpu_at_start - cpu_idle_start
        requests_at_start = apiserver_requests(plane)
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

        list_apps = (custom.list_namespaced_custom_object, "shoal.dev", "v1alpha1", "bench", "wasmapps")
        tracker = ReadyTracker(*list_apps, ready=_scheduled)
        await tracker.start()
        # Every app's Service and EndpointSlice, which the operator writes after the status (its
        # slice is written after its Service, so a slice with endpoints says both are there).
        discovery: Any = client.DiscoveryV1Api(api)
        slices = ReadyTracker(discovery.list_namespaced_endpoint_slice, "bench", ready=_has_endpoints)
        await slices.start()
        started = time.monotonic()
        cpu_before = cpu_by_process(plane, operator)
        profiling = (
            asyncio.create_task(
                asyncio.to_thread(
                    apiserverprofile.record, profile, plane.server, plane.ssl_context(), PROFILE_S
                )
            )
            if profile
            else None
        )
        watching = asyncio.create_task(tracker.wait(apps, what="apps Scheduled", started=started))
        publishing = asyncio.create_task(slices.wait(apps, what="apps published", started=started))
        await asyncio.gather(*(create(i) for i in range(apps)))
        created_s = time.monotonic() - started
        log(f"created in {created_s:.1f}s; waiting until every app is Scheduled")
        await watching
        all_scheduled_s = time.monotonic() - started
        cpu_after = cpu_by_process(plane, operator)
        operator_cpu_s = metric_value(operator.metrics(), "process_cpu_seconds_total") - cpu_at_start
        requests = apiserver_requests(plane)
        profiled = await profiling if profiling else {}
        if profiling:
            log(f"kube-apiserver's CPU profile of the first {PROFILE_S}s: {profile}")
        try:
            await publishing
            all_published_s = time.monotonic() - started
        except TimeoutError as e:  # the figures above still stand (the scale probe's Services)
            log(str(e))
            all_published_s = float("nan")
        # The Services and slices written after the clock stopped cost the operator CPU too.
        operator_cpu_published_s = (
            metric_value(operator.metrics(), "process_cpu_seconds_total") - cpu_at_start
        )
        # What the operator still writes after the clock stopped (Events, slices) is part of the
        # cost of an app too: count until the apiserver is quiet again.
        settled = await wait_quiet(plane)
        placements = await list_raw(
            custom.list_namespaced_custom_object, "shoal.dev", "v1alpha1", "bench", "wasmplacements"
        )
        return {
            "operator_idle_cpu_pct": 100 * idle_cpu_s / IDLE_PROBE_S,
            "create_s": created_s,
            "all_scheduled_s": all_scheduled_s,
            "all_published_s": all_published_s,
            "operator_cpu_s": operator_cpu_s,
            "operator_cpu_published_s": operator_cpu_published_s,
            "operator_peak_rss_mb": peak_rss_mb(operator),
            "placements": float(len(placements["items"])),
            **{f"scheduled_cpu_{n}_s": cpu_after[n] - cpu_before[n] for n in cpu_before},
            **per_app("shoal", diff_requests(requests, requests_at_start), apps),
            **per_app("shoal_settled", diff_requests(settled, requests_at_start), apps),
            **profiled,
        }


def deployment(i: int) -> dict[str, Any]:
    """A Deployment shaped like a SpinApp's: 2 replicas asking what a bench WasmApp asks."""
    labels = {"app": f"app-{i}"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"app-{i}", "labels": labels},
        "spec": {
            "replicas": DEPLOYMENT_REPLICAS,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.k8s.io/pause:3.10",
                            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                        }
                    ],
                },
            },
        },
    }


async def run_deployments(plane: ControlPlane, namespace: str, apps: int) -> dict[str, float]:
    """Create `apps` Deployments in a fresh namespace; time until every pod is bound and Running."""
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(plane.kubeconfig), client_configuration=cfg)
    async with client.ApiClient(cfg) as api:
        look_up_proxy_once(api, cfg.host)  # this script's own CPU is taken from the cluster's
        core: Any = client.CoreV1Api(api)
        apps_api: Any = client.AppsV1Api(api)
        await core.create_namespace({"metadata": {"name": namespace}})
        # Pods are refused until the namespace's default ServiceAccount exists; that is set-up.
        while True:
            try:
                await core.read_namespaced_service_account("default", namespace)
                break
            except client.ApiException as e:
                if e.status != 404:
                    raise
                await asyncio.sleep(0.2)
        requests_at_start = apiserver_requests(plane)
        gate = asyncio.Semaphore(32)

        async def create(i: int) -> None:
            async with gate:
                await send_raw(apps_api.create_namespaced_deployment, namespace, deployment(i))

        log(f"creating {apps} Deployments in {namespace}")
        want = apps * DEPLOYMENT_REPLICAS
        tracker = ReadyTracker(core.list_namespaced_pod, namespace, ready=_running)
        await tracker.start()
        started = time.monotonic()
        watching = asyncio.create_task(tracker.wait(want, what="pods Running", started=started))
        await asyncio.gather(*(create(i) for i in range(apps)))
        created_s = time.monotonic() - started
        log(f"created in {created_s:.1f}s; waiting until {want} pods are Running")
        await watching
        all_running_s = time.monotonic() - started
        requests = apiserver_requests(plane)
        return {
            "create_s": created_s,
            "all_running_s": all_running_s,
            **per_app("deployments", diff_requests(requests, requests_at_start), apps),
        }


class ReadyTracker:
    """List, then watch one collection as raw JSON lines, counting the objects `ready` says yes to.

    A watch rather than polling: a listing of thousands of objects every half second costs the
    apiserver more than some of what is being measured, and the clock stops on the very event."""

    def __init__(self, call: Any, *args: Any, ready: Callable[[dict[str, Any]], bool]) -> None:
        self.call, self.args, self.ready = call, args, ready
        self.names: set[str] = set()
        self.resource_version = ""

    async def start(self) -> None:
        listing = await list_raw(self.call, *self.args)
        self.names = {i["metadata"]["name"] for i in listing["items"] if self.ready(i)}
        self.resource_version = listing["metadata"]["resourceVersion"]

    async def wait(self, want: int, *, what: str, started: float) -> None:
        deadline = started + PHASE_TIMEOUT_S
        last_report = time.monotonic()
        while len(self.names) < want:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.names)}/{want} {what} after {PHASE_TIMEOUT_S:.0f}s")
            response = await self.call(
                *self.args,
                watch=True,
                resource_version=self.resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=60,
                _preload_content=False,
                _request_timeout=120,
            )
            try:
                async for line in response.content:
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":  # 410 Gone: start again from a fresh listing
                        await self.start()
                        break
                    self.resource_version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "BOOKMARK":
                        continue
                    name = obj["metadata"]["name"]
                    if event["type"] != "DELETED" and self.ready(obj):
                        self.names.add(name)
                    else:
                        self.names.discard(name)
                    if len(self.names) >= want:
                        return
                    if time.monotonic() - last_report > 30:
                        last_report = time.monotonic()
                        log(f"{len(self.names)}/{want} {what} after {last_report - started:.0f}s")
            finally:
                response.release()


def _has_endpoints(endpoint_slice: dict[str, Any]) -> bool:
    return bool(endpoint_slice.get("endpoints"))


def _running(pod: dict[str, Any]) -> bool:
    return (
        bool((pod.get("spec") or {}).get("nodeName")) and (pod.get("status") or {}).get("phase") == "Running"
    )


async def list_raw(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A listing as plain JSON: decoding thousands of objects into client models would make this
    script, not the cluster, the slow part."""
    response = await call(*args, _preload_content=False, **kwargs)
    try:
        parsed: dict[str, Any] = json.loads(await response.read())
    finally:
        response.release()
    return parsed


async def send_raw(call: Any, *args: Any, **kwargs: Any) -> None:
    response = await call(*args, _preload_content=False, **kwargs)
    try:
        if not 200 <= response.status <= 299:
            raise RuntimeError(f"{response.status}: {(await response.read())[:300]!r}")
    finally:
        response.release()


RequestKey = tuple[str, str, str]
"""(verb, group, resource[/subresource]) of apiserver_request_total."""
Requests = dict[RequestKey, float]


def apiserver_requests(plane: ControlPlane) -> Requests:
    """apiserver_request_total summed over codes, scopes and the like, per verb and resource."""
    ctx: ssl.SSLContext = plane.ssl_context()
    with urllib.request.urlopen(plane.server + "/metrics", context=ctx, timeout=30) as resp:
        text = resp.read().decode()
    totals: Requests = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, value = line[len("apiserver_request_total{") :].rsplit("} ", 1)
        labels = dict(part.split("=", 1) for part in labels_text.replace('"', "").split(",") if "=" in part)
        resource = labels.get("resource", "")
        if labels.get("subresource"):  # pods/binding, wasmapps/status: say which write it was
            resource += "/" + labels["subresource"]
        key = (labels.get("verb", ""), labels.get("group", ""), resource)
        totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def diff_requests(after: Requests, before: Requests) -> Requests:
    out: Requests = {}
    for key, value in after.items():
        delta = value - before.get(key, 0.0)
        if delta > 0:
            out[key] = delta
    return out


def per_app(prefix: str, delta: Requests, apps: int) -> dict[str, float]:
    """Requests (watches aside: one long request each) and writes per app; the writes by resource
    go to stderr, which is what says where an app's cost is."""
    requests = sum(v for (verb, _, _), v in delta.items() if verb not in ("WATCH", "WATCHLIST"))
    writes = {k: v for k, v in delta.items() if k[0] in WRITE_VERBS}
    by_resource = sorted(
        (
            (f"{verb} {group + '/' if group else ''}{resource}", round(v / apps, 2))
            for (verb, group, resource), v in writes.items()
        ),
        key=lambda kv: -kv[1],
    )
    log(f"{prefix} writes per app by resource: {by_resource}")
    # kwok's Nodes heartbeat (Leases in kube-node-lease, Node status) as long as a phase lasts,
    # whichever path runs: without them, what the path itself costs.
    own = sum(v for k, v in writes.items() if k[2].split("/")[0] not in HEARTBEATS)
    return {
        f"{prefix}_requests_per_app": requests / apps,
        f"{prefix}_writes_per_app": sum(writes.values()) / apps,
        f"{prefix}_writes_per_app_excl_node_heartbeats": own / apps,
    }


async def wait_quiet(plane: ControlPlane, *, idle_s: float = 3.0, limit_s: float = 60.0) -> Requests:
    """apiserver_request_total once no write has been made for `idle_s` (kwok's Node heartbeats
    aside), or after `limit_s`."""
    deadline = time.monotonic() + limit_s
    last = apiserver_requests(plane)

    def writes(counts: Requests) -> float:
        return sum(
            v for k, v in counts.items() if k[0] in WRITE_VERBS and k[2].split("/")[0] not in HEARTBEATS
        )

    while time.monotonic() < deadline:
        await asyncio.sleep(idle_s)
        now = apiserver_requests(plane)
        if writes(now) == writes(last):
            return now
        last = now
    return last


def cpu_by_process(plane: ControlPlane, operator: OperatorProcess) -> dict[str, float]:
    """CPU seconds (user + system) each process has used so far: the control plane's, the operator's
    and this script's (its app creation and watches). Where the machine's cores went in a window."""
    assert operator.proc is not None
    pids = {p.name: p.pid for p in plane.procs} | {"operator": operator.proc.pid, "bench": os.getpid()}
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for name, pid in pids.items():
        # Fields 14 and 15 (utime, stime), counted after the parenthesised command name.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used[name] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def peak_rss_mb(operator: OperatorProcess) -> float:
    """The operator's peak resident set (VmHWM), in MiB."""
    assert operator.proc is not None
    for line in Path(f"/proc/{operator.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise KeyError("VmHWM")


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


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[max(0, int(len(sorted_values) * q) - 1)]


def shoal_phase(
    work: Path,
    nodes: int,
    apps: int,
    *,
    deployments: bool,
    on_shoal: Callable[[dict[str, float], str], None] = lambda e2e, metrics: None,
    profile: Path | None = None,
) -> tuple[dict[str, float], dict[str, float], dict[str, float], str]:
    """One cluster: Shoal, then (operator stopped) the Deployment path with default and tuned limits.
    Returns (Shoal's figures, default Deployments', tuned Deployments', the operator's metrics);
    `on_shoal` gets Shoal's as soon as they are known, before the long Deployment phases."""
    plane = ControlPlane(workdir=work / "cluster", nodes=nodes, node_shape=NodeShape(cpu="8", memory="16Gi"))
    registry = Registry(workdir=work / "registry")
    operator = OperatorProcess(kubeconfig=plane.kubeconfig, workdir=work, identity="bench")
    default: dict[str, float] = {}
    tuned: dict[str, float] = {}
    try:
        log(f"starting a control plane with {nodes} kwok Nodes")
        plane.start()
        plane.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))
        registry.start()
        image = f"{registry.address}/bench/hello:v1"
        push_wasm(image, b"\0asm\x01\0\0\0")
        e2e = asyncio.run(run_end_to_end(plane, image, apps, operator, profile=profile))
        metrics = operator.metrics()
        operator.stop()
        registry.stop()
        on_shoal(e2e, metrics)
        if deployments:
            default = asyncio.run(run_deployments(plane, "deployments-default", apps))
            log(f"restarting kube-controller-manager and kube-scheduler with {' '.join(TUNED_FLAGS)}")
            plane.restart("kube-controller-manager", TUNED_FLAGS)
            plane.restart("kube-scheduler", TUNED_FLAGS)
            tuned = asyncio.run(run_deployments(plane, "deployments-tuned", apps))
    finally:
        operator.stop()
        registry.stop()
        plane.stop()
    return e2e, default, tuned, metrics


PER_APP_SUFFIXES = ("_requests_per_app", "_writes_per_app", "_writes_per_app_excl_node_heartbeats")


def per_app_figures(phase: dict[str, float], prefix: str, *, named: str | None = None) -> dict[str, object]:
    """The `per_app(prefix, ...)` figures of a phase, rounded, printed as `named` (default: prefix)."""
    return {f"{named or prefix}{s}": round(phase[f"{prefix}{s}"], 2) for s in PER_APP_SUFFIXES}


def shoal_figures(e2e: dict[str, float], metrics: str, timings_ms: list[float]) -> dict[str, object]:
    return {
        "placements": int(e2e["placements"]),
        "operator_idle_cpu_pct": round(e2e["operator_idle_cpu_pct"], 2),
        "create_s": round(e2e["create_s"], 2),
        "all_scheduled_s": round(e2e["all_scheduled_s"], 2),
        "all_published_s": round(e2e["all_published_s"], 2),
        **per_app_figures(e2e, "shoal"),
        **per_app_figures(e2e, "shoal_settled"),
        "operator_cpu_s": round(e2e["operator_cpu_s"], 2),
        "operator_cpu_published_s": round(e2e["operator_cpu_published_s"], 2),
        "operator_peak_rss_mb": round(e2e["operator_peak_rss_mb"], 1),
        **cpu_figures(e2e),
        **{k: v for k, v in e2e.items() if k.startswith("apiserver_profile_")},
        "decision_p50_ms": round(statistics.median(timings_ms), 3),
        "decision_p99_ms": round(percentile(timings_ms, 0.99), 3),
        "operator_decision_p50_le_ms": histogram_quantile(
            metrics, "shoal_operator_scheduler_decision_seconds", 0.5
        )
        * 1000,
        "operator_scheduling_latency_p50_le_s": histogram_quantile(
            metrics, "shoal_operator_scheduling_latency_seconds", 0.5
        ),
        # More decisions than apps means apps were decided again (a requeue that found them
        # unsettled); batches say how the apps were grouped.
        "operator_decisions": int(metric_value(metrics, "shoal_operator_scheduler_decision_seconds_count")),
        "operator_batches": int(metric_value(metrics, "shoal_operator_reconcile_duration_seconds_count")),
        "operator_api_errors": int(
            metric_value(metrics, 'shoal_operator_reconcile_errors_total{reason="api"}')
        ),
        "goal_all_scheduled_s": 10,
        "goal_decision_p50_ms": 2,
    }


def cpu_figures(e2e: dict[str, float]) -> dict[str, object]:
    """Where the cores went until every app was Scheduled: each process's CPU seconds, and all of
    them as a share of what the machine's cores offered in that time (near 100: CPU-bound)."""
    used = {k: v for k, v in e2e.items() if k.startswith("scheduled_cpu_")}
    offered = len(os.sched_getaffinity(0)) * e2e["all_scheduled_s"]  # what taskset leaves us
    return {
        **{k: round(v, 2) for k, v in sorted(used.items(), key=lambda kv: -kv[1])},
        "scheduled_cpu_busy_pct": round(100 * sum(used.values()) / offered, 1),
    }


def deployment_figures(
    e2e: dict[str, float], default: dict[str, float], tuned: dict[str, float], apps: int
) -> dict[str, object]:
    return {
        "deployment_pods": apps * DEPLOYMENT_REPLICAS,
        "deployments_create_s": round(default["create_s"], 2),
        "deployments_all_running_s": round(default["all_running_s"], 2),
        "deployments_tuned_create_s": round(tuned["create_s"], 2),
        "deployments_tuned_all_running_s": round(tuned["all_running_s"], 2),
        "deployments_tuned_flags": " ".join(TUNED_FLAGS) + " (kube-controller-manager, kube-scheduler)",
        "shoal_vs_deployments_ratio": round(e2e["all_scheduled_s"] / default["all_running_s"], 3),
        "shoal_vs_deployments_tuned_ratio": round(e2e["all_scheduled_s"] / tuned["all_running_s"], 3),
        "goal_shoal_vs_deployments_tuned_ratio": 0.5,
        **per_app_figures(default, "deployments"),
        **per_app_figures(tuned, "deployments", named="deployments_tuned"),
    }


def emit(figures: dict[str, object]) -> None:
    for name, value in figures.items():
        print(f"{name}={value}", flush=True)


def main() -> int:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--no-deployments", action="store_true", help="only Shoal's path (quicker)")
    parser.add_argument(
        "--scale-probe", action="store_true", help="also 10,000 apps over 1,000 Nodes (Shoal only)"
    )
    parser.add_argument(
        "--apiserver-profile",
        type=Path,
        metavar="FILE",
        help=f"save kube-apiserver's CPU profile of the Shoal phase's first {PROFILE_S}s to FILE "
        "and print where its CPU went (apiserver_profile_<kind>_pct)",
    )
    parser.add_argument("--scale-nodes", type=int, default=1000)
    parser.add_argument("--scale-apps", type=int, default=10_000)
    args = parser.parse_args()

    timings_ms = sorted(t * 1000 for t in core_decisions(args.nodes, args.apps))

    work = Path(tempfile.mkdtemp(prefix="shoal-bench-schedule-"))
    figures: dict[str, object] = {"nodes": args.nodes, "apps": args.apps}

    def on_shoal(e2e: dict[str, float], metrics: str) -> None:
        # Printed as soon as known: the Deployment phases take minutes, more on a busy machine.
        figures.update(shoal_figures(e2e, metrics, timings_ms))
        emit(figures)

    try:
        e2e, default, tuned, _ = shoal_phase(
            work / "main",
            args.nodes,
            args.apps,
            deployments=not args.no_deployments,
            on_shoal=on_shoal,
            profile=args.apiserver_profile.resolve() if args.apiserver_profile else None,
        )
        if default and tuned:
            more = deployment_figures(e2e, default, tuned, args.apps)
            emit(more)
            figures |= more
        if args.scale_probe:  # printed as soon as known: the probe is long and has no goal to fail
            try:
                scale = scale_probe(work / "scale", args.scale_nodes, args.scale_apps)
            except (TimeoutError, RuntimeError) as e:
                scale = {"scale_error": str(e).splitlines()[0]}
            emit(scale)
            figures |= scale
    finally:
        # etcd's data of 10,000 apps is most of a gigabyte: nothing of a run is kept but its figures
        # (and the profile, where it was asked to go).
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures), file=sys.stderr)
    return 0


def scale_probe(work: Path, nodes: int, apps: int) -> dict[str, object]:
    """Shoal alone at ten times the apps and five times the Nodes; no goal, figures to watch."""
    timings = [t * 1000 for t in core_decisions(nodes, apps)]
    tenth = max(1, len(timings) // 10)
    e2e, _, _, metrics = shoal_phase(work, nodes, apps, deployments=False)
    return {
        "scale_nodes": nodes,
        "scale_apps": apps,
        "scale_placements": int(e2e["placements"]),
        "scale_operator_idle_cpu_pct": round(e2e["operator_idle_cpu_pct"], 2),
        "scale_create_s": round(e2e["create_s"], 2),
        "scale_all_scheduled_s": round(e2e["all_scheduled_s"], 2),
        "scale_all_published_s": round(e2e["all_published_s"], 2),
        "scale_operator_cpu_s": round(e2e["operator_cpu_s"], 2),
        "scale_operator_peak_rss_mb": round(e2e["operator_peak_rss_mb"], 1),
        **{f"scale_{k}": v for k, v in cpu_figures(e2e).items()},
        "scale_shoal_writes_per_app": round(e2e["shoal_writes_per_app"], 2),
        "scale_shoal_writes_per_app_excl_node_heartbeats": round(
            e2e["shoal_writes_per_app_excl_node_heartbeats"], 2
        ),
        "scale_decision_p50_ms": round(statistics.median(timings), 3),
        "scale_decision_first_tenth_p50_ms": round(statistics.median(timings[:tenth]), 3),
        "scale_decision_last_tenth_p50_ms": round(statistics.median(timings[-tenth:]), 3),
        "scale_operator_decision_p50_le_ms": histogram_quantile(
            metrics, "shoal_operator_scheduler_decision_seconds", 0.5
        )
        * 1000,
    }


if __name__ == "__main__":
    sys.exit(main())
