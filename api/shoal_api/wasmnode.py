"""WasmNode: an agent's self-description, so the scheduler knows each node's Wasm budget.

Cluster-scoped and named after the node. Liveness is not in here: it is the agent's Lease
(see naming.agent_lease_name), which is cheap to renew and does not churn this object.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shoal_api.cel import list_map
from shoal_api.constants import WASMNODE_KIND, WASMNODE_PLURAL
from shoal_api.meta import DNS_SUBDOMAIN_MAX, Condition, KubeModel, KubeObject
from shoal_api.wasmapp import PlacementState


class NodeResources(KubeModel):
    """CPU in millicores and memory in bytes."""

    cpu_millis: int = Field(default=0, ge=0)
    memory_bytes: int = Field(default=0, ge=0)


class AgentEndpoint(KubeModel):
    """Where the agent serves HTTP triggers."""

    host: str = Field(min_length=1, max_length=253)
    """Pod IP or DNS name."""
    port: int = Field(ge=1, le=65535)


class RuntimeVersions(KubeModel):
    """Versions reported by the agent, for compatibility checks and debugging."""

    wasmtime: str = Field(default="", max_length=64)
    agent: str = Field(default="", max_length=64)


class LeaseRef(KubeModel):
    """The coordination.k8s.io Lease the agent renews as its heartbeat."""

    name: str = Field(min_length=1, max_length=253)
    namespace: str = Field(min_length=1, max_length=63)


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
    name: str = Field(max_length=DNS_SUBDOMAIN_MAX)
    app: str = Field(default="", max_length=DNS_SUBDOMAIN_MAX)
    state: PlacementState | None = None


class WasmNodeStatus(KubeModel):
    """What the agent is running; updated as placements come and go."""

    allocated: NodeResources = Field(default_factory=NodeResources, json_schema_extra={"default": {}})
    """Sum of the requests of the placements below."""
    placements: list[NodePlacement] = Field(
        default_factory=list, max_length=1000, json_schema_extra=list_map("namespace", "name")
    )
    conditions: list[Condition] = Field(
        default_factory=list, max_length=16, json_schema_extra=list_map("type")
    )


class WasmNode(KubeObject):
    """A node's agent (cluster-scoped, name = node name)."""

    KIND: ClassVar[str] = WASMNODE_KIND
    PLURAL: ClassVar[str] = WASMNODE_PLURAL
    NAMESPACED: ClassVar[bool] = False

    spec: WasmNodeSpec
    status: WasmNodeStatus | None = None
