"""Pure translations between the API models, the cache and the scheduler core's plain records.

Nothing here does I/O: the reconciler gathers inputs, these functions decide, the reconciler writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from shoal_api import WasmApp, WasmPlacement, WasmPlacementSpec, set_condition
from shoal_api.constants import (
    CONDITION_DEGRADED,
    CONDITION_DEPENDENCIES_READY,
    CONDITION_READY,
    CONDITION_SCHEDULED,
)
from shoal_api.meta import Condition
from shoal_api.naming import app_selector
from shoal_api.schedule import latest_runs
from shoal_api.wasmapp import PlacementSummary, WasmAppStatus
from shoal_api.wasmplacement import DependencyEndpoint, Limits, Requests, ResolvedModule
from shoal_operator.cache import ClusterCache, DependencyPod
from shoal_operator.scheduling import (
    ActualPlacement,
    Agent,
    AppDecision,
    AppRequest,
    ClusterState,
    ExistingPlacement,
    Resources,
    Spread,
    Toleration,
)


def app_requests(app: WasmApp) -> Resources:
    req = app.spec.resources.requests
    return Resources(cpu_millis=req.cpu_millis, memory_bytes=req.memory_bytes)


def app_request(app: WasmApp, *, dependency_nodes: frozenset[str]) -> AppRequest:
    placement = app.spec.placement
    spread = placement.spread
    return AppRequest(
        key=app.key,
        replicas=app.spec.replicas,
        requests=app_requests(app),
        node_selector=MappingProxyType(dict(placement.node_selector)),
        tolerations=tuple(
            Toleration(
                key=t.key or "",
                operator=t.operator,
                value=t.value or "",
                effect=t.effect or "",
                seconds=t.toleration_seconds,
            )
            for t in placement.tolerations
        ),
        spread=Spread(max_skew=spread.max_skew, topology_key=spread.topology_key) if spread else None,
        prefer_near_dependencies=placement.prefer_near_dependencies,
        dependency_nodes=dependency_nodes,
    )


def dependency_nodes(cache: ClusterCache, app: WasmApp) -> frozenset[str]:
    ns, name = app.metadata.namespace or "", app.metadata.name or ""
    return frozenset(
        pod.node
        for dep in app.spec.dependencies
        for pod in cache.dependency_pods.get((ns, name, dep.name), {}).values()
        if pod.node
    )


def unbound_dependencies(cache: ClusterCache, app: WasmApp) -> list[str]:
    """Provisioned dependencies none of whose pods is bound to a node yet (serviceRef ones are the
    user's: we cannot see their pods)."""
    ns, name = app.metadata.namespace or "", app.metadata.name or ""
    return [
        dep.name
        for dep in app.spec.dependencies
        if dep.service_ref is None
        and not any(pod.node for pod in cache.dependency_pods.get((ns, name, dep.name), {}).values())
    ]


def cluster_state(cache: ClusterCache, *, now: datetime) -> ClusterState:
    """Agents without a WasmNode yet have no budget, so they count as absent."""
    agents = tuple(
        Agent(
            node=a.node,
            capacity=a.capacity,
            last_heartbeat=a.renew_time,
            lease_duration_seconds=a.lease_duration_seconds,
        )
        for a in cache.agents.values()
        if a.capacity is not None
    )
    placements = tuple(
        ExistingPlacement(
            app=f"{ns}/{p.spec.app}",
            node=p.spec.node_name,
            requests=Resources(p.spec.requests.cpu_millis, p.spec.requests.memory_bytes),
            ready=bool(p.status and p.status.ready),
        )
        for (ns, _), p in cache.placements.items()
        if p.metadata.deletion_timestamp is None
    )
    return ClusterState(nodes=tuple(cache.nodes.values()), agents=agents, placements=placements)


def pinned_digest(app: WasmApp, placements: Iterable[WasmPlacement]) -> str | None:
    """The digest this app's live placements run for its current image, if they agree on one: what a
    new generation (a scale, an env change) keeps running when the registry cannot be asked."""
    digests = {
        p.spec.module.digest
        for p in placements
        if p.metadata.deletion_timestamp is None and p.spec.module.image == app.spec.module.image
    }
    return digests.pop() if len(digests) == 1 else None


def placement_spec(
    app: WasmApp, *, node: str, digest: str, dependencies: Sequence[DependencyEndpoint]
) -> WasmPlacementSpec:
    """Everything the agent needs, resolved, so it never reads the WasmApp."""
    spec = app.spec
    return WasmPlacementSpec(
        app=app.metadata.name or "",
        node_name=node,
        module=ResolvedModule(
            image=spec.module.image, digest=digest, image_pull_secrets=list(spec.module.image_pull_secrets)
        ),
        limits=Limits(
            memory_bytes=spec.resources.memory_bytes,
            timeout_ms=spec.resources.timeout_ms,
            max_concurrency=spec.resources.max_concurrency,
        ),
        requests=Requests(
            cpu_millis=spec.resources.requests.cpu_millis,
            memory_bytes=spec.resources.requests.memory_bytes,
        ),
        trigger=spec.trigger,
        env=list(spec.env),
        variables=list(spec.variables),
        dependencies=list(dependencies),
        capabilities=spec.capabilities,
        files=spec.files,
        app_generation=app.metadata.generation or 0,
    ).with_template_hash()


def actual_placements(
    placements: Iterable[WasmPlacement], *, fresh_agents: frozenset[str]
) -> list[ActualPlacement]:
    """A placement on a node whose agent stopped heartbeating is not ready, whatever it last said."""
    return [
        ActualPlacement(
            name=p.metadata.name or "",
            node=p.spec.node_name,
            template_hash=p.spec.template_hash,
            ready=is_ready(p) and p.spec.node_name in fresh_agents,
            terminating=p.metadata.deletion_timestamp is not None,
        )
        for p in placements
    ]


def is_ready(placement: WasmPlacement) -> bool:
    status = placement.status
    return bool(status and status.ready and status.observed_template_hash == placement.spec.template_hash)


def dependencies_condition(
    app: WasmApp, pods: Mapping[str, Mapping[str, DependencyPod]]
) -> tuple[bool, str, str]:
    """(ready, reason, message) for DependenciesReady; `pods` maps dependency name -> its pods."""
    waiting = []
    for dep in app.spec.dependencies:
        if dep.service_ref is not None:
            continue  # the user runs it; we cannot see its pods
        ready = sum(p.ready for p in pods.get(dep.name, {}).values())
        if ready == 0:
            waiting.append(f"{dep.kind} {dep.name!r} (0/1 pods ready)")
    if not app.spec.dependencies:
        return True, "NoDependencies", "the app declares no dependencies"
    if waiting:
        return False, "WaitingForDependencies", "waiting for " + ", ".join(waiting)
    return True, "DependenciesReady", f"{len(app.spec.dependencies)} dependencies ready"


def schedule_status(old: WasmAppStatus, live: Sequence[WasmPlacement]) -> dict[str, Any]:
    """A scheduled app's run history: its placements' runs merged into what the status already
    keeps, so the history outlives a placement that moved or went."""
    reports = [p.status for p in live if p.status is not None]
    runs = latest_runs(old.runs or [], *(s.runs or [] for s in reports))
    scheduled = [t for t in (old.last_schedule_time, *(s.last_schedule_time for s in reports)) if t]
    finished = (r.completion_time for r in runs if r.succeeded)
    succeeded = [t for t in (old.last_successful_time, *finished) if t]
    return {
        "runs": runs,
        "last_schedule_time": max(scheduled, default=None),
        "last_successful_time": max(succeeded, default=None),
        "active_runs": sum(s.active_runs or 0 for s in reports),
    }


def app_status(
    app: WasmApp,
    *,
    placements: Sequence[WasmPlacement],
    fresh_agents: frozenset[str],
    serving_agents: frozenset[str] | None = None,
    decision: AppDecision | None,
    digest: str | None,
    dependencies: tuple[bool, str, str],
    problem: tuple[str, str] | None,
    now: datetime,
) -> WasmAppStatus:
    """The WasmApp status from its placements, the last decision and what went wrong (if anything).

    `problem` is (reason, message) of something that stops progress entirely: an invalid reference,
    a module tag that does not resolve. It makes Scheduled False and Degraded True.
    `serving_agents` (default: `fresh_agents`) are the agents whose placements count as ready.
    """
    old = app.status or WasmAppStatus()
    live = [p for p in placements if p.metadata.deletion_timestamp is None]
    serving = fresh_agents if serving_agents is None else serving_agents
    ready = [p for p in live if is_ready(p) and p.spec.node_name in serving]
    desired = app.spec.replicas
    gen = app.metadata.generation
    conditions: list[Condition] = list(old.conditions)

    def cond(type_: str, ok: bool, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(
            conditions,
            type=type_,
            status="True" if ok else "False",
            reason=reason,
            message=message,
            now=now,
            observed_generation=gen,
        )

    if problem is not None:
        cond(CONDITION_SCHEDULED, False, problem[0], problem[1])
    elif decision is not None:
        if decision.fully_scheduled:
            cond(CONDITION_SCHEDULED, True, "Scheduled", f"{len(decision.nodes)}/{desired} replicas placed")
        else:
            cond(CONDITION_SCHEDULED, False, "Unschedulable", decision.message or "")
    cond(CONDITION_DEPENDENCIES_READY, *dependencies)

    failed = [p for p in live if p.status and p.status.state == "Failed"]
    lost = [p for p in live if p.spec.node_name not in fresh_agents]
    if problem is not None:
        cond(CONDITION_DEGRADED, True, problem[0], problem[1])
    elif failed:
        first = failed[0]
        why = first.status.message if first.status else ""
        message = f"{len(failed)} placement(s) failed; {first.spec.node_name}: {why}"
        cond(CONDITION_DEGRADED, True, "PlacementFailed", message)
    elif lost:
        cond(
            CONDITION_DEGRADED,
            True,
            "AgentLost",
            f"agent heartbeat expired on {', '.join(sorted(p.spec.node_name for p in lost))}",
        )
    else:
        cond(CONDITION_DEGRADED, False, "AsExpected", "")

    all_ready = len(ready) >= desired and dependencies[0]
    if all_ready:
        cond(CONDITION_READY, True, "Ready", f"{len(ready)}/{desired} replicas ready")
    else:
        cond(CONDITION_READY, False, "NotReady", f"{len(ready)}/{desired} replicas ready")

    name = app.metadata.name or ""
    schedule = schedule_status(old, live) if app.spec.trigger.schedule is not None else {}
    return WasmAppStatus(
        observed_generation=gen,
        replicas=len(live),
        ready_replicas=len(ready),
        ready_summary=f"{len(ready)}/{desired}",
        trigger_summary=app.spec.trigger.summary(),
        selector=app_selector(name),
        resolved_digest=digest,
        **schedule,
        placements=[
            PlacementSummary(
                node=p.spec.node_name,
                state=p.status.state if p.status else "Pending",
                ready=p in ready,
            )
            for p in sorted(live, key=lambda p: p.spec.node_name)
        ],
        conditions=conditions,
    )


def placement_failure(status: WasmAppStatus | None) -> str | None:
    """The Degraded condition's message while a placement has failed (PlacementFailed), else None."""
    degraded = status.condition(CONDITION_DEGRADED) if status is not None else None
    if degraded is None or degraded.status != "True" or degraded.reason != "PlacementFailed":
        return None
    return degraded.message
