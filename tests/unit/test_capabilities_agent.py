"""The shell adapter: reference-counted bindings across a rollout, sharing derived from owners."""

from __future__ import annotations

import pytest

from shoal_agent.apps import AppBindings
from shoal_agent.capabilities import (
    AgentCapabilities,
    CapabilityHost,
    DependencyError,
    HostPort,
    StaticResolver,
)
from shoal_agent.triggers.base import Trigger
from shoal_api.wasmplacement import DependencyEndpoint, ServiceEndpoint

pytestmark = pytest.mark.unit

CACHE = DependencyEndpoint(
    name="cache", kind="redis", service=ServiceEndpoint(name="redis", namespace="ns", port=6379)
)


def app(
    name: str, *, shares: tuple[str, ...] = (), deps: tuple[DependencyEndpoint, ...] = (CACHE,)
) -> AppBindings:
    return AppBindings(namespace="ns", app=name, dependencies=deps, share_keys_with=shares)


@pytest.fixture
def caps() -> AgentCapabilities:
    return AgentCapabilities(
        CapabilityHost(resolver=StaticResolver({("ns", "redis"): HostPort("127.0.0.1", 1)}))
    )


def shared_by(caps: AgentCapabilities, name: str) -> frozenset[str]:
    binding = caps.host.bindings.get("ns", name)
    assert binding is not None
    return binding.keys.shared_by


async def test_sharing_follows_the_owners_bound_here(caps: AgentCapabilities) -> None:
    await caps.bind(app("leaderboard"))
    assert shared_by(caps, "leaderboard") == frozenset()
    await caps.bind(app("tally", shares=("leaderboard",)))
    assert shared_by(caps, "leaderboard") == {"tally"} and shared_by(caps, "tally") == frozenset()
    await caps.unbind(app("tally", shares=("leaderboard",)))
    assert shared_by(caps, "leaderboard") == frozenset()


async def test_rollout_keeps_the_new_binding(caps: AgentCapabilities) -> None:
    await caps.bind(app("tally"))  # v1
    await caps.bind(app("tally"))  # v2 binds before v1 is retired
    await caps.unbind(app("tally"))  # v1 retired
    assert caps.host.bindings.get("ns", "tally") is not None
    await caps.unbind(app("tally"))
    assert caps.host.bindings.get("ns", "tally") is None


async def test_unresolvable_dependency_fails_the_bind(caps: AgentCapabilities) -> None:
    lost = DependencyEndpoint(
        name="x", kind="redis", service=ServiceEndpoint(name="nope", namespace="ns", port=1)
    )
    with pytest.raises(DependencyError, match="dependency x"):
        await caps.bind(app("broken", deps=(lost,)))
    assert caps.host.bindings.get("ns", "broken") is None


async def test_redis_trigger_factory(caps: AgentCapabilities) -> None:
    await caps.bind(app("scoreboard"))

    async def invoker(_request: object) -> object:
        raise AssertionError("not started")

    trigger = caps.redis_trigger(app("scoreboard"), {"dependency": "cache", "channel": "clicks"}, invoker)  # type: ignore[arg-type]
    assert isinstance(trigger, Trigger) and trigger.kind == "redis"
    with pytest.raises(DependencyError):
        caps.redis_trigger(app("scoreboard"), {"dependency": "db", "channel": "clicks"}, invoker)  # type: ignore[arg-type]
