"""Score plugins: how much a node that passed the filters is liked, 0..100, higher is better.

Scores here depend only on (app, node), so they are computed once per node per app; the spread
score depends on the replicas chosen so far and lives in spread.py.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shoal_operator.scheduling.filters import NodeView
from shoal_operator.scheduling.model import ZONE_LABEL, AppRequest

MAX_SCORE = 100.0

Score = Callable[[AppRequest, NodeView, "ScoreContext"], float]


@dataclass(frozen=True, slots=True)
class ScoreContext:
    """Per-app data shared by all score calls (computed once, not per node)."""

    dependency_zones: frozenset[str]


def make_context(app: AppRequest, labels_by_node: Mapping[str, Mapping[str, str]]) -> ScoreContext:
    zones = frozenset(
        zone
        for node in app.dependency_nodes
        if (zone := labels_by_node.get(node, {}).get(ZONE_LABEL)) is not None
    )
    return ScoreContext(dependency_zones=zones)


def least_allocated(app: AppRequest, view: NodeView, ctx: ScoreContext) -> float:
    """Prefer agents with the most budget left after this replica (kube's LeastAllocated)."""
    agent = view.agent
    if agent is None:
        return 0.0
    total = 0.0
    capacity, used, request = agent.capacity, view.wasm_requested, app.requests
    if capacity.cpu_millis > 0:
        total += max(0.0, (capacity.cpu_millis - used.cpu_millis - request.cpu_millis) / capacity.cpu_millis)
    if capacity.memory_bytes > 0:
        free = capacity.memory_bytes - used.memory_bytes - request.memory_bytes
        total += max(0.0, free / capacity.memory_bytes)
    return MAX_SCORE * total / 2


def near_dependencies(app: AppRequest, view: NodeView, ctx: ScoreContext) -> float:
    """Prefer the node of a dependency pod, then its zone: fewer hops to Redis/MySQL."""
    if not app.prefer_near_dependencies or not app.dependency_nodes:
        return 0.0
    if view.node.name in app.dependency_nodes:
        return MAX_SCORE
    zone = view.node.labels.get(ZONE_LABEL)
    if zone is not None and zone in ctx.dependency_zones:
        return MAX_SCORE / 2
    return 0.0


DEFAULT_SCORES: tuple[tuple[Score, float], ...] = ((near_dependencies, 1.0), (least_allocated, 1.0))
"""(score, weight) pairs; spread has weight SPREAD_WEIGHT in spread.py."""


def static_score(
    app: AppRequest,
    view: NodeView,
    ctx: ScoreContext,
    scores: tuple[tuple[Score, float], ...] = DEFAULT_SCORES,
) -> float:
    return sum(weight * score(app, view, ctx) for score, weight in scores)


def tie_break(app_key: str, node: str) -> int:
    """Stable per-(app, node) order among equal scores, so apps do not all pile onto node-a."""
    return zlib.crc32(f"{app_key}\x00{node}".encode())
