"""A plain-text picture of a namespace for failure messages: what `kubectl describe` would have told."""

from __future__ import annotations

import asyncio

from kubernetes_asyncio import client

from localcluster.controlplane import ControlPlane


async def describe_namespace(
    api: client.ApiClient, namespace: str, *, plane: ControlPlane | None = None
) -> str:
    """Pods (phase, node, conditions), claims (phase, volume), the namespace's events and, given
    the control plane, what its kube-scheduler said about the namespace's pods."""
    core = client.CoreV1Api(api)
    lines = [f"namespace {namespace}:"]
    for pod in (await core.list_namespaced_pod(namespace)).items:
        conditions = ", ".join(
            f"{c.type}={c.status}" + (f" ({c.reason}: {c.message})" if c.reason else "")
            for c in pod.status.conditions or []
        )
        lines.append(f"  pod {pod.metadata.name}: {pod.status.phase} on {pod.spec.node_name}; {conditions}")
    for claim in (await core.list_namespaced_persistent_volume_claim(namespace)).items:
        lines.append(f"  claim {claim.metadata.name}: {claim.status.phase} volume={claim.spec.volume_name}")
    for volume in (await core.list_persistent_volume()).items:
        ref = volume.spec.claim_ref
        bound = f"{ref.namespace}/{ref.name}" if ref else "-"
        lines.append(f"  volume {volume.metadata.name}: {volume.status.phase} claim={bound}")
    events = sorted(
        (await core.list_namespaced_event(namespace)).items,
        key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp,
    )
    for event in events:
        obj = event.involved_object
        lines.append(f"  event {obj.kind}/{obj.name} {event.type} {event.reason}: {event.message}")
    if plane is not None:
        said = await asyncio.to_thread(plane.scheduler_said, f"{namespace}/")
        lines += ["  kube-scheduler:", *(f"    {ln}" for ln in said[-20:])]
    return "\n".join(lines)
