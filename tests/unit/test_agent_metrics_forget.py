"""An app that left the node leaves the agent's scrape: series stay bounded under churn."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from shoal_agent.metrics import AgentMetrics

pytestmark = pytest.mark.unit


def test_forget_app_drops_its_series_and_keeps_the_others() -> None:
    m = AgentMetrics("n1")
    for app in ("gone", "kept"):
        m.artifact_pull_seconds.labels("ns", app, "n1", "miss").observe(0.1)
        m.for_app("ns", app).compile("compiled", 0.2)
        m.placement_cold_start_seconds.labels("ns", app, "n1").observe(0.3)
    m.forget_app("ns", "gone")
    m.forget_app("ns", "never-placed")  # nothing to drop: no error
    text = generate_latest(m.registry).decode()
    assert 'app="gone"' not in text
    assert text.count('app="kept"') > 0
