"""Shoal's Grafana dashboards and Prometheus alerts as code.

The PromQL lives here once: the dashboards (grafana-foundation-sdk builders) and the PrometheusRule
template are both generated from it into charts/shoal/ by hack/gen_dashboards.py, and
`all_expressions()` hands every query to tests that evaluate them against a real Prometheus.
"""

from dashboards.alerts import ALERTS, THRESHOLDS, Alert, Threshold
from dashboards.expressions import Expression, all_expressions
from dashboards.render import expected_files

__all__ = [
    "ALERTS",
    "THRESHOLDS",
    "Alert",
    "Expression",
    "Threshold",
    "all_expressions",
    "expected_files",
]
