"""The operator's view of the cluster, kept current by watch events.

Each `apply_*` method takes one watch event and returns whether it changed anything that can
move a scheduling decision, so the shell can requeue only what needs it. The cache holds plain
projections, not whole objects, so a 200-node cluster with thousands of pods stays small.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from shoal_api import LABEL_APP, WasmApp, WasmPlacement
from shoal_api.constants import AGENT_LEASE_PREFIX
from shoal_api.quantity import parse_cpu_millicores, parse_memory_bytes
from shoal_operator.podresources import counts_against_node, pod_requests
from shoal_operator.scheduling import Node, Resources, Taint
from shoal_operator.scheduling.model import NO_RESOURCES, TaintEffect

LABEL_DEPENDENCY = "shoal.dev/dependency"

PlacementKey = tuple[str, str]
"""(namespace, name) of a WasmPlacement."""


@dataclass(slots=True)
class AgentRecord:
    node: str
    renew_time: datetime | None = None
    lease_duration_seconds: float = 15.0
    capacity: Resources | None = None
    """From the agent's WasmNode; None until the agent registered."""
    endpoint: tuple[str, int] | None = None
    """(host, port) where the agent serves HTTP triggers, from its WasmNode."""
    health_port: int | None = None
    """Port of the agent's `/livez` stream (liveness.py), from its WasmNode; None for older agents."""


@dataclass(frozen=True, slots=True)
class DependencyPod:
    node: str | None
    ready: bool


