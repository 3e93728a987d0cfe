"""The operator against a real control plane with kwok Nodes: placements, heartbeats, cordons,
`kubectl scale`, node capacity taken by pods, deletion, and two replicas that must not fight.

Agents are simulated (hack/harness/fakeagents.py): they write WasmNodes, heartbeat Leases and
placement statuses exactly like the real agent, which the operator cannot tell apart.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from harness.fakeagents import LEASE_SECONDS, FakeAgents
from harness.kubehttp import KubeHttp
from harness.kubestate import describe_namespace
from harness.operatorproc import OperatorProcess
from harness.waiting import eventually
from localcluster.controlplane import ControlPlane
from localcluster.registry import Registry
from localcluster.tools import tool
from localcluster.whiskers import static_volume
from shoal_api.constants import GROUP, VERSION
from shoal_oci import push_wasm
from shoal_operator.dependencies import DATA_VOLUME

pytestmark = pytest.mark.integration

EMPTY_MODULE = b"\0asm\x01\0\0\0"


@pytest.fixture(scope="session")
def fake_agents(control_plane: ControlPlane, shoal_crds: Path) -> Iterator[FakeAgents]:
    agents = FakeAgents(KubeHttp(control_plane), control_plane.node_names())
    agents.start()
    try:
        yield agents
    finally:
        agents.stop()


@pytest.fixture(scope="session")
def operator(
    control_plane: ControlPlane, fake_agents: FakeAgents, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("operator")
    with OperatorProcess(kubeconfig=control_plane.kubeconfig, workdir=workdir, identity="op-a") as proc:
        yield proc


@pytest.fixture(scope="session")
def module_image(oci_registry: Registry) -> str:
    ref = f"{oci_registry.address}/tests/empty:v1"
    push_wasm(ref, EMPTY_MODULE)
    return ref


def kubectl(kubeconfig: Path, *args: str, input: str | None = None) -> str:
    done = subprocess.run(
        [tool("kubectl"), f"--kubeconfig={kubeconfig}", *args], input=input, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def apply_app(kubeconfig: Path, namespace: str, name: str, image: str, **spec: Any) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WasmApp",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"module": {"image": image}, "trigger": {"http": {"path": f"/{name}"}}} | spec,
    }
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(body))


class Shoal:
    """Reads of shoal objects in one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace

    async def placements(self, app: str | None = None) -> list[dict[str, Any]]:
        selector = f"shoal.dev/app={app}" if app else ""
        listing = await self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "wasmplacements", label_selector=selector
        )
        return [p for p in listing["items"] if not p["metadata"].get("deletionTimestamp")]

    async def nodes_of(self, app: str) -> list[str]:
        return sorted(p["spec"]["nodeName"] for p in await self.placements(app))

    async def app(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = await self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "wasmapps", name
        )
        return body

    async def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        conditions = ((await self.app(name)).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), None)


@pytest.fixture
def shoal(api: client.ApiClient, namespace: str, operator: OperatorProcess) -> Shoal:
    return Shoal(api, namespace)


