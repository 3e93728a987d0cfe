"""Which Redis dependency a Spin key-value store label names."""

from __future__ import annotations

import pytest

from shoal_agent.capabilities.bindings import AppBinding
from shoal_agent.capabilities.namespacing import KeySpace
from shoal_agent.capabilities.pools import HostPort
from shoal_agent.capabilities.spin_kv import store_dependency

A, B = HostPort("10.0.0.1", 6379), HostPort("10.0.0.2", 6379)


def binding(**redis: HostPort) -> AppBinding:
    return AppBinding(KeySpace("ns", "app"), redis)


def test_default_is_the_only_redis_dependency_or_the_one_named_default() -> None:
    assert store_dependency(binding(cache=A), "default") == A
    assert store_dependency(binding(cache=A, default=B), "default") == B
    assert store_dependency(binding(cache=A, other=B), "other") == B


@pytest.mark.parametrize("redis", [{}, {"a": A, "b": B}])
def test_an_unknown_or_ambiguous_store_is_a_lookup_error(redis: dict[str, HostPort]) -> None:
    with pytest.raises(LookupError, match="no key-value store 'default'"):
        store_dependency(binding(**redis), "default")
