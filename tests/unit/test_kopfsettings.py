"""The operator's kopf settings skip change detection, which is only sound with event handlers."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from shoal_operator.cache import ClusterCache
from shoal_operator.handlers import register
from shoal_operator.kopfsettings import EventsOnlyDiffBase, operator_settings

pytestmark = pytest.mark.unit


def test_no_essence_is_built_or_stored() -> None:
    settings = operator_settings()
    storage = settings.persistence.diffbase_storage
    assert isinstance(storage, EventsOnlyDiffBase)
    body = kopf.Body({"metadata": {"name": "x"}, "spec": {"big": list(range(1000))}})
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
    assert settings.peering.standalone


def test_the_operator_registers_only_event_handlers() -> None:
    """EventsOnlyDiffBase would silently break an on.create/update/field handler: keep it so."""
    registry = kopf.OperatorRegistry()
    reconciler: Any = object()
    register(registry, cache=ClusterCache(), reconciler=reconciler)
    assert registry._watching.get_all_handlers()
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()