async def test_three_replicas_land_on_three_nodes_and_report_ready(
    shoal: Shoal, kubeconfig: Path, namespace: str, module_image: str
) -> None:
    apply_app(kubeconfig, namespace, "web", module_image, replicas=3)

    async def three() -> list[str]:
        nodes = await shoal.nodes_of("web")
        return nodes if len(nodes) == 3 else []

    nodes = await eventually(three, what="3 placements")
    assert nodes == ["node-1", "node-2", "node-3"]

    async def ready() -> bool:
        cond = await shoal.condition("web", "Ready")
        return bool(cond and cond["status"] == "True")

    await eventually(ready, what="Ready=True")
    app = await shoal.app("web")
    status = app["status"]
    assert status["readyReplicas"] == 3 and status["readySummary"] == "3/3"
    assert status["resolvedDigest"].startswith("sha256:")
    assert status["selector"] == "shoal.dev/app=web"
    placement = (await shoal.placements("web"))[0]
    assert placement["spec"]["module"]["digest"] == status["resolvedDigest"]
    assert placement["metadata"]["ownerReferences"][0]["name"] == "web"
    printed = kubectl(kubeconfig, "-n", namespace, "get", "wasm", "web")
    assert "3/3" in printed and "http /web" in printed

    async def published() -> list[Any]:
        slices = await client.DiscoveryV1Api(shoal.api).list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=web"
        )
        eps = [e for s in slices.items for e in s.endpoints or [] if e.conditions.ready]
        return slices.items if len(eps) == 3 else []

    slices = await eventually(published, what="EndpointSlices with the 3 agents serving web")
    assert {e.node_name for s in slices for e in s.endpoints} == {"node-1", "node-2", "node-3"}
    assert {s.ports[0].port for s in slices} == {8080}
    service = await client.CoreV1Api(shoal.api).read_namespaced_service("web", namespace)
    assert service.spec.selector is None and service.metadata.owner_references[0].name == "web"

    placements_before = {
        p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in await shoal.placements()
    }
    await asyncio.sleep(3)  # a few ticks and resyncs of a settled app must move nothing
    placements_after = {
        p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in await shoal.placements()
    }
    assert placements_before == placements_after


async def test_lost_heartbeat_moves_the_placement_within_the_lease(
    shoal: Shoal, kubeconfig: Path, namespace: str, module_image: str, fake_agents: FakeAgents
) -> None:
    apply_app(kubeconfig, namespace, "mover", module_image, replicas=2)

    async def two() -> list[str]:
        nodes = await shoal.nodes_of("mover")
        return nodes if len(nodes) == 2 else []

    before = await eventually(two, what="2 placements")
    victim = before[0]
    fake_agents.alive.discard(victim)
    try:
        started = time.monotonic()

        async def moved() -> list[str]:
            nodes = await shoal.nodes_of("mover")
            return nodes if len(nodes) == 2 and victim not in nodes else []

        after = await eventually(moved, within=LEASE_SECONDS + 15, what=f"the placement to leave {victim}")
        elapsed = time.monotonic() - started
        assert victim not in after
        assert elapsed < LEASE_SECONDS + 10, elapsed
    finally:
        fake_agents.alive.add(victim)


async def test_cordoned_node_is_left(
    shoal: Shoal, kubeconfig: Path, namespace: str, module_image: str
) -> None:
    apply_app(kubeconfig, namespace, "cordoned", module_image, replicas=2)

    async def two() -> list[str]:
        nodes = await shoal.nodes_of("cordoned")
        return nodes if len(nodes) == 2 else []

    victim = (await eventually(two, what="2 placements"))[0]
    kubectl(kubeconfig, "cordon", victim)
    try:

        async def left() -> list[str]:
            nodes = await shoal.nodes_of("cordoned")
            return nodes if len(nodes) == 2 and victim not in nodes else []

        await eventually(left, what=f"placements to leave cordoned {victim}")
    finally:
        kubectl(kubeconfig, "uncordon", victim)