@dataclass(slots=True)
class ClusterCache:
    nodes: dict[str, Node] = field(default_factory=dict)
    agents: dict[str, AgentRecord] = field(default_factory=dict)
    apps: dict[str, WasmApp] = field(default_factory=dict)
    placements: dict[PlacementKey, WasmPlacement] = field(default_factory=dict)
    placements_by_app: dict[str, set[PlacementKey]] = field(default_factory=lambda: defaultdict(set))
    dependency_pods: dict[tuple[str, str, str], dict[str, DependencyPod]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    """(namespace, app, dependency) -> pod uid -> where it runs and whether it is Ready."""
    topology_epoch: int = 0
    """Bumped whenever something that can change a decision changes: nodes, their pod requests,
    agents and their budgets. An app decided at the current epoch needs no new decision."""
    live_agents: frozenset[str] = frozenset()
    """Agents whose Lease was live at the last `refresh_agents`: where placements may stay."""
    _pods: dict[str, tuple[str, Resources]] = field(default_factory=dict)
    _pod_requests: dict[str, Resources] = field(default_factory=dict)

    # --- nodes & pods -------------------------------------------------------------------------

    def apply_node(self, event: str, body: Mapping[str, Any], *, now: datetime | None = None) -> bool:
        name = body["metadata"]["name"]
        if event == "DELETED":
            return self._bump(self.nodes.pop(name, None) is not None)
        node = node_from_body(body, pod_requests=self._pod_requests.get(name, NO_RESOURCES))
        old = self.nodes.get(name)
        if any(t.effect == "NoExecute" and t.time_added is None for t in node.taints):
            node = dataclasses.replace(
                node, taints=date_taints(node.taints, old.taints if old else (), now or datetime.now(UTC))
            )
        self.nodes[name] = node
        return self._bump(old != node)

    def apply_pod(self, event: str, body: Mapping[str, Any]) -> tuple[bool, str | None]:
        """Returns (node capacity changed, key of the app whose dependency pod this is)."""
        meta = body["metadata"]
        uid = meta["uid"]
        labels = meta.get("labels") or {}
        app_key = None
        if LABEL_APP in labels and LABEL_DEPENDENCY in labels:
            app_key = f"{meta['namespace']}/{labels[LABEL_APP]}"
            dep_key = (meta["namespace"], labels[LABEL_APP], labels[LABEL_DEPENDENCY])
            if event == "DELETED":
                _unindex(self.dependency_pods, dep_key, uid)
            else:
                self.dependency_pods[dep_key][uid] = DependencyPod(
                    node=(body.get("spec") or {}).get("nodeName"), ready=_pod_ready(body)
                )

        previous = self._pods.pop(uid, None)
        current = None
        if event != "DELETED" and counts_against_node(body):
            current = (body["spec"]["nodeName"], pod_requests(body["spec"]))
            self._pods[uid] = current
        if previous == current:
            return False, app_key
        for entry, sign in ((previous, -1), (current, 1)):
            if entry is None:
                continue
            node, req = entry
            total = self._pod_requests.get(node, NO_RESOURCES)
            self._pod_requests[node] = total + req if sign > 0 else total - req
            if node in self.nodes:
                self.nodes[node] = dataclasses.replace(
                    self.nodes[node], pod_requests=self._pod_requests[node]
                )
        return self._bump(True), app_key

    # --- agents --------------------------------------------------------------------------------

    def apply_lease(self, event: str, body: Mapping[str, Any]) -> bool:
        """An agent heartbeat; returns True when an agent appeared or disappeared."""
        node = lease_agent(body)
        if node is None:
            return False
        spec = body.get("spec") or {}
        if event == "DELETED":
            record = self.agents.get(node)
            if record is None:
                return False
            record.renew_time = None
            return self._bump(True)
        record = self.agents.setdefault(node, AgentRecord(node=node))
        appeared = record.renew_time is None
        record.renew_time = _parse_time(spec.get("renewTime") or spec.get("acquireTime"))
        record.lease_duration_seconds = float(spec.get("leaseDurationSeconds") or 15)
        return self._bump(appeared)

    def sync_leases(self, items: list[dict[str, Any]]) -> bool:
        """A complete list of the agent namespace's Leases: apply each, and take an agent whose Lease is
        no longer listed as gone. Returns True when an agent appeared or disappeared."""
        changed = False
        for body in items:
            changed |= self.apply_lease("ADDED", body)
        listed = {lease_agent(body) for body in items}
        for node, record in self.agents.items():
            if record.renew_time is not None and node not in listed:
                record.renew_time = None
                changed = True
        return self._bump(changed)

    def apply_wasmnode(self, event: str, body: Mapping[str, Any]) -> bool:
        node = body["metadata"]["name"]
        record = self.agents.setdefault(node, AgentRecord(node=node))
        old = (record.capacity, record.endpoint)
        if event == "DELETED":
            record.capacity, record.endpoint, record.health_port = None, None, None
        else:
            spec = body.get("spec") or {}
            cap = spec.get("capacity") or {}
            record.capacity = Resources(int(cap.get("cpuMillis", 0)), int(cap.get("memoryBytes", 0)))
            endpoint = spec.get("endpoint")
            record.endpoint = (str(endpoint["host"]), int(endpoint["port"])) if endpoint else None
            health = endpoint.get("healthPort") if endpoint else None
            record.health_port = int(health) if health else None
        return self._bump(old != (record.capacity, record.endpoint))

    def _bump(self, changed: bool) -> bool:
        if changed:
            self.topology_epoch += 1
        return changed

    # --- shoal objects -------------------------------------------------------------------------

    def apply_app(self, event: str, body: Mapping[str, Any]) -> tuple[str, bool]:
        """Returns (app key, spec changed): status-only updates (ours) need no reconcile."""
        key = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
        if event == "DELETED":
            self.apps.pop(key, None)
            return key, True
        old = self.apps.get(key)
        version = body["metadata"].get("resourceVersion")
        if old is not None and version is not None and old.metadata.resource_version == version:
            return key, False  # the echo of our own status write: already in the cache
        app = WasmApp.from_k8s(body)
        self.apps[key] = app
        changed = old is None or old.metadata.generation != app.metadata.generation
        return key, changed

    def apply_placement(self, event: str, body: Mapping[str, Any]) -> tuple[str, bool]:
        """Returns (the owning app's key, whether anything changed). The watch echoes each placement
        the operator just created with the resourceVersion it already remembered: that event says
        nothing new, and at a thousand apps re-reconciling on it was a third of the operator's work."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if event == "DELETED":
            old = self.placements.pop(key, None)
            app = old.spec.app if old else (meta.get("labels") or {}).get(LABEL_APP, "")
            _unindex(self.placements_by_app, f"{meta['namespace']}/{app}", key)
            return f"{meta['namespace']}/{app}", True
        known = self.placements.get(key)
        version = meta.get("resourceVersion")
        if known is not None and version is not None and known.metadata.resource_version == version:
            return f"{meta['namespace']}/{known.spec.app}", False
        placement = WasmPlacement.from_k8s(body)
        self.remember_placement(placement)
        return f"{meta['namespace']}/{placement.spec.app}", True

    def remember_placement(self, placement: WasmPlacement) -> None:
        """Also called right after we create one, so the next decision counts it before the watch
        event arrives."""
        ns, name = placement.metadata.namespace or "", placement.metadata.name or ""
        self.placements[(ns, name)] = placement
        self.placements_by_app[f"{ns}/{placement.spec.app}"].add((ns, name))

    def forget_placement(self, namespace: str, name: str) -> None:
        old = self.placements.pop((namespace, name), None)
        if old is not None:
            _unindex(self.placements_by_app, f"{namespace}/{old.spec.app}", (namespace, name))

    def app_placements(self, app_key: str) -> list[WasmPlacement]:
        return [
            self.placements[k]
            for k in sorted(self.placements_by_app.get(app_key, ()))
            if k in self.placements
        ]

    def link_targets(self) -> dict[str, tuple[str, int]]:
        """node -> (host, health port) of every agent that offers a `/livez` stream."""
        return {
            a.node: (a.endpoint[0], a.health_port)
            for a in self.agents.values()
            if a.endpoint is not None and a.health_port is not None
        }

    def refresh_agents(self, now: datetime) -> frozenset[str]:
        """Recompute `live_agents` at `now`; returns the nodes whose agent came or went. A Lease that
        runs out says so in no watch event: this is where that change moves the topology epoch."""
        fresh = self.fresh_agents(now)
        changed = fresh ^ self.live_agents
        self.live_agents = fresh
        self._bump(bool(changed))
        return changed

    def fresh_agents(self, now: datetime) -> frozenset[str]:
        return frozenset(
            a.node
            for a in self.agents.values()
            if a.renew_time is not None and (now - a.renew_time).total_seconds() <= a.lease_duration_seconds
        )


def lease_agent(body: Mapping[str, Any]) -> str | None:
    """The node whose agent holds this heartbeat Lease; None for any other Lease. The holder identity
    names the node (a node name too long for a Lease name is hashed into it)."""
    name: str = body["metadata"]["name"]
    if not name.startswith(AGENT_LEASE_PREFIX):
        return None
    holder: str | None = (body.get("spec") or {}).get("holderIdentity")
    return holder or name.removeprefix(AGENT_LEASE_PREFIX)


def node_from_body(body: Mapping[str, Any], *, pod_requests: Resources) -> Node:
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    allocatable = status.get("allocatable") or status.get("capacity") or {}
    taints = tuple(
        Taint(
            key=t["key"],
            value=t.get("value", "") or "",
            effect=_effect(t.get("effect")),
            time_added=_parse_time(t.get("timeAdded")),
        )
        for t in spec.get("taints") or ()
    )
    return Node(
        name=meta["name"],
        labels=MappingProxyType(dict(meta.get("labels") or {})),
        taints=taints,
        ready=any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ()
        ),
        unschedulable=bool(spec.get("unschedulable")),
        allocatable=Resources(
            cpu_millis=parse_cpu_millicores(str(allocatable.get("cpu", "0"))),
            memory_bytes=parse_memory_bytes(str(allocatable.get("memory", "0"))),
        ),
        pod_requests=pod_requests,
    )


def date_taints(taints: tuple[Taint, ...], before: tuple[Taint, ...], now: datetime) -> tuple[Taint, ...]:
    """Give each undated NoExecute taint the time it was first seen (kept from `before`, else
    `now`), the way Kubernetes' taint eviction starts counting tolerationSeconds on sight."""
    seen = {(t.key, t.value, t.effect): t.time_added for t in before}
    return tuple(
        dataclasses.replace(t, time_added=seen.get((t.key, t.value, t.effect)) or now)
        if t.effect == "NoExecute" and t.time_added is None
        else t
        for t in taints
    )


def _effect(value: Any) -> TaintEffect:
    return value if value in ("NoSchedule", "PreferNoSchedule", "NoExecute") else "NoSchedule"


def _pod_ready(body: Mapping[str, Any]) -> bool:
    conditions = (body.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _unindex(index: dict[Any, Any], key: Any, member: Any) -> None:
    """Take `member` out of `index[key]` (a set, or a dict by its keys) and drop the entry once it is
    empty: an index keyed by app keeps no entry for every app that ever existed (the leak probe found
    one set per deleted app)."""
    members = index.get(key)
    if members is None:
        return
    if isinstance(members, dict):
        members.pop(member, None)
    else:
        members.discard(member)
    if not members:
        del index[key]
