"""Plain, frozen inputs and outputs of the scheduler core.

The core sees no pydantic models and no Kubernetes objects: the operator translates its caches
into these records, which keeps the core fast, trivially testable and free of I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal

ZONE_LABEL = "topology.kubernetes.io/zone"

TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


@dataclass(frozen=True, slots=True)
class Resources:
    """CPU millicores and memory bytes; the unit of all capacity arithmetic."""

    cpu_millis: int = 0
    memory_bytes: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu_millis + other.cpu_millis, self.memory_bytes + other.memory_bytes)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu_millis - other.cpu_millis, self.memory_bytes - other.memory_bytes)


NO_RESOURCES = Resources()


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: TaintEffect = "NoSchedule"
    time_added: datetime | None = None
    """For NoExecute: when the taint appeared (its timeAdded, else when the operator first saw
    it); tolerationSeconds count from here."""


@dataclass(frozen=True, slots=True)
class Toleration:
    """core/v1 semantics: empty key + Exists tolerates everything; empty effect matches all."""

    key: str = ""
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str = ""
    effect: str = ""
    seconds: int | None = None
    """tolerationSeconds: how long a NoExecute taint is tolerated; None is for ever."""


@dataclass(frozen=True, slots=True)
class Node:
    """A Kubernetes Node as the scheduler needs it."""

    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    taints: tuple[Taint, ...] = ()
    ready: bool = True
    unschedulable: bool = False
    allocatable: Resources = NO_RESOURCES
    pod_requests: Resources = NO_RESOURCES
    """Sum of the requests of pods bound to the node (the caller decides whether the agent pod,
    whose budget the Wasm placements share, is counted here)."""


@dataclass(frozen=True, slots=True)
class Agent:
    """A node agent: its Wasm budget (WasmNode.spec.capacity) and its Lease heartbeat."""

    node: str
    capacity: Resources
    last_heartbeat: datetime | None
    lease_duration_seconds: float = 40.0


@dataclass(frozen=True, slots=True)
class ExistingPlacement:
    """A WasmPlacement that exists now, of any app."""

    app: str
    """App key, "namespace/name"."""
    node: str
    requests: Resources
    ready: bool = False


@dataclass(frozen=True, slots=True)
class Spread:
    max_skew: int = 1
    topology_key: str = ZONE_LABEL


@dataclass(frozen=True, slots=True)
class AppRequest:
    """One app to schedule: how many replicas, what each needs, where it may and likes to go."""

    key: str
    replicas: int
    requests: Resources
    node_selector: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    tolerations: tuple[Toleration, ...] = ()
    spread: Spread | None = None
    prefer_near_dependencies: bool = False
    dependency_nodes: frozenset[str] = frozenset()
    """Nodes where the app's dependency pods run."""


@dataclass(frozen=True, slots=True)
class ClusterState:
    """Everything the scheduler looks at, captured at one moment."""

    nodes: tuple[Node, ...]
    agents: tuple[Agent, ...]
    placements: tuple[ExistingPlacement, ...] = ()


@dataclass(frozen=True, slots=True)
class AppDecision:
    """Where an app's replicas should be, and why not more of them if some could not be placed."""

    app: str
    nodes: tuple[str, ...]
    """All desired nodes (kept + added), sorted."""
    kept: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    """Nodes whose placement must go: filtered out, surplus, or the node is gone."""
    unplaced: int
    """Replicas that found no node."""
    available_nodes: int
    """Nodes that passed every filter."""
    total_nodes: int
    reasons: Mapping[str, str]
    """Filtered node -> the first reason it was filtered."""
    message: str | None
    """kube-scheduler style summary when some replicas could not be placed, else None."""

    @property
    def fully_scheduled(self) -> bool:
        return self.unplaced == 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)