async def test_no_execute_taint_is_tolerated_for_its_toleration_seconds(
    shoal: Shoal, kubeconfig: Path, namespace: str, module_image: str
) -> None:
    """Like Kubernetes' taint eviction: without a toleration a NoExecute taint moves the placement
    at once; with tolerationSeconds it stays that long, then moves."""
    taint_key = "shoal.test/evict"
    seconds = 10
    apply_app(kubeconfig, namespace, "intolerant", module_image, replicas=2)
    apply_app(
        kubeconfig,
        namespace,
        "tolerant",
        module_image,
        replicas=2,
        placement={
            "tolerations": [
                {"key": taint_key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
            ]
        },
    )

    async def placed(app: str) -> Callable[[], Awaitable[list[str]]]:
        async def check() -> list[str]:
            nodes = await shoal.nodes_of(app)
            return nodes if len(nodes) == 2 else []

        return check

    both = set(await eventually(await placed("intolerant"), what="intolerant's 2 placements"))
    both &= set(await eventually(await placed("tolerant"), what="tolerant's 2 placements"))
    victim = sorted(both)[0]  # two 2-of-3 choices always share a node
    tainted = time.monotonic()  # before: kubectl's timeAdded (whole seconds) is not earlier than this - 1 s
    kubectl(kubeconfig, "taint", "node", victim, f"{taint_key}=:NoExecute")
    try:

        async def left(app: str) -> Callable[[], Awaitable[list[str]]]:
            async def check() -> list[str]:
                nodes = await shoal.nodes_of(app)
                return nodes if len(nodes) == 2 and victim not in nodes else []

            return check

        await eventually(await left("intolerant"), what=f"intolerant to leave {victim} at once")
        early = time.monotonic() - tainted
        assert early < seconds - 2, f"the untolerated taint took {early:.1f}s to act"
        assert victim in await shoal.nodes_of("tolerant"), "tolerationSeconds must keep it there for now"
        await eventually(
            await left("tolerant"), within=seconds + 20, what=f"tolerant to leave {victim} after {seconds}s"
        )
        late = time.monotonic() - tainted
        assert late >= seconds - 2, f"left after {late:.1f}s, before its {seconds}s ran out"
    finally:
        kubectl(kubeconfig, "taint", "node", victim, f"{taint_key}:NoExecute-")


async def test_kubectl_scale_changes_placements(
    shoal: Shoal, kubeconfig: Path, namespace: str, module_image: str
) -> None:
    apply_app(kubeconfig, namespace, "scaled", module_image, replicas=1)

    async def count(n: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return len(await shoal.nodes_of("scaled")) == n

        return check

    await eventually(await count(1), what="1 placement")
    kubectl(kubeconfig, "-n", namespace, "scale", "wasmapp/scaled", "--replicas=3")
    await eventually(await count(3), what="3 placements after kubectl scale")
    kubectl(kubeconfig, "-n", namespace, "scale", "wasmapp/scaled", "--replicas=0")
    await eventually(await count(0), what="no placement after scaling to 0")


async def test_node_full_of_pods_gets_no_placement(
    shoal: Shoal, api: client.ApiClient, kubeconfig: Path, namespace: str, module_image: str
) -> None:
    core = client.CoreV1Api(api)
    # node-3 offers 16Gi; a pod bound to it directly takes 15.99Gi of it.
    hog = client.V1Pod(
        metadata=client.V1ObjectMeta(name="hog"),
        spec=client.V1PodSpec(
            node_name="node-3",
            containers=[
                client.V1Container(
                    name="hog",
                    image="registry.invalid/hog:1",
                    resources=client.V1ResourceRequirements(requests={"memory": "16374Mi"}),
                )
            ],
        ),
    )
    await core.create_namespaced_pod(namespace, hog)
    apply_app(
        kubeconfig,
        namespace,
        "big",
        module_image,
        replicas=3,
        resources={"requests": {"memory": "64Mi", "cpu": "10m"}},
    )

    async def unschedulable() -> dict[str, Any] | None:
        cond = await shoal.condition("big", "Scheduled")
        return cond if cond and cond["status"] == "False" else None

    cond = await eventually(unschedulable, what="Scheduled=False")
    assert "node-3" not in await shoal.nodes_of("big")
    assert len(await shoal.nodes_of("big")) == 2
    assert "memory" in cond["message"].lower(), cond["message"]
    events = await core.list_namespaced_event(namespace, field_selector="involvedObject.name=big")
    assert any(e.reason == "FailedScheduling" and "memory" in e.message.lower() for e in events.items)

    await core.delete_namespaced_pod("hog", namespace, grace_period_seconds=0)

    async def three() -> bool:
        return len(await shoal.nodes_of("big")) == 3

    await eventually(three, what="the third replica once the pod is gone")


async def test_deleting_the_app_removes_its_placements(
    shoal: Shoal, kubeconfig: Path, namespace: str, module_image: str
) -> None:
    apply_app(kubeconfig, namespace, "doomed", module_image, replicas=2)

    async def two() -> bool:
        return len(await shoal.nodes_of("doomed")) == 2

    await eventually(two, what="2 placements")
    kubectl(kubeconfig, "-n", namespace, "delete", "wasmapp", "doomed", "--wait=true")

    async def none_left() -> bool:
        return not await shoal.placements("doomed")

    await eventually(none_left, what="the garbage collector to remove the placements")


async def test_unresolvable_module_is_reported_and_others_keep_working(
    shoal: Shoal, kubeconfig: Path, namespace: str, module_image: str, oci_registry: Registry
) -> None:
    apply_app(kubeconfig, namespace, "missing", f"{oci_registry.address}/tests/nope:v9", replicas=1)
    apply_app(kubeconfig, namespace, "fine", module_image, replicas=1)

    async def degraded() -> dict[str, Any] | None:
        cond = await shoal.condition("missing", "Degraded")
        return cond if cond and cond["status"] == "True" else None

    cond = await eventually(degraded, what="Degraded=True on the app whose module does not exist")
    assert cond["reason"] == "ModuleUnavailable" and "nope:v9" in cond["message"]

    async def fine_placed() -> bool:
        return len(await shoal.nodes_of("fine")) == 1

    await eventually(fine_placed, what="the other app to be placed")
    assert await shoal.placements("missing") == []


async def test_missing_secret_becomes_a_condition(
    shoal: Shoal, kubeconfig: Path, namespace: str, module_image: str
) -> None:
    apply_app(
        kubeconfig,
        namespace,
        "secretive",
        module_image,
        env=[{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "token"}}}],
    )

    async def reported() -> dict[str, Any] | None:
        cond = await shoal.condition("secretive", "Scheduled")
        return cond if cond and cond["reason"] == "SecretNotFound" else None

    cond = await eventually(reported, what="Scheduled=False/SecretNotFound")
    assert "absent" in cond["message"]


