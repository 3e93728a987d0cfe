"""API coordinates and well-known names shared by the operator, the agents and the chart.

Kept in one place so that a rename is one edit, not a grep across two programs.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "shoal.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

WASMAPP_KIND: Final = "WasmApp"
WASMAPP_PLURAL: Final = "wasmapps"
WASMAPP_SINGULAR: Final = "wasmapp"
WASMAPP_SHORT_NAMES: Final = ("wasm",)

WASMPLACEMENT_KIND: Final = "WasmPlacement"
WASMPLACEMENT_PLURAL: Final = "wasmplacements"
WASMPLACEMENT_SINGULAR: Final = "wasmplacement"
WASMPLACEMENT_SHORT_NAMES: Final = ("wp",)

WASMNODE_KIND: Final = "WasmNode"
WASMNODE_PLURAL: Final = "wasmnodes"
WASMNODE_SINGULAR: Final = "wasmnode"
WASMNODE_SHORT_NAMES: Final = ("wn",)

CATEGORIES: Final = ("shoal",)

# Labels on WasmPlacements: agents watch their own node's placements with a label selector,
# the operator lists an app's placements the same way.
LABEL_NODE: Final = f"{GROUP}/node"
LABEL_APP: Final = f"{GROUP}/app"
# Label on every object the operator creates for an app (dependency StatefulSets, Services, ...).
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "shoal"

# Annotation carrying the placement template hash on objects derived from it.
ANNOTATION_TEMPLATE_HASH: Final = f"{GROUP}/template-hash"

FINALIZER: Final = f"{GROUP}/finalizer"

# Condition types on WasmApp.status.conditions.
CONDITION_SCHEDULED: Final = "Scheduled"
CONDITION_DEPENDENCIES_READY: Final = "DependenciesReady"
CONDITION_READY: Final = "Ready"
CONDITION_DEGRADED: Final = "Degraded"
WASMAPP_CONDITION_TYPES: Final = (
    CONDITION_SCHEDULED,
    CONDITION_DEPENDENCIES_READY,
    CONDITION_READY,
    CONDITION_DEGRADED,
)

# Agent heartbeat Leases (coordination.k8s.io/v1) are named AGENT_LEASE_PREFIX + node name.
AGENT_LEASE_PREFIX: Final = "shoal-agent-"
