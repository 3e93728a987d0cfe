"""The operator's agent links (`/livez` streams): which agents' addresses are withdrawn, and how the
reconciler turns that into readiness without a new scheduling decision."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shoal_operator.agents import AgentView
from shoal_operator.cache import ClusterCache
from shoal_operator.liveness import Link, LinkBook, link_changes, retry_delay, state_of_line

pytestmark = pytest.mark.unit


def book(**states: Link) -> LinkBook:
    b = LinkBook()
    for node, state in states.items():
        b.set(node, state)
    return b


def test_a_dropped_or_starting_agent_is_withdrawn_an_unknown_one_is_left_to_its_lease() -> None:
    b = book(n1=Link.READY, n2=Link.DOWN, n3=Link.STARTING, n4=Link.UNKNOWN)
    assert b.withdrawn() == {"n2", "n3"}


def test_every_link_down_at_once_withdraws_nothing() -> None:
    """The operator's own network is the likelier story; withdrawing all would be an outage."""
    assert book(n1=Link.DOWN, n2=Link.DOWN, n3=Link.UNKNOWN).withdrawn() == frozenset()
    assert book(n1=Link.DOWN, n2=Link.STARTING).withdrawn() == {"n1", "n2"}


def test_set_reports_changes_only_and_forget_drops_the_node() -> None:
    b = LinkBook()
    assert not b.set("n1", Link.UNKNOWN)
    assert b.set("n1", Link.READY)
    assert not b.set("n1", Link.READY)
    b.forget("n1")
    assert b.states == {}


def test_lines_and_backoff() -> None:
    assert state_of_line(b"ready\n") is Link.READY
    assert state_of_line(b"starting\n") is Link.STARTING
    assert state_of_line(b"draining\n") is Link.STARTING
    assert [retry_delay(f) for f in (0, 1, 2, 3, 4, 50)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_link_changes_reconnect_moved_endpoints() -> None:
    running = {"n1": ("10.0.0.1", 9000), "n2": ("10.0.0.2", 9000)}
    wanted = {"n1": ("10.0.0.1", 9001), "n3": ("10.0.0.3", 9000)}
    assert link_changes(running, wanted) == (["n1", "n3"], ["n1", "n2"])
    assert link_changes(wanted, wanted) == ([], [])


def test_wasmnode_health_port_becomes_a_link_target() -> None:
    cache = ClusterCache()
    node = {
        "metadata": {"name": "n1"},
        "spec": {"capacity": {}, "endpoint": {"host": "10.0.0.1", "port": 8080}},
    }
    cache.apply_wasmnode("ADDED", node)
    assert cache.link_targets() == {}, "an older agent without the port: the Lease alone decides"
    node["spec"]["endpoint"]["healthPort"] = 9090  # type: ignore[index]
    cache.apply_wasmnode("MODIFIED", node)
    assert cache.link_targets() == {"n1": ("10.0.0.1", 9090)}
    cache.apply_wasmnode("DELETED", node)
    assert cache.link_targets() == {}


class FakeLinks:
    def __init__(self, withdrawn: frozenset[str]) -> None:
        self._withdrawn = withdrawn
        self.synced: dict[str, tuple[str, int]] = {}

    def sync(self, wanted: dict[str, tuple[str, int]]) -> None:
        self.synced = dict(wanted)

    def withdrawn(self) -> frozenset[str]:
        return self._withdrawn


async def test_a_withdrawn_agent_is_fresh_but_not_serving_and_needs_no_new_decision() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cache = ClusterCache()
    for n in ("n1", "n2"):
        cache.apply_lease(
            "ADDED",
            {
                "metadata": {"name": f"shoal-agent-{n}"},
                "spec": {"holderIdentity": n, "renewTime": now.isoformat(), "leaseDurationSeconds": 15},
            },
        )
    agents = AgentView(cache)
    links = FakeLinks(frozenset({"n2"}))
    agents.links = links  # type: ignore[assignment]
    agents.check(now)
    epoch = cache.topology_epoch
    assert agents.fresh == {"n1", "n2"}
    assert agents.serving == {"n1"}

    links._withdrawn = frozenset()
    agents.check(now)
    assert agents.serving == {"n1", "n2"}
    assert cache.topology_epoch == epoch, "readiness only: the placements stay where they are"