@pytest.fixture
def static_volumes(kubeconfig: Path, namespace: str) -> Iterator[list[str]]:
    """PersistentVolumes with no class, pre-bound (claimRef) to the claims the `whiskers` app's
    StatefulSets will make, the way an administrator provisions statically. Pre-binding keeps
    claims left in other tests' terminating namespaces from taking them. hostPath, and kwok runs
    no pod, so nothing touches the disk."""
    names = []
    for dep in ("cache", "db"):
        claim = f"{DATA_VOLUME}-whiskers-{dep}-0"
        name = f"{namespace}-{claim}"[:253]
        pv = static_volume(name, namespace, claim, f"/tmp/{name}")
        kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(pv))
        names.append(name)
    yield names
    kubectl(kubeconfig, "delete", "pv", *names, "--ignore-not-found", "--wait=false")


async def test_dependencies_run_as_pods_near_which_the_app_is_placed(
    shoal: Shoal,
    api: client.ApiClient,
    kubeconfig: Path,
    namespace: str,
    module_image: str,
    static_volumes: list[str],
    control_plane: ControlPlane,
) -> None:
    apply_app(
        kubeconfig,
        namespace,
        "whiskers",
        module_image,
        replicas=1,
        dependencies=[
            {"name": "cache", "redis": {}},
            {"name": "db", "mysql": {"database": "whiskers", "storage": "1Gi"}, "retain": True},
        ],
    )
    core, apps_api = client.CoreV1Api(api), client.AppsV1Api(api)

    async def dependency_pods() -> dict[str, str]:
        pods = (await core.list_namespaced_pod(namespace, label_selector="shoal.dev/app=whiskers")).items
        running = {
            p.metadata.labels["shoal.dev/dependency"]: p.spec.node_name
            for p in pods
            if p.status.phase == "Running"
        }
        return running if set(running) == {"cache", "db"} else {}

    pods = await eventually(
        dependency_pods,
        within=120,  # the PV controller, kube-scheduler and kwok in turn; see the e2e POD_WAIT_S
        what="redis and mariadb pods Running on kwok nodes",
        explain=lambda: describe_namespace(api, namespace, plane=control_plane),
    )
    sets = {s.metadata.name for s in (await apps_api.list_namespaced_stateful_set(namespace)).items}
    assert sets == {"whiskers-cache", "whiskers-db"}

    async def deps_ready() -> bool:
        cond = await shoal.condition("whiskers", "DependenciesReady")
        return bool(cond and cond["status"] == "True")

    await eventually(
        deps_ready,
        within=60,
        what="DependenciesReady=True",
        explain=lambda: describe_namespace(api, namespace, plane=control_plane),
    )

    async def placed() -> list[str]:
        return await shoal.nodes_of("whiskers")

    nodes = await eventually(placed, what="the app's placement")
    assert nodes[0] in set(pods.values()), (nodes, pods)
    placement = (await shoal.placements("whiskers"))[0]
    endpoints = {d["name"]: d for d in placement["spec"]["dependencies"]}
    assert endpoints["cache"]["kind"] == "redis" and endpoints["cache"]["service"]["port"] == 6379
    assert endpoints["db"]["database"] == "whiskers" and "passwordSecret" in endpoints["db"]

    claims = {c.metadata.name for c in (await core.list_namespaced_persistent_volume_claim(namespace)).items}
    db_claim = next(c for c in claims if "db" in c)
    kubectl(kubeconfig, "-n", namespace, "delete", "wasmapp", "whiskers", "--wait=true")

    async def statefulsets_gone() -> bool:
        return not (await apps_api.list_namespaced_stateful_set(namespace)).items

    await eventually(statefulsets_gone, within=120, what="the garbage collector to remove the StatefulSets")
    remaining = {
        c.metadata.name for c in (await core.list_namespaced_persistent_volume_claim(namespace)).items
    }
    assert db_claim in remaining, "retain: true must keep the MySQL data"
    secrets = {s.metadata.name for s in (await core.list_namespaced_secret(namespace)).items}
    assert any("db" in name for name in secrets), "the retained database keeps its password Secret"


