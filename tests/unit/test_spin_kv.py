"""Which Redis dependency a Spin key-value store label, or a Spin Redis address, names."""

from __future__ import annotations

import pytest

from shoal_agent.capabilities.bindings import AppBinding
from shoal_agent.capabilities.namespacing import KeySpace
from shoal_agent.capabilities.pools import HostPort
from shoal_agent.capabilities.spin_kv import redis_dependency, store_dependency

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


def test_spin_redis_opens_only_a_declared_dependency_by_name() -> None:
    assert redis_dependency(binding(cache=A), "redis://cache") == "cache"
    assert redis_dependency(binding(cache=A), "redis://cache:6379/0") == "cache"
    for address in ("redis://10.0.0.1:6379", "redis://other", "http://cache", "cache"):
        with pytest.raises(LookupError, match="not redis://<dependency>"):
            redis_dependency(binding(cache=A), address)
