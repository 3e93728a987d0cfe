"""Proof that the local control plane is real: CRDs, schema validation, controllers, scheduler, GC."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from harness.waiting import eventually

pytestmark = pytest.mark.integration

GROUP = "smoke.shoal.dev"
CRD_NAME = f"widgets.{GROUP}"


def widget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                        "colour": {"type": "string", "enum": ["red", "blue"]},
                                    },
                                    "x-kubernetes-validations": [
                                        {
                                            "rule": "self.size < 5 || self.colour == 'red'",
                                            "message": "big widgets must be red",
                                        },
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture
async def widget_crd_installed(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    try:
        await ext.create_custom_resource_definition(widget_crd())  # type: ignore[arg-type]
    except ApiException as e:
        if e.status != 409:
            raise

    async def established() -> bool:
        crd = await ext.read_custom_resource_definition(CRD_NAME)
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    await eventually(established, within=60, what="the CRD to be Established")

    async def served() -> bool:
        # Established comes a moment before the storage behind it: the apiserver answers
        # 429 "storage is (re)initializing" until then.
        try:
            await client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, "v1", "widgets")
        except ApiException as e:
            if e.status == 429:
                return False
            raise
        return True

    await eventually(served, within=60, what="the CRD's storage to serve lists")


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


async def test_nodes_are_kwok_and_ready(api: client.ApiClient) -> None:
    nodes = (await client.CoreV1Api(api).list_node()).items
    assert len(nodes) == 3
    for node in nodes:
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True", node.metadata.name
        assert node.metadata.labels["topology.kubernetes.io/zone"].startswith("zone-")
        assert node.metadata.labels["kubernetes.io/hostname"] == node.metadata.name
    version = await client.VersionApi(api).get_code()
    assert version.git_version.startswith("v1.") and version.git_version != "v0.0.0"


@pytest.mark.usefixtures("widget_crd_installed")
async def test_custom_resources_create_list_watch(api: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(api)
    listed = await custom.list_namespaced_custom_object(GROUP, "v1", namespace, "widgets")
    start_rv = listed["metadata"]["resourceVersion"]

    for name, size in (("small", 2), ("big", 7)):
        spec: dict[str, Any] = {"size": size, "colour": "red"}
        await custom.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", widget(name, **spec))

    listed = await custom.list_namespaced_custom_object(GROUP, "v1", namespace, "widgets")
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["big", "small"]

    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    async with w.stream(
        custom.list_namespaced_custom_object,
        GROUP,
        "v1",
        namespace,
        "widgets",
        resource_version=start_rv,
        timeout_seconds=10,
    ) as stream:
        async for event in stream:
            seen.append((event["type"], event["object"]["metadata"]["name"]))
            if len(seen) == 2:
                w.stop()
    assert seen == [("ADDED", "small"), ("ADDED", "big")]


@pytest.mark.usefixtures("widget_crd_installed")
async def test_schema_violation_is_rejected_with_its_message(api: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as too_big:
        await custom.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", widget("w1", size=11))
    assert too_big.value.status == 422
    body = str(too_big.value.body)
    assert "spec.size" in body and "less than or equal to 10" in body

    with pytest.raises(ApiException) as cel:
        await custom.create_namespaced_custom_object(
            GROUP, "v1", namespace, "widgets", widget("w2", size=7, colour="blue")
        )
    assert cel.value.status == 422
    assert "big widgets must be red" in str(cel.value.body)


async def test_deployment_pods_are_scheduled_to_kwok_nodes_and_garbage_collected(
    api: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    labels = {"app": "web"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=3,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name="web",
                            image="registry.invalid/web:1",
                            resources=client.V1ResourceRequirements(
                                requests={"cpu": "100m", "memory": "64Mi"}
                            ),
                        )
                    ]
                ),
            ),
        ),
    )
    await apps.create_namespaced_deployment(namespace, deployment)

    async def replicaset() -> Any:
        sets = (await apps.list_namespaced_replica_set(namespace, label_selector="app=web")).items
        return sets[0] if sets else None

    rs = await eventually(replicaset, within=60, what="the Deployment's ReplicaSet")
    assert rs.metadata.owner_references[0].kind == "Deployment"

    async def running_pods() -> list[Any]:
        pods = (await core.list_namespaced_pod(namespace, label_selector="app=web")).items
        running = [p for p in pods if p.status.phase == "Running" and p.spec.node_name]
        return running if len(running) == 3 else []

    pods = await eventually(running_pods, within=60, what="3 Running pods bound by kube-scheduler")
    node_names = {n.metadata.name for n in (await core.list_node()).items}
    for pod in pods:
        assert pod.spec.node_name in node_names
        assert pod.metadata.owner_references[0].kind == "ReplicaSet"

    await apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")

    async def pods_gone() -> bool:
        return not (await core.list_namespaced_pod(namespace, label_selector="app=web")).items

    await eventually(pods_gone, within=60, what="the garbage collector to delete the pods")
