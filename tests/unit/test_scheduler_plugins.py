"""Table tests for each filter and score plugin, taint/toleration semantics and the message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shoal_operator.scheduling import (
    ZONE_LABEL,
    Agent,
    AppRequest,
    Node,
    NodeView,
    Resources,
    Spread,
    Taint,
    Toleration,
)
from shoal_operator.scheduling.filters import (
    agent_alive,
    fits_agent_budget,
    fits_node,
    next_toleration_expiry,
    node_ready,
    node_selector_matches,
    taints_tolerated,
    tolerated_until,
    tolerates,
    topology_label_present,
)
from shoal_operator.scheduling.messages import unschedulable_message
from shoal_operator.scheduling.scores import least_allocated, make_context, near_dependencies, tie_break
from shoal_operator.scheduling.spread import can_complete, skew, spread_score

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MI = 2**20


def app(**kw: object) -> AppRequest:
    defaults: dict[str, object] = {"key": "ns/app", "replicas": 1, "requests": Resources(100, 64 * MI)}
    defaults.update(kw)
    return AppRequest(**defaults)  # type: ignore[arg-type]


def view(
    *,
    node: Node | None = None,
    agent: Agent | bool | None = True,
    used: Resources | None = None,
) -> NodeView:
    node = node or Node(name="n1", allocatable=Resources(4000, 4096 * MI))
    if agent is True:
        agent = Agent(node=node.name, capacity=Resources(1000, 1024 * MI), last_heartbeat=NOW)
    return NodeView(node=node, agent=agent or None, wasm_requested=used or Resources())


@pytest.mark.parametrize(
    ("agent", "reason"),
    [
        (Agent(node="n1", capacity=Resources(), last_heartbeat=NOW), None),
        (Agent(node="n1", capacity=Resources(), last_heartbeat=NOW - timedelta(seconds=40)), None),
        (Agent(node="n1", capacity=Resources(), last_heartbeat=NOW - timedelta(seconds=41)), "stale"),
        (
            Agent(
                node="n1",
                capacity=Resources(),
                last_heartbeat=NOW - timedelta(seconds=5),
                lease_duration_seconds=4,
            ),
            "stale",
        ),
        (Agent(node="n1", capacity=Resources(), last_heartbeat=None), "stale"),
        (None, "no Shoal agent"),
    ],
)
def test_agent_alive(agent: Agent | None, reason: str | None) -> None:
    result = agent_alive(app(), view(agent=agent if agent else False), NOW)
    assert (result is None) if reason is None else (result is not None and reason in result)


@pytest.mark.parametrize(
    ("ready", "unschedulable", "reason"),
    [
        (True, False, None),
        (False, False, "node(s) were not ready"),
        (True, True, "node(s) were unschedulable"),
    ],
)
def test_node_ready(ready: bool, unschedulable: bool, reason: str | None) -> None:
    node = Node(name="n1", ready=ready, unschedulable=unschedulable)
    assert node_ready(app(), view(node=node), NOW) == reason


@pytest.mark.parametrize(
    ("selector", "labels", "ok"),
    [
        ({}, {}, True),
        ({"disk": "ssd"}, {"disk": "ssd", "x": "y"}, True),
        ({"disk": "ssd"}, {"disk": "hdd"}, False),
        ({"disk": "ssd"}, {}, False),
        ({"disk": "ssd", "gpu": "1"}, {"disk": "ssd"}, False),
    ],
)
def test_node_selector(selector: dict[str, str], labels: dict[str, str], ok: bool) -> None:
    result = node_selector_matches(
        app(node_selector=selector), view(node=Node(name="n1", labels=labels)), NOW
    )
    assert (result is None) == ok


@pytest.mark.parametrize(
    ("toleration", "taint", "ok"),
    [
        (
            Toleration(key="k", operator="Equal", value="v", effect="NoSchedule"),
            Taint("k", "v", "NoSchedule"),
            True,
        ),
        (Toleration(key="k", operator="Equal", value="w"), Taint("k", "v", "NoSchedule"), False),
        (Toleration(key="k", operator="Exists"), Taint("k", "v", "NoExecute"), True),
        (Toleration(key="k", operator="Exists", effect="NoSchedule"), Taint("k", "v", "NoExecute"), False),
        (Toleration(key="", operator="Exists"), Taint("anything", "v", "NoExecute"), True),
        (
            Toleration(key="", operator="Exists", effect="NoSchedule"),
            Taint("anything", "", "NoSchedule"),
            True,
        ),
        (Toleration(key="", operator="Equal", value=""), Taint("k", "", "NoSchedule"), False),
        (Toleration(key="other", operator="Exists"), Taint("k", "", "NoSchedule"), False),
        (Toleration(key="k", operator="Equal", value=""), Taint("k", "", "NoSchedule"), True),
    ],
)
def test_tolerates(toleration: Toleration, taint: Taint, ok: bool) -> None:
    assert tolerates(toleration, taint) is ok


@pytest.mark.parametrize(
    ("taints", "tolerations", "reason"),
    [
        ((), (), None),
        ((Taint("dedicated", "gpu", "NoSchedule"),), (), "node(s) had untolerated taint {dedicated: gpu}"),
        ((Taint("soft", "x", "PreferNoSchedule"),), (), None),
        ((Taint("gone", "", "NoExecute"),), (), "node(s) had untolerated taint {gone: }"),
        ((Taint("dedicated", "gpu", "NoSchedule"),), (Toleration(key="dedicated", operator="Exists"),), None),
        (
            (Taint("a", "1", "NoSchedule"), Taint("b", "2", "NoSchedule")),
            (Toleration(key="a", operator="Equal", value="1"),),
            "node(s) had untolerated taint {b: 2}",
        ),
    ],
)
def test_taints(taints: tuple[Taint, ...], tolerations: tuple[Toleration, ...], reason: str | None) -> None:
    node = Node(name="n1", taints=taints)
    assert taints_tolerated(app(tolerations=tolerations), view(node=node), NOW) == reason


EVICT = Taint("node.kubernetes.io/unreachable", "", "NoExecute", time_added=NOW - timedelta(seconds=10))


@pytest.mark.parametrize(
    ("tolerations", "until"),
    [
        ((), False),
        ((Toleration(key=EVICT.key, operator="Exists"),), True),
        ((Toleration(key=EVICT.key, operator="Exists", seconds=30),), NOW + timedelta(seconds=20)),
        # the shortest matching tolerationSeconds wins, even beside an unbounded toleration
        (
            (
                Toleration(operator="Exists"),
                Toleration(key=EVICT.key, operator="Exists", seconds=60),
                Toleration(key=EVICT.key, operator="Exists", seconds=15),
            ),
            NOW + timedelta(seconds=5),
        ),
        ((Toleration(key=EVICT.key, operator="Exists", seconds=0),), False),
        ((Toleration(key=EVICT.key, operator="Exists", seconds=-5),), False),
        ((Toleration(key="other", operator="Exists", seconds=30),), False),
    ],
)
def test_tolerated_until(tolerations: tuple[Toleration, ...], until: datetime | bool) -> None:
    assert tolerated_until(EVICT, tolerations) == until


def test_toleration_seconds_only_bound_no_execute_taints() -> None:
    taint = Taint("dedicated", "gpu", "NoSchedule", time_added=NOW - timedelta(hours=1))
    assert tolerated_until(taint, (Toleration(key="dedicated", operator="Exists", seconds=1),)) is True


def test_a_no_execute_taint_is_tolerated_until_its_seconds_run_out() -> None:
    request = app(tolerations=(Toleration(key=EVICT.key, operator="Exists", seconds=30),))
    tainted = view(node=Node(name="n1", taints=(EVICT,)))
    assert taints_tolerated(request, tainted, NOW) is None
    assert taints_tolerated(request, tainted, NOW + timedelta(seconds=19)) is None
    reason = taints_tolerated(request, tainted, NOW + timedelta(seconds=20))
    assert reason == "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"


def test_next_toleration_expiry_is_the_soonest_future_one() -> None:
    later = Taint("maintenance", "", "NoExecute", time_added=NOW)
    nodes = [
        Node(name="n1", taints=(EVICT,)),
        Node(name="n2", taints=(later,)),
        Node(name="n3", taints=(Taint("dedicated", "gpu", "NoSchedule"),)),
    ]
    tolerations = (Toleration(operator="Exists", seconds=30),)
    assert next_toleration_expiry(tolerations, nodes, NOW) == NOW + timedelta(seconds=20)
    assert next_toleration_expiry(tolerations, nodes, NOW + timedelta(seconds=20)) == NOW + timedelta(
        seconds=30
    )
    assert next_toleration_expiry(tolerations, nodes, NOW + timedelta(seconds=30)) is None
    assert next_toleration_expiry((Toleration(operator="Exists"),), nodes, NOW) is None


def test_topology_label_only_matters_with_spread() -> None:
    bare = view(node=Node(name="n1"))
    assert topology_label_present(app(), bare, NOW) is None
    assert "topology label" in (topology_label_present(app(spread=Spread()), bare, NOW) or "")
    zoned = view(node=Node(name="n1", labels={ZONE_LABEL: "a"}))
    assert topology_label_present(app(spread=Spread()), zoned, NOW) is None


@pytest.mark.parametrize(
    ("used", "wanted", "reason"),
    [
        (Resources(0, 0), Resources(1000, 1024 * MI), None),  # exactly full is fine
        (Resources(1, 0), Resources(1000, 1024 * MI), "Insufficient agent cpu"),
        (Resources(0, 1), Resources(1000, 1024 * MI), "Insufficient agent memory"),
        (Resources(900, 0), Resources(100, 64 * MI), None),
        (Resources(901, 2000 * MI), Resources(100, 64 * MI), "Insufficient agent cpu"),
    ],
)
def test_agent_budget(used: Resources, wanted: Resources, reason: str | None) -> None:
    assert fits_agent_budget(app(requests=wanted), view(used=used), NOW) == reason


@pytest.mark.parametrize(
    ("pods", "used", "reason"),
    [
        (Resources(0, 0), Resources(0, 0), None),
        (Resources(3900, 0), Resources(0, 0), None),
        (Resources(3900, 0), Resources(1, 0), "Insufficient cpu"),
        (Resources(0, 4040 * MI), Resources(0, 0), "Insufficient memory"),
        (Resources(0, 3000 * MI), Resources(0, 1040 * MI), "Insufficient memory"),
    ],
)
def test_node_allocatable(pods: Resources, used: Resources, reason: str | None) -> None:
    node = Node(name="n1", allocatable=Resources(4000, 4096 * MI), pod_requests=pods)
    assert fits_node(app(), view(node=node, used=used), NOW) == reason


def test_least_allocated_prefers_emptier_agents() -> None:
    ctx = make_context(app(), {})
    empty = least_allocated(app(), view(used=Resources()), ctx)
    half = least_allocated(app(), view(used=Resources(500, 512 * MI)), ctx)
    assert 0 < half < empty <= 100
    assert least_allocated(app(), view(agent=False), ctx) == 0


def test_near_dependencies() -> None:
    labels = {"n1": {ZONE_LABEL: "a"}, "n2": {ZONE_LABEL: "a"}, "n3": {ZONE_LABEL: "b"}}
    the_app = app(prefer_near_dependencies=True, dependency_nodes=frozenset({"n1"}))
    ctx = make_context(the_app, labels)
    scores = [
        near_dependencies(the_app, view(node=Node(name=n, labels=labels[n])), ctx) for n in ("n1", "n2", "n3")
    ]
    assert scores == [100.0, 50.0, 0.0]
    indifferent = app(prefer_near_dependencies=False, dependency_nodes=frozenset({"n1"}))
    assert near_dependencies(indifferent, view(node=Node(name="n1")), ctx) == 0.0


def test_tie_break_is_stable_and_app_dependent() -> None:
    assert tie_break("ns/a", "n1") == tie_break("ns/a", "n1")

    def order(app_key: str) -> tuple[str, ...]:
        return tuple(sorted(["n1", "n2", "n3", "n4"], key=lambda n: tie_break(app_key, n)))

    orders = {order(a) for a in "abcdefgh"}
    assert len(orders) > 1


@pytest.mark.parametrize(
    ("counts", "room", "remaining", "max_skew", "ok"),
    [
        ({"a": 0, "b": 0}, {"a": 5, "b": 5}, 4, 1, True),
        ({"a": 0, "b": 0}, {"a": 1, "b": 5}, 4, 1, False),  # best is 1/3
        ({"a": 0, "b": 0}, {"a": 1, "b": 5}, 4, 2, True),
        ({"a": 3, "b": 0}, {"a": 0, "b": 5}, 2, 1, True),
        ({"a": 3, "b": 0}, {"a": 0, "b": 5}, 1, 1, False),
        ({"a": 0}, {"a": 3}, 3, 1, True),
        ({}, {}, 0, 1, True),
        ({"a": 2, "b": 0}, {}, 0, 1, False),
    ],
)
def test_can_complete(
    counts: dict[str, int], room: dict[str, int], remaining: int, max_skew: int, ok: bool
) -> None:
    assert can_complete(counts=counts, room=room, remaining=remaining, max_skew=max_skew) is ok


def test_spread_helpers() -> None:
    assert skew({}) == 0
    assert skew({"a": 3, "b": 1}) == 2
    assert spread_score(1, 1, 1) == 100.0
    assert spread_score(2, 1, 1) == 50.0
    assert spread_score(5, 1, 1) == 0.0


def test_message_counts_every_filtered_node_sorted() -> None:
    reasons = {
        "n1": "Insufficient agent memory",
        "n2": "node(s) had untolerated taint {dedicated: gpu}",
        "n3": "Insufficient agent memory",
    }
    message = unschedulable_message(available=0, total=3, reasons=reasons, unplaced=3, replicas=3)
    assert message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu},"
        " 2 Insufficient agent memory."
        " 3/3 replicas could not be placed (at most one per node)."
    )


def test_message_without_filtered_nodes() -> None:
    message = unschedulable_message(available=2, total=2, reasons={}, unplaced=1, replicas=3)
    assert message == "2/2 nodes are available. 1/3 replicas could not be placed (at most one per node)."
