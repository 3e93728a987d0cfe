"""Rendered dependency objects on a real apiserver: accepted as they are, scheduled by kube-scheduler,
Running on kwok nodes, and garbage-collected with their WasmApp except for what `retain` keeps.

The local cluster has no storage provisioner, so claims never bind on their own and the pods stay
Pending (the first test shows it). The tests render with a per-test storageClassName and create
matching hostPath PersistentVolumes pre-bound to the StatefulSets' claims, and the claims themselves,
Bound, before the StatefulSets: the StatefulSet controller adopts a claim of its template's name, as
it does after a restore. Left to the StatefulSet, the claim and the pod appear together and the pod
waits for kube-scheduler to notice the binding; once in CI that took longer than a minute. kwok runs
nothing, so no disk is ever touched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from harness.kubestate import describe_namespace
from harness.waiting import eventually
from localcluster.controlplane import ControlPlane
from shoal_api.constants import GROUP, VERSION, WASMAPP_PLURAL
from shoal_api.wasmapp import WasmApp
from shoal_operator.dependencies import (
    DATA_VOLUME,
    DependencyObjects,
    dependency_pod_selector,
    generate_password,
    generated_secret_name,
    render_dependency,
)

pytestmark = pytest.mark.integration


async def create_app(api: client.ApiClient, namespace: str, *deps: dict[str, Any]) -> WasmApp:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WasmApp",
        "metadata": {"name": "tally"},
        "spec": {
            "module": {"image": "127.0.0.1:5000/demo/tally:v1"},
            "trigger": {"http": {"path": "/tally"}},
            "dependencies": list(deps),
        },
    }
    created = await client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, WASMAPP_PLURAL, body
    )
    return WasmApp.from_k8s(created)


async def create_objects(api: client.ApiClient, namespace: str, objects: DependencyObjects) -> None:
    # The typed client takes plain dicts too (they are sent as they are); Any says so to mypy.
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    secret: Any = objects.secret
    if secret is not None:
        await core.create_namespaced_secret(namespace, secret)
    service: Any = objects.service
    await core.create_namespaced_service(namespace, service)
    statefulset: Any = objects.statefulset
    await apps.create_namespaced_stateful_set(namespace, statefulset)


def render(app: WasmApp, dep_name: str, *, storage_class: str | None) -> DependencyObjects:
    dep = app.spec.dependency(dep_name)
    assert dep is not None
    password = generate_password() if generated_secret_name(app, dep) else None
    return render_dependency(app, dep, password=password, storage_class=storage_class)


@pytest.fixture
async def volumes(api: client.ApiClient, namespace: str) -> AsyncIterator[Callable[..., Awaitable[None]]]:
    """Creates hostPath PersistentVolumes pre-bound to a StatefulSet's claim, and that claim from the
    StatefulSet's template, and waits until the two are Bound; deletes the volumes after (the claims
    go with their namespace, or with the StatefulSet)."""
    core = client.CoreV1Api(api)
    created: list[str] = []

    async def create(objects: DependencyObjects, *, storage_class: str) -> None:
        sts = objects.statefulset
        claim = f"{DATA_VOLUME}-{sts['metadata']['name']}-0"
        size = sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
        name = f"{namespace}-{claim}"[:253]
        volume: Any = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": storage_class,
                "claimRef": {"namespace": namespace, "name": claim},
                "hostPath": {"path": f"/tmp/shoal-test-pv/{name}", "type": "DirectoryOrCreate"},
            },
        }
        await core.create_persistent_volume(volume)
        created.append(name)
        template = sts["spec"]["volumeClaimTemplates"][0]
        claim_body: Any = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "labels": template["metadata"].get("labels") or {}},
            "spec": {**template["spec"], "volumeName": name},
        }
        await core.create_namespaced_persistent_volume_claim(namespace, claim_body)

        async def bound() -> bool:
            got = await core.read_namespaced_persistent_volume_claim(claim, namespace)
            return bool(got.status.phase == "Bound")

        await eventually(bound, within=60, what=f"claim {claim} to bind to volume {name}")

    try:
        yield create
    finally:
        for name in created:
            try:
                await core.delete_persistent_volume(name)
            except ApiException as e:
                if e.status != 404:
                    raise


async def pod_of(api: client.ApiClient, namespace: str, app: str, dep: str) -> Any:
    pods = await client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=dependency_pod_selector(app, dep)
    )
    return pods.items[0] if pods.items else None


async def test_unbound_claims_keep_dependency_pods_pending(
    api: client.ApiClient, namespace: str, shoal_crds: Path
) -> None:
    app = await create_app(api, namespace, {"name": "cache", "redis": {}})
    await create_objects(api, namespace, render(app, "cache", storage_class=None))

    async def unschedulable() -> Any:
        pod = await pod_of(api, namespace, "tally", "cache")
        conditions = (pod.status.conditions or []) if pod else []
        return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in conditions) and pod

    pod = await eventually(unschedulable, within=60, what="kube-scheduler to give up on the unbound claim")
    assert pod.status.phase == "Pending"
    assert not pod.spec.node_name


async def test_dependencies_run_and_are_collected_with_the_app_except_retained_data(
    api: client.ApiClient,
    namespace: str,
    shoal_crds: Path,
    control_plane: ControlPlane,
    volumes: Callable[..., Awaitable[None]],
) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    storage_class = f"shoal-test-{namespace}"
    app = await create_app(
        api,
        namespace,
        {"name": "cache", "redis": {}},
        {"name": "db", "mysql": {"database": "tally", "storage": "2Gi"}, "retain": True},
    )
    rendered = {name: render(app, name, storage_class=storage_class) for name in ("cache", "db")}
    for objects in rendered.values():
        await volumes(objects, storage_class=storage_class)
        await create_objects(api, namespace, objects)

    node_names = {n.metadata.name for n in (await core.list_node()).items}
    for dep in rendered:

        async def running(dep: str = dep) -> Any:
            pod = await pod_of(api, namespace, "tally", dep)
            return pod if pod and pod.status.phase == "Running" and pod.spec.node_name else None

        pod = await eventually(
            running,
            within=60,
            what=f"the {dep} pod to be scheduled and Running",
            explain=lambda: describe_namespace(api, namespace, plane=control_plane),
        )
        assert pod.spec.node_name in node_names
        assert pod.metadata.owner_references[0].kind == "StatefulSet"

    claims = {
        c.metadata.name: c for c in (await core.list_namespaced_persistent_volume_claim(namespace)).items
    }
    assert {c.status.phase for c in claims.values()} == {"Bound"}
    assert claims["data-tally-db-0"].spec.resources.requests["storage"] == "2Gi"

    await client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, WASMAPP_PLURAL, "tally"
    )

    async def collected() -> bool:
        sets = await apps.list_namespaced_stateful_set(namespace)
        services = await core.list_namespaced_service(namespace)
        pods = await core.list_namespaced_pod(namespace)
        claims = await core.list_namespaced_persistent_volume_claim(namespace)
        return (
            not sets.items
            and not services.items
            and not pods.items
            and [c.metadata.name for c in claims.items] == ["data-tally-db-0"]
        )

    # The garbage collector may first have to discover the WasmApp kind (it resyncs every 30 s).
    await eventually(collected, within=120, what="the StatefulSets, Services, pods and redis claim to go")

    secret_name = generated_secret_name(app, app.spec.dependencies[1])
    assert secret_name is not None
    secret = await core.read_namespaced_secret(secret_name, namespace)
    assert not secret.metadata.owner_references
    assert set(secret.data) == {"password", "user", "database"}
    claim = await core.read_namespaced_persistent_volume_claim("data-tally-db-0", namespace)
    assert claim.metadata.deletion_timestamp is None
