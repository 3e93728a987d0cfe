"""Every PromQL expression Shoal ships (dashboard panels, variables and alerts), for tests."""

from __future__ import annotations

from dataclasses import dataclass

from dashboards.alerts import ALERTS, default_thresholds
from dashboards.boards import built_dashboards
from dashboards.promql import resolve_grafana_variables


@dataclass(frozen=True)
class Expression:
    source: str  # "<dashboard uid>: <panel title>" or "alert: <name>"
    expr: str  # as shipped (Grafana variables included)
    runnable: str  # with Grafana variables and thresholds replaced: what Prometheus can evaluate


def all_expressions() -> list[Expression]:
    """Panel queries and alert expressions with default thresholds, in a stable order."""
    out: list[Expression] = []
    for uid, (_, panels) in built_dashboards().items():
        out += [Expression(f"{uid}: {title}", e, resolve_grafana_variables(e)) for title, e in panels.exprs]
    values = default_thresholds()
    for alert in ALERTS:
        expr, _ = alert.render(values)
        out.append(Expression(f"alert: {alert.name}", expr, expr))
    return out
