"""PromQL building blocks shared by panels and alerts, so a metric or label is spelled in one place.

Job names are fixed by the chart's ServiceMonitors (a relabeling sets `job`), not derived from the
release name, so the expressions do not depend on how the chart was installed.
"""

from __future__ import annotations

AGENT_JOB = "shoal-agent"
OPERATOR_JOB = "shoal-operator"

# Grafana template variables of the workloads dashboard, as label matchers.
APP_SELECTOR = 'namespace=~"$namespace", app=~"$app", node=~"$node"'
RATE = "$__rate_interval"
QUANTILES = (0.5, 0.95, 0.99)

# Values that stand in for Grafana's variables when an expression runs outside Grafana.
GRAFANA_DEFAULTS = {
    "$__rate_interval": "5m",
    "$namespace": ".*",
    "$app": ".*",
    "$node": ".*",
}


def matchers(*parts: str) -> str:
    """`{a, b}` from non-empty matcher strings."""
    return "{" + ", ".join(p for p in parts if p) + "}"


def quantile(q: float, metric: str, selector: str, *, by: str = "", window: str = RATE) -> str:
    """histogram_quantile over a rate of `metric`'s buckets, aggregated by `le` (and `by`)."""
    keep = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({keep}) (rate({metric}_bucket{selector}[{window}])))"


def ratio(numerator: str, denominator: str) -> str:
    """A ratio that is empty, not NaN or +Inf, while nothing happens."""
    return f"({numerator}) / ({denominator} > 0)"


def resolve_grafana_variables(expr: str) -> str:
    """Replace Grafana's `$variables` with values Prometheus accepts (longest names first)."""
    for name in sorted(GRAFANA_DEFAULTS, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_DEFAULTS[name])
    return expr
