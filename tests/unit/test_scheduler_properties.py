"""Property tests of the scheduler: capacity, skew, stability and the failure message."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal_operator.scheduling import (
    DEFAULT_FILTERS,
    ZONE_LABEL,
    Agent,
    AppDecision,
    AppRequest,
    ClusterState,
    ExistingPlacement,
    Filter,
    Node,
    NodeView,
    Resources,
    Spread,
    Taint,
    Toleration,
    schedule_app,
    schedule_batch,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PROFILE = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TAINT = Taint("dedicated", "gpu", "NoSchedule")


@st.composite
def clusters(draw: st.DrawFn, *, max_nodes: int = 8) -> ClusterState:
    count = draw(st.integers(min_value=0, max_value=max_nodes))
    zones = draw(st.integers(min_value=1, max_value=3))
    nodes = []
    agents = []
    for i in range(count):
        name = f"node-{i}"
        labels = {ZONE_LABEL: f"z{draw(st.integers(0, zones - 1))}"} if draw(st.integers(0, 9)) else {}
        nodes.append(
            Node(
                name=name,
                labels=labels,
                taints=(TAINT,) if draw(st.integers(0, 5)) == 0 else (),
                ready=draw(st.integers(0, 9)) > 0,
                unschedulable=draw(st.integers(0, 9)) == 0,
                allocatable=Resources(draw(st.integers(0, 4000)), draw(st.integers(0, 4000))),
                pod_requests=Resources(draw(st.integers(0, 1000)), draw(st.integers(0, 1000))),
            )
        )
        if draw(st.integers(0, 9)):
            age = draw(st.sampled_from([0, 10, 100]))
            agents.append(
                Agent(
                    node=name,
                    capacity=Resources(draw(st.integers(0, 2000)), draw(st.integers(0, 2000))),
                    last_heartbeat=NOW - timedelta(seconds=age),
                )
            )
    return ClusterState(nodes=tuple(nodes), agents=tuple(agents))


@st.composite
def app_requests(draw: st.DrawFn, key: str = "ns/app", *, spread: bool | None = None) -> AppRequest:
    use_spread = draw(st.booleans()) if spread is None else spread
    return AppRequest(
        key=key,
        replicas=draw(st.integers(0, 8)),
        requests=Resources(draw(st.integers(0, 800)), draw(st.integers(0, 800))),
        tolerations=(Toleration(key="dedicated", operator="Exists"),) if draw(st.booleans()) else (),
        spread=Spread(max_skew=draw(st.integers(1, 2))) if use_spread else None,
        prefer_near_dependencies=draw(st.booleans()),
        dependency_nodes=frozenset(
            draw(st.lists(st.sampled_from([f"node-{i}" for i in range(8)]), max_size=2))
        ),
    )


@st.composite
def app_batches(draw: st.DrawFn) -> list[AppRequest]:
    count = draw(st.integers(1, 5))
    return [draw(app_requests(key=f"ns/app-{i}")) for i in range(count)]


def placements_of(decisions: list[AppDecision], apps: list[AppRequest]) -> tuple[ExistingPlacement, ...]:
    by_key = {a.key: a for a in apps}
    return tuple(
        ExistingPlacement(app=d.app, node=n, requests=by_key[d.app].requests, ready=True)
        for d in decisions
        for n in d.nodes
    )


@PROFILE
@given(cluster=clusters(), apps=app_batches())
def test_capacity_is_never_exceeded(cluster: ClusterState, apps: list[AppRequest]) -> None:
    decisions = schedule_batch(cluster=cluster, apps=apps, now=NOW)
    used: dict[str, Resources] = {}
    for placement in placements_of(decisions, apps):
        used[placement.node] = used.get(placement.node, Resources()) + placement.requests
    agents = {a.node: a for a in cluster.agents}
    nodes = {n.name: n for n in cluster.nodes}
    for name, total in used.items():
        agent, node = agents[name], nodes[name]
        assert total.cpu_millis <= agent.capacity.cpu_millis
        assert total.memory_bytes <= agent.capacity.memory_bytes
        assert total.cpu_millis + node.pod_requests.cpu_millis <= node.allocatable.cpu_millis
        assert total.memory_bytes + node.pod_requests.memory_bytes <= node.allocatable.memory_bytes
        assert node.ready and not node.unschedulable


@PROFILE
@given(cluster=clusters(), apps=app_batches())
def test_second_run_changes_nothing(cluster: ClusterState, apps: list[AppRequest]) -> None:
    first = schedule_batch(cluster=cluster, apps=apps, now=NOW)
    settled = ClusterState(nodes=cluster.nodes, agents=cluster.agents, placements=placements_of(first, apps))
    second = schedule_batch(cluster=settled, apps=apps, now=NOW)
    for before, after in zip(first, second, strict=True):
        assert after.nodes == before.nodes
        assert not after.changed
        assert after.unplaced == before.unplaced


@PROFILE
@given(cluster=clusters(), app=app_requests())
def test_one_replica_per_node_and_no_more_than_asked(cluster: ClusterState, app: AppRequest) -> None:
    decision = schedule_app(cluster=cluster, app=app, now=NOW)
    assert len(set(decision.nodes)) == len(decision.nodes)
    assert len(decision.nodes) + decision.unplaced == app.replicas
    assert len(decision.nodes) == min(app.replicas, decision.available_nodes)


def best_possible_skew(room: Counter[str], placed: int) -> int:
    """Brute force: smallest max-min over domains of any assignment of `placed` replicas."""
    domains = sorted(room)
    best = None
    for counts in itertools.product(*(range(room[d] + 1) for d in domains)):
        if sum(counts) == placed:
            value = max(counts) - min(counts)
            best = value if best is None else min(best, value)
    assert best is not None
    return best


@PROFILE
@given(cluster=clusters(max_nodes=7), app=app_requests(spread=True))
def test_max_skew_holds_whenever_it_can(cluster: ClusterState, app: AppRequest) -> None:
    decision = schedule_app(cluster=cluster, app=app, now=NOW)
    assert app.spread is not None
    labels = {n.name: n.labels for n in cluster.nodes}
    eligible = [n.name for n in cluster.nodes if n.name not in decision.reasons]
    if not eligible:
        return
    room = Counter(labels[n][ZONE_LABEL] for n in eligible)
    placed = Counter(labels[n][ZONE_LABEL] for n in decision.nodes)
    actual = max(placed[d] for d in room) - min(placed[d] for d in room)
    best = best_possible_skew(room, len(decision.nodes))
    if best <= app.spread.max_skew:
        assert actual <= app.spread.max_skew
    else:
        assert actual == best  # when maxSkew is out of reach, skew is still as small as possible


MESSAGE = re.compile(
    r"^(\d+)/(\d+) nodes are available(?:: (.*))?\. (\d+)/(\d+) replicas could not be placed"
)


@PROFILE
@given(cluster=clusters(), app=app_requests())
def test_failure_message_counts_every_filtered_node(cluster: ClusterState, app: AppRequest) -> None:
    decision = schedule_app(cluster=cluster, app=app, now=NOW)
    assert decision.available_nodes + len(decision.reasons) == len(cluster.nodes)
    if decision.unplaced == 0:
        assert decision.message is None
        return
    assert decision.message is not None
    match = MESSAGE.match(decision.message)
    assert match is not None, decision.message
    available, total, reasons, unplaced, replicas = match.groups()
    assert int(available) == decision.available_nodes and int(total) == len(cluster.nodes)
    counted = sum(int(part.split(" ", 1)[0]) for part in reasons.split(", ")) if reasons else 0
    assert counted == len(cluster.nodes) - decision.available_nodes
    assert int(unplaced) == decision.unplaced and int(replicas) == app.replicas
    assert decision.message == schedule_app(cluster=cluster, app=app, now=NOW).message


def _unshared(check: Filter) -> Filter:
    """The same filter under another identity: not one the batch asks once per kind of app."""

    def asked_every_time(app: AppRequest, view: NodeView, now: datetime) -> str | None:
        return check(app, view, now)

    return asked_every_time


@PROFILE
@given(cluster=clusters(), apps=app_batches())
def test_static_verdicts_shared_per_kind_of_app_decide_as_asking_every_time(
    cluster: ClusterState, apps: list[AppRequest]
) -> None:
    # Half the apps share constraints with another (the case the memo is for).
    apps = [a if i % 2 == 0 else replace(a, tolerations=apps[0].tolerations) for i, a in enumerate(apps)]
    shared = schedule_batch(cluster=cluster, apps=apps, now=NOW)
    every_time = schedule_batch(
        cluster=cluster, apps=apps, now=NOW, filters=tuple(_unshared(f) for f in DEFAULT_FILTERS)
    )
    assert shared == every_time
