"""WasmNode: an agent's self-description, so the scheduler knows each node's Wasm budget.

Cluster-scoped and named after the node. Liveness is not in here: it is the agent's Lease
(see naming.agent_lease_name), which is cheap to renew and does not churn this object.
"""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, model_validator

from shoal_api.cel import list_map
from shoal_api.constants import WASMNODE_KIND, WASMNODE_PLURAL
from shoal_api.meta import DNS_SUBDOMAIN_MAX, Condition, KubeModel, KubeObject
from shoal_api.quantity import format_cpu, format_memory
from shoal_api.wasmapp import PlacementState


class NodeResources(KubeModel):
    """CPU in millicores and memory in bytes."""

    cpu_millis: int = Field(default=0, ge=0)
    """CPU in millicores (1000 = one core), the unit of the placements' spec.requests.cpuMillis."""
    memory_bytes: int = Field(default=0, ge=0)
    """Memory in bytes, the unit of the placements' spec.requests.memoryBytes."""
    cpu: str = Field(default="", max_length=32)
    """cpuMillis as a Kubernetes quantity ("2", "500m"), for reading: derived, whatever is written here."""
    memory: str = Field(default="", max_length=32)
    """memoryBytes as a Kubernetes quantity ("1Gi"), for reading: derived, whatever is written here."""

    @model_validator(mode="after")
    def _quantities(self) -> Self:
        # kubectl's printer columns cannot format numbers: `kubectl get wasmnodes` showed 1073741824.
        self.cpu, self.memory = format_cpu(self.cpu_millis), format_memory(self.memory_bytes)
        return self


class AgentEndpoint(KubeModel):
    """Where the agent serves HTTP triggers."""

    host: str = Field(min_length=1, max_length=253)
    """Pod IP or DNS name."""
    port: int = Field(ge=1, le=65535)
    """Port of the agent's trigger server; the operator points HTTP apps' EndpointSlices at it."""
    health_port: int | None = Field(default=None, ge=1, le=65535)
    """Port of the agent's health server. The operator holds its `/livez` stream open: a killed agent
    closes it at once (its Lease would take seconds to expire), so its addresses leave the
    EndpointSlices within a second, and come back once the restarted agent serves its placements."""


class RuntimeVersions(KubeModel):
    """Versions reported by the agent, for compatibility checks and debugging."""

    wasmtime: str = Field(default="", max_length=64)
    """Version of the wasmtime engine the agent runs modules with."""
    agent: str = Field(default="", max_length=64)
    """Version of the shoal package the agent runs ("dev" when not installed as a package)."""


class LeaseRef(KubeModel):
    """The coordination.k8s.io Lease the agent renews as its heartbeat."""

    name: str = Field(min_length=1, max_length=253)
    """Lease name: shoal-agent- followed by the node name (shortened with a hash if too long)."""
    namespace: str = Field(min_length=1, max_length=63)
    """Namespace the agent runs in, where its Lease lives."""


class WasmNodeSpec(KubeModel):
    """What the agent offers; written by the agent at start-up."""

    capacity: NodeResources
    """Budget for Wasm placements: the agent pod's own resources."""
    endpoint: AgentEndpoint | None = None
    runtime: RuntimeVersions = Field(default_factory=RuntimeVersions, json_schema_extra={"default": {}})
    lease: LeaseRef | None = None


class NodePlacement(KubeModel):
    """A placement the agent currently runs."""

    namespace: str = Field(max_length=63)
    """Namespace of the WasmPlacement (and of its app)."""
    name: str = Field(max_length=DNS_SUBDOMAIN_MAX)
    """Name of the WasmPlacement."""
    app: str = Field(default="", max_length=DNS_SUBDOMAIN_MAX)
    """WasmApp the placement belongs to (its spec.app)."""
    state: PlacementState | None = None
    """The placement's state as the agent sees it now (what it writes to the placement's status)."""


class WasmNodeStatus(KubeModel):
    """What the agent is running; updated as placements come and go."""

    allocated: NodeResources = Field(default_factory=NodeResources, json_schema_extra={"default": {}})
    """Sum of the requests of the placements below."""
    placements: list[NodePlacement] = Field(
        default_factory=list, max_length=1000, json_schema_extra=list_map("namespace", "name")
    )
    """Every placement the agent holds for this node, whatever its state."""
    conditions: list[Condition] = Field(
        default_factory=list, max_length=16, json_schema_extra=list_map("type")
    )
    """Not set by the agent today (its liveness is the Lease in spec.lease); reserved for node conditions."""


class WasmNode(KubeObject):
    """A node's agent (cluster-scoped, name = node name)."""

    KIND: ClassVar[str] = WASMNODE_KIND
    PLURAL: ClassVar[str] = WASMNODE_PLURAL
    NAMESPACED: ClassVar[bool] = False

    spec: WasmNodeSpec
    status: WasmNodeStatus | None = None
