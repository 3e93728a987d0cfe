"""Scheduler behaviour: stability, surplus removal, spread, preferences, batch accounting."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from shoal_operator.scheduling import (
    ZONE_LABEL,
    Agent,
    AppRequest,
    ClusterState,
    ExistingPlacement,
    Node,
    Resources,
    Spread,
    Taint,
    schedule_app,
    schedule_batch,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MI = 2**20


def make_cluster(
    n: int = 3,
    *,
    zones: int = 3,
    agent_cpu: int = 1000,
    agent_mem: int = 1024 * MI,
    placements: tuple[ExistingPlacement, ...] = (),
) -> ClusterState:
    nodes = tuple(
        Node(name=f"node-{i}", labels={ZONE_LABEL: f"z{i % zones}"}, allocatable=Resources(8000, 16384 * MI))
        for i in range(n)
    )
    agents = tuple(
        Agent(node=x.name, capacity=Resources(agent_cpu, agent_mem), last_heartbeat=NOW) for x in nodes
    )
    return ClusterState(nodes=nodes, agents=agents, placements=placements)


def app(key: str = "ns/app", replicas: int = 3, **kw: object) -> AppRequest:
    return AppRequest(key=key, replicas=replicas, requests=kw.pop("requests", Resources(100, 64 * MI)), **kw)  # type: ignore[arg-type]


def with_placements(cluster: ClusterState, *entries: tuple[str, str, Resources]) -> ClusterState:
    placements = tuple(ExistingPlacement(app=a, node=n, requests=r, ready=True) for a, n, r in entries)
    return ClusterState(
        nodes=cluster.nodes, agents=cluster.agents, placements=cluster.placements + placements
    )


def replace_node(cluster: ClusterState, node: Node) -> ClusterState:
    nodes = tuple(node if x.name == node.name else x for x in cluster.nodes)
    return ClusterState(nodes=nodes, agents=cluster.agents, placements=cluster.placements)


def test_places_replicas_on_distinct_nodes() -> None:
    decision = schedule_app(cluster=make_cluster(5), app=app(replicas=3), now=NOW)
    assert len(decision.nodes) == 3 and len(set(decision.nodes)) == 3
    assert decision.added == decision.nodes and decision.kept == () and decision.removed == ()
    assert decision.fully_scheduled and decision.message is None


def test_zero_replicas_removes_everything() -> None:
    r = Resources(100, 64 * MI)
    cluster = with_placements(make_cluster(3), ("ns/app", "node-0", r), ("ns/app", "node-1", r))
    decision = schedule_app(cluster=cluster, app=app(replicas=0), now=NOW)
    assert decision.nodes == () and decision.removed == ("node-0", "node-1")


def test_noop_reconcile_moves_nothing() -> None:
    cluster = make_cluster(6)
    first = schedule_app(cluster=cluster, app=app(replicas=3), now=NOW)
    again = with_placements(cluster, *(("ns/app", n, Resources(100, 64 * MI)) for n in first.nodes))
    second = schedule_app(cluster=again, app=app(replicas=3), now=NOW)
    assert second.nodes == first.nodes and second.kept == first.nodes and not second.changed


def test_existing_placements_are_kept_even_if_scores_prefer_others() -> None:
    r = Resources(100, 64 * MI)
    # node-0 is busy with another app, so a fresh decision would avoid it; ours stays put anyway.
    busy = with_placements(
        make_cluster(3), ("ns/other", "node-0", Resources(800, 900 * MI)), ("ns/app", "node-0", r)
    )
    decision = schedule_app(cluster=busy, app=app(replicas=1), now=NOW)
    assert decision.nodes == ("node-0",) and not decision.changed


def test_scale_up_adds_only_missing() -> None:
    r = Resources(100, 64 * MI)
    cluster = with_placements(make_cluster(5), ("ns/app", "node-3", r))
    decision = schedule_app(cluster=cluster, app=app(replicas=3), now=NOW)
    assert decision.kept == ("node-3",) and len(decision.added) == 2 and "node-3" not in decision.added


def test_scale_down_removes_from_most_crowded_domain() -> None:
    r = Resources(100, 64 * MI)
    cluster = make_cluster(6, zones=3)  # z0: node-0, node-3; z1: node-1, node-4; z2: node-2, node-5
    cluster = with_placements(cluster, *(("ns/app", n, r) for n in ("node-0", "node-3", "node-1", "node-2")))
    decision = schedule_app(cluster=cluster, app=app(replicas=3, spread=Spread()), now=NOW)
    assert len(decision.removed) == 1 and decision.removed[0] in {"node-0", "node-3"}
    zones = {int(n.split("-")[1]) % 3 for n in decision.nodes}
    assert zones == {0, 1, 2}


def test_unfit_placements_move() -> None:
    r = Resources(100, 64 * MI)
    cluster = with_placements(make_cluster(4), ("ns/app", "node-0", r), ("ns/app", "node-1", r))
    cluster = replace_node(
        cluster, Node(name="node-0", unschedulable=True, allocatable=Resources(8000, 16384 * MI))
    )
    decision = schedule_app(cluster=cluster, app=app(replicas=2), now=NOW)
    assert decision.removed == ("node-0",)
    assert decision.kept == ("node-1",)
    assert len(decision.added) == 1 and decision.added[0] in {"node-2", "node-3"}


def test_placements_on_deleted_nodes_are_removed() -> None:
    r = Resources(100, 64 * MI)
    cluster = with_placements(make_cluster(2), ("ns/app", "ghost", r))
    decision = schedule_app(cluster=cluster, app=app(replicas=1), now=NOW)
    assert decision.removed == ("ghost",) and len(decision.added) == 1


def test_stale_agent_is_avoided() -> None:
    cluster = make_cluster(2)
    stale = Agent(
        node="node-0", capacity=Resources(1000, 1024 * MI), last_heartbeat=NOW - timedelta(minutes=5)
    )
    cluster = ClusterState(nodes=cluster.nodes, agents=(stale, cluster.agents[1]))
    decision = schedule_app(cluster=cluster, app=app(replicas=2), now=NOW)
    assert decision.nodes == ("node-1",) and decision.unplaced == 1
    assert decision.reasons == {"node-0": "node(s) had a stale agent heartbeat"}


def test_own_requests_do_not_block_keeping_a_placement() -> None:
    big = Resources(1000, 1024 * MI)  # fills the agent exactly
    cluster = with_placements(make_cluster(1), ("ns/app", "node-0", big))
    decision = schedule_app(cluster=cluster, app=app(replicas=1, requests=big), now=NOW)
    assert decision.kept == ("node-0",)


def test_failure_message_aggregates_reasons() -> None:
    cluster = make_cluster(3, agent_mem=32 * MI)
    tainted = Node(
        name="node-2",
        labels={ZONE_LABEL: "z2"},
        taints=(Taint("dedicated", "gpu", "NoSchedule"),),
        allocatable=Resources(8000, 16384 * MI),
    )
    cluster = replace_node(cluster, tainted)
    decision = schedule_app(cluster=cluster, app=app(replicas=3), now=NOW)
    assert decision.nodes == () and decision.unplaced == 3
    assert decision.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu},"
        " 2 Insufficient agent memory. 3/3 replicas could not be placed (at most one per node)."
    )


def test_spread_over_zones() -> None:
    cluster = make_cluster(9, zones=3)
    decision = schedule_app(cluster=cluster, app=app(replicas=6, spread=Spread(max_skew=1)), now=NOW)
    zones = Counter(int(n.split("-")[1]) % 3 for n in decision.nodes)
    assert sorted(zones.values()) == [2, 2, 2]


def test_near_dependencies_wins_over_balance() -> None:
    cluster = make_cluster(4, zones=2)
    the_app = app(replicas=1, prefer_near_dependencies=True, dependency_nodes=frozenset({"node-3"}))
    assert schedule_app(cluster=cluster, app=the_app, now=NOW).nodes == ("node-3",)


def test_apps_do_not_pile_on_the_first_node() -> None:
    cluster = make_cluster(10, agent_cpu=100_000, agent_mem=100_000 * MI)
    decisions = schedule_batch(
        cluster=cluster,
        apps=[app(key=f"ns/a{i}", replicas=1, requests=Resources(0, 0)) for i in range(40)],
        now=NOW,
    )
    assert len({d.nodes[0] for d in decisions}) > 3


def test_batch_accounts_capacity_as_it_goes() -> None:
    cluster = make_cluster(2, agent_cpu=250)
    apps = [app(key=f"ns/a{i}", replicas=2, requests=Resources(100, MI)) for i in range(3)]
    decisions = schedule_batch(cluster=cluster, apps=apps, now=NOW)
    assert [len(d.nodes) for d in decisions] == [2, 2, 0]
    assert decisions[2].message is not None and "2 Insufficient agent cpu" in decisions[2].message


def test_batch_least_allocated_balances_load() -> None:
    cluster = make_cluster(4, agent_cpu=10_000, agent_mem=10_000 * MI)
    apps = [app(key=f"ns/a{i}", replicas=1, requests=Resources(100, 100 * MI)) for i in range(8)]
    load = Counter(d.nodes[0] for d in schedule_batch(cluster=cluster, apps=apps, now=NOW))
    assert sorted(load.values()) == [2, 2, 2, 2]


def test_decisions_are_deterministic() -> None:
    cluster = make_cluster(12, zones=4)
    apps = [app(key=f"ns/a{i}", replicas=i % 5, spread=Spread() if i % 2 else None) for i in range(20)]
    assert schedule_batch(cluster=cluster, apps=apps, now=NOW) == schedule_batch(
        cluster=cluster, apps=apps, now=NOW
    )
