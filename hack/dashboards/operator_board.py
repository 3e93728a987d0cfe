"""The "Shoal / operator" dashboard: scheduling latency, reconciles and placements."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards.panels import PanelSet, datasource_variable, query_variable
from dashboards.promql import OPERATOR_JOB, QUANTILES, RATE, matchers, quantile

UID = "shoal-operator"
JOB = matchers(f'job="{OPERATOR_JOB}"')
PLACEMENTS = matchers(f'job="{OPERATOR_JOB}"', 'node=~"$node"')


def build(panels: PanelSet) -> dashboard.Dashboard:
    board = (
        dashboard.Dashboard("Shoal / operator")
        .uid(UID)
        .description("The Shoal operator: how fast WasmApps are scheduled and whether reconciles fail.")
        .tags(["shoal", "operator"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(datasource_variable())
        .with_variable(query_variable("node", "Node", "label_values(shoal_operator_placements, node)"))
    )
    board = (
        board.with_row(panels.row("Overview"))
        .with_panel(
            panels.stat(
                "Leader replicas",
                "Replicas holding the shoal-operator Lease; anything but 1 is trouble.",
                "short",
                f"sum(shoal_operator_leader{JOB})",
            )
        )
        .with_panel(
            panels.stat(
                "WasmApps", "WasmApps the leader knows.", "short", f"max(shoal_operator_wasmapps{JOB})"
            )
        )
        .with_panel(
            panels.stat(
                "Unschedulable apps",
                "WasmApps with replicas that found no node.",
                "short",
                f"max(shoal_operator_unschedulable_apps{JOB})",
            )
        )
        .with_panel(
            panels.stat(
                "Reconcile errors (1h)",
                "Failed and retried reconciles over the last hour.",
                "short",
                f"sum(increase(shoal_operator_reconcile_errors_total{JOB}[1h]))",
            )
        )
    )
    board = (
        board.with_row(panels.row("Scheduling"))
        .with_panel(
            panels.timeseries(
                "Scheduling latency",
                "From a new WasmApp generation to its placements being written.",
                "s",
                [
                    (quantile(q, "shoal_operator_scheduling_latency_seconds", JOB), f"p{round(q * 100)}")
                    for q in QUANTILES
                ],
            )
        )
        .with_panel(
            panels.timeseries(
                "Reconcile duration and decision time",
                "p99 of a reconcile batch, and of the scheduler core's decision per app.",
                "s",
                [
                    (quantile(0.99, "shoal_operator_reconcile_duration_seconds", JOB), "reconcile p99"),
                    (quantile(0.99, "shoal_operator_scheduler_decision_seconds", JOB), "decision p99"),
                ],
            )
        )
        .with_panel(
            panels.timeseries(
                "Reconcile errors by reason",
                "Reconciles of one WasmApp that failed and were retried.",
                "ops",
                [
                    (
                        f"sum by (reason) (rate(shoal_operator_reconcile_errors_total{JOB}[{RATE}]))",
                        "{{reason}}",
                    )
                ],
            )
        )
        .with_panel(
            panels.timeseries(
                "Placements per node",
                "WasmPlacements the leader has written per node.",
                "short",
                [
                    (
                        f"max by (node) (shoal_operator_placements{PLACEMENTS})",
                        "{{node}}",
                    )
                ],
            )
        )
    )
    return board
