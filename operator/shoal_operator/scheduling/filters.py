"""Filter plugins: each says why a node cannot take one replica of an app, or None if it can.

Like kube-scheduler's Filter extension point, a node fails on the first filter that rejects it
and that filter's reason is what the summary message counts, so every filtered node is counted
exactly once. Reasons are phrased to read well after a count: "2 Insufficient agent memory".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from shoal_operator.scheduling.model import Agent, AppRequest, Node, Resources, Taint, Toleration

SCHEDULING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


@dataclass(frozen=True, slots=True)
class NodeView:
    """A node as seen while scheduling one app."""

    node: Node
    agent: Agent | None
    wasm_requested: Resources
    """Requests of Wasm placements on the node, not counting this app's own placement there."""


Filter = Callable[[AppRequest, NodeView, datetime], str | None]


def agent_alive(app: AppRequest, view: NodeView, now: datetime) -> str | None:
    """No fresh Lease renewal means nobody would run the placement."""
    agent = view.agent
    if agent is None:
        return "node(s) had no Shoal agent"
    if agent.last_heartbeat is None:
        return "node(s) had a stale agent heartbeat"
    if (now - agent.last_heartbeat).total_seconds() > agent.lease_duration_seconds:
        return "node(s) had a stale agent heartbeat"
    return None


def node_ready(app: AppRequest, view: NodeView, now: datetime) -> str | None:
    if not view.node.ready:
        return "node(s) were not ready"
    if view.node.unschedulable:
        return "node(s) were unschedulable"
    return None


def node_selector_matches(app: AppRequest, view: NodeView, now: datetime) -> str | None:
    labels = view.node.labels
    for key, value in app.node_selector.items():
        if labels.get(key) != value:
            return "node(s) didn't match the node selector"
    return None


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """core/v1 Toleration.ToleratesTaint."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key != taint.key and not (toleration.key == "" and toleration.operator == "Exists"):
        return False
    if toleration.operator == "Exists":
        return True
    return toleration.value == taint.value


def tolerated_until(taint: Taint, tolerations: Sequence[Toleration]) -> datetime | bool:
    """How long `tolerations` tolerate `taint`: False (not at all), True (for ever) or until when.

    As Kubernetes' taint eviction does: only NoExecute taints expire; the shortest
    tolerationSeconds among the matching tolerations wins, and <= 0 means not at all."""
    matching = [t for t in tolerations if tolerates(t, taint)]
    if not matching:
        return False
    if taint.effect != "NoExecute":
        return True
    bounded = [t.seconds for t in matching if t.seconds is not None]
    if not bounded:
        return True
    shortest = min(bounded)
    if shortest <= 0 or taint.time_added is None:
        return shortest > 0  # an undated taint cannot expire; the cache dates every NoExecute one
    return taint.time_added + timedelta(seconds=shortest)


def untolerated_taint(
    taints: Sequence[Taint], tolerations: Sequence[Toleration], now: datetime
) -> Taint | None:
    """First NoSchedule/NoExecute taint no toleration matches (PreferNoSchedule never blocks), or
    whose tolerationSeconds have run out at `now`."""
    for taint in taints:
        if taint.effect not in SCHEDULING_EFFECTS:
            continue
        until = tolerated_until(taint, tolerations)
        if until is False or (isinstance(until, datetime) and now >= until):
            return taint
    return None


def next_toleration_expiry(
    tolerations: Sequence[Toleration], nodes: Iterable[Node], now: datetime
) -> datetime | None:
    """The soonest moment after `now` at which a taint these tolerations tolerate stops being
    tolerated: a decision made now goes stale then, with no event to say so."""
    if not any(t.seconds is not None for t in tolerations):
        return None
    soonest: datetime | None = None
    for node in nodes:
        for taint in node.taints:
            if taint.effect != "NoExecute":
                continue
            until = tolerated_until(taint, tolerations)
            if isinstance(until, datetime) and until > now and (soonest is None or until < soonest):
                soonest = until
    return soonest


def taints_tolerated(app: AppRequest, view: NodeView, now: datetime) -> str | None:
    if not view.node.taints:
        return None
    taint = untolerated_taint(view.node.taints, app.tolerations, now)
    if taint is None:
        return None
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


def topology_label_present(app: AppRequest, view: NodeView, now: datetime) -> str | None:
    """With spread, a node outside every topology domain cannot be counted, so it is skipped."""
    if app.spread is not None and app.spread.topology_key not in view.node.labels:
        return f"node(s) didn't have the topology label {app.spread.topology_key}"
    return None


def fits_agent_budget(app: AppRequest, view: NodeView, now: datetime) -> str | None:
    """The agent pod's own resources are the budget all its Wasm placements share."""
    agent = view.agent
    if agent is None:  # pragma: no cover - agent_alive runs first
        return "node(s) had no Shoal agent"
    used = view.wasm_requested
    if used.cpu_millis + app.requests.cpu_millis > agent.capacity.cpu_millis:
        return "Insufficient agent cpu"
    if used.memory_bytes + app.requests.memory_bytes > agent.capacity.memory_bytes:
        return "Insufficient agent memory"
    return None


def fits_node(app: AppRequest, view: NodeView, now: datetime) -> str | None:
    """The node itself must still have room once pods and Wasm placements are counted."""
    node, wasm = view.node, view.wasm_requested
    if node.pod_requests.cpu_millis + wasm.cpu_millis + app.requests.cpu_millis > node.allocatable.cpu_millis:
        return "Insufficient cpu"
    memory = node.pod_requests.memory_bytes + wasm.memory_bytes + app.requests.memory_bytes
    if memory > node.allocatable.memory_bytes:
        return "Insufficient memory"
    return None


DEFAULT_FILTERS: tuple[Filter, ...] = (
    agent_alive,
    node_ready,
    node_selector_matches,
    taints_tolerated,
    topology_label_present,
    fits_agent_budget,
    fits_node,
)

STATIC_FILTERS: frozenset[Filter] = frozenset(
    {agent_alive, node_ready, node_selector_matches, taints_tolerated, topology_label_present}
)
"""Filters whose verdict depends only on the node, its agent, `now` and the app's constraints (see
`constraints_key`), never on what is placed. Apps with the same constraints get the same verdicts
from them on one snapshot, so a batch asks them once per kind of app, not once per app: the
equivalence classes kube-scheduler once used for the same reason."""


def constraints_key(app: AppRequest) -> tuple[object, ...]:
    """What the `STATIC_FILTERS` read of an app: apps with equal keys get equal verdicts."""
    return (
        tuple(sorted(app.node_selector.items())),
        app.tolerations,
        app.spread.topology_key if app.spread is not None else None,
    )


def first_rejection(
    app: AppRequest, view: NodeView, now: datetime, filters: Sequence[Filter] = DEFAULT_FILTERS
) -> str | None:
    """Reason of the first filter that rejects the node, or None if all pass."""
    for check in filters:
        reason = check(app, view, now)
        if reason is not None:
            return reason
    return None