async def test_operator_metrics_are_exported(operator: OperatorProcess, shoal: Shoal) -> None:
    text = operator.metrics()
    for name in (
        "shoal_operator_reconcile_duration_seconds_count",
        "shoal_operator_scheduling_latency_seconds_count",
        "shoal_operator_scheduler_decision_seconds_count",
        'shoal_operator_placements{node="node-1"}',
        "shoal_operator_leader 1.0",
    ):
        assert name in text, name


async def test_two_operators_do_not_fight(
    shoal: Shoal,
    kubeconfig: Path,
    namespace: str,
    module_image: str,
    operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    standby = OperatorProcess(kubeconfig=kubeconfig, workdir=tmp_path, identity="op-b")
    standby.start()
    try:
        assert operator.is_leader() and not standby.is_leader()
        apply_app(kubeconfig, namespace, "pair", module_image, replicas=3)

        async def three() -> bool:
            return len(await shoal.nodes_of("pair")) == 3

        await eventually(three, what="3 placements")
        await asyncio.sleep(2)
        names = [p["metadata"]["name"] for p in await shoal.placements("pair")]
        assert len(names) == len(set(names)) == 3

        operator.stop()  # the leader goes away; the standby must take over

        async def standby_leads() -> bool:
            return standby.is_leader()

        await eventually(standby_leads, within=30, what="the standby to take the lease")
        kubectl(kubeconfig, "-n", namespace, "scale", "wasmapp/pair", "--replicas=2")

        async def two() -> bool:
            return len(await shoal.nodes_of("pair")) == 2

        await eventually(two, what="the new leader to act on kubectl scale")
    finally:
        standby.stop()
        operator.start()  # later tests in this session expect op-a
