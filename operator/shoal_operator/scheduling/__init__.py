"""The pure scheduler core: plain data in, decisions out; no I/O, no Kubernetes client, no clock.

Entry points: `schedule_app`, `schedule_batch` (filter -> score -> pick, stable) and
`diff_placements` (decision -> create/update/delete with rolling-update safety).
"""

from shoal_operator.scheduling.diff import ActualPlacement, PlacementActions, diff_placements
from shoal_operator.scheduling.filters import (
    DEFAULT_FILTERS,
    Filter,
    NodeView,
    next_toleration_expiry,
    tolerates,
)
from shoal_operator.scheduling.model import (
    ZONE_LABEL,
    Agent,
    AppDecision,
    AppRequest,
    ClusterState,
    ExistingPlacement,
    Node,
    Resources,
    Spread,
    Taint,
    Toleration,
)
from shoal_operator.scheduling.scheduler import iter_decisions, schedule_app, schedule_batch
from shoal_operator.scheduling.scores import DEFAULT_SCORES, Score

__all__ = [
    "DEFAULT_FILTERS",
    "DEFAULT_SCORES",
    "ZONE_LABEL",
    "ActualPlacement",
    "Agent",
    "AppDecision",
    "AppRequest",
    "ClusterState",
    "ExistingPlacement",
    "Filter",
    "Node",
    "NodeView",
    "PlacementActions",
    "Resources",
    "Score",
    "Spread",
    "Taint",
    "Toleration",
    "diff_placements",
    "iter_decisions",
    "next_toleration_expiry",
    "schedule_app",
    "schedule_batch",
    "tolerates",
]
