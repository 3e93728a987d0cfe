"""The list of dashboards, built fresh on each call (builders are mutable)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards import operator_board, workloads
from dashboards.panels import PanelSet


def built_dashboards() -> dict[str, tuple[dashboard.Dashboard, PanelSet]]:
    """uid -> (dashboard builder, the PanelSet that recorded its queries)."""
    out: dict[str, tuple[dashboard.Dashboard, PanelSet]] = {}
    for module in (workloads, operator_board):
        panels = PanelSet()
        out[module.UID] = (module.build(panels), panels)
    return out
