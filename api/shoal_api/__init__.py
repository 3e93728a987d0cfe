"""Shoal's API: the pydantic models of the shoal.dev CRDs, shared by the operator and the agents.

The models are the single source of truth: the CRD YAML under crds/ is generated from them
(hack/gen_crds.py), and both programs parse and build objects with them.
"""

from shoal_api.constants import (
    API_VERSION,
    GROUP,
    LABEL_APP,
    LABEL_NODE,
    VERSION,
    WASMAPP_KIND,
    WASMAPP_PLURAL,
    WASMNODE_KIND,
    WASMNODE_PLURAL,
    WASMPLACEMENT_KIND,
    WASMPLACEMENT_PLURAL,
)
from shoal_api.meta import Condition, KubeObject, ObjectMeta, OwnerReference, set_condition
from shoal_api.naming import agent_lease_name, placement_labels, placement_name
from shoal_api.quantity import (
    parse_cpu_millicores,
    parse_duration_ms,
    parse_duration_seconds,
    parse_memory_bytes,
    parse_quantity,
)
from shoal_api.wasmapp import WasmApp, WasmAppSpec, WasmAppStatus
from shoal_api.wasmnode import WasmNode, WasmNodeSpec, WasmNodeStatus
from shoal_api.wasmplacement import WasmPlacement, WasmPlacementSpec, WasmPlacementStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "LABEL_APP",
    "LABEL_NODE",
    "VERSION",
    "WASMAPP_KIND",
    "WASMAPP_PLURAL",
    "WASMNODE_KIND",
    "WASMNODE_PLURAL",
    "WASMPLACEMENT_KIND",
    "WASMPLACEMENT_PLURAL",
    "Condition",
    "KubeObject",
    "ObjectMeta",
    "OwnerReference",
    "WasmApp",
    "WasmAppSpec",
    "WasmAppStatus",
    "WasmNode",
    "WasmNodeSpec",
    "WasmNodeStatus",
    "WasmPlacement",
    "WasmPlacementSpec",
    "WasmPlacementStatus",
    "agent_lease_name",
    "parse_cpu_millicores",
    "parse_duration_ms",
    "parse_duration_seconds",
    "parse_memory_bytes",
    "parse_quantity",
    "placement_labels",
    "placement_name",
    "set_condition",
]
