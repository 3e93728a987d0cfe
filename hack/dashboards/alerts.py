"""Alert rules, written once: rendered into the chart's PrometheusRule (thresholds become values) and
listed with their default thresholds for tests that evaluate them on a real Prometheus."""

from __future__ import annotations

from dataclasses import dataclass
from string import Template

from dashboards.promql import AGENT_JOB, OPERATOR_JOB, matchers, quantile, ratio


@dataclass(frozen=True)
class Threshold:
    """A number an operator may tune: `name` is its key under metrics.prometheusRule.thresholds."""

    name: str
    default: str
    description: str


THRESHOLDS = (
    Threshold("instanceStartP99Seconds", "0.05", "p99 of per-invocation instantiation, seconds"),
    Threshold("placementColdStartP99Seconds", "30", "p99 of placement to ready on a node, seconds"),
    Threshold("errorRatio", "0.05", "share of invocations not ending `ok`"),
    Threshold("minRequestRate", "0.1", "requests per second below which the error ratio is not judged"),
    Threshold("agentDownFor", "5m", "how long an agent may be unscrapeable"),
)


@dataclass(frozen=True)
class Alert:
    name: str
    expr: Template  # $threshold names stand for THRESHOLDS
    for_: str
    severity: str
    summary: str
    description: str  # may use Prometheus' {{ $labels.x }} / {{ $value }} templating

    def render(self, values: dict[str, str]) -> tuple[str, str]:
        """(expr, for) with `values` substituted for the thresholds."""
        return self.expr.substitute(values), Template(self.for_).substitute(values)


_AGENT = matchers(f'job="{AGENT_JOB}"')
_OPERATOR = matchers(f'job="{OPERATOR_JOB}"')
_WINDOW = "10m"
_total = f"sum by (namespace, app) (rate(shoal_invocations_total[{_WINDOW}]))"
_errors = f'sum by (namespace, app) (rate(shoal_invocations_total{{outcome!="ok"}}[{_WINDOW}]))'

ALERTS = (
    Alert(
        name="ShoalAgentDown",
        expr=Template(f"up{_AGENT} == 0"),
        for_="$agentDownFor",
        severity="critical",
        summary="A Shoal node agent is down",
        description="The agent on node {{ $labels.node }} ({{ $labels.pod }}) has not been scraped; "
        "Wasm apps placed there are not served.",
    ),
    Alert(
        name="ShoalOperatorNoLeader",
        expr=Template(f"(sum(shoal_operator_leader{_OPERATOR}) or vector(0)) < 1"),
        for_="5m",
        severity="critical",
        summary="No Shoal operator replica is leading",
        description="No replica holds the shoal-operator Lease: WasmApps are not being scheduled.",
    ),
    Alert(
        name="ShoalInstanceStartP99High",
        expr=Template(
            f"{quantile(0.99, 'shoal_instance_start_seconds', '', by='namespace, app', window=_WINDOW)}"
            " > $instanceStartP99Seconds"
        ),
        for_="15m",
        severity="warning",
        summary="Wasm cold starts are slow",
        description="p99 instantiation of {{ $labels.namespace }}/{{ $labels.app }} is "
        "{{ $value | humanizeDuration }}.",
    ),
    Alert(
        name="ShoalPlacementColdStartP99High",
        expr=Template(
            f"{quantile(0.99, 'shoal_placement_cold_start_seconds', '', by='namespace, app', window='30m')}"
            " > $placementColdStartP99Seconds"
        ),
        for_="15m",
        severity="warning",
        summary="Wasm apps take long to become ready on new nodes",
        description="p99 placement cold start (pull + compile) of {{ $labels.namespace }}/{{ $labels.app }} "
        "is {{ $value | humanizeDuration }}.",
    ),
    Alert(
        name="ShoalInvocationErrorRatioHigh",
        expr=Template(f"{ratio(_errors, _total)} > $errorRatio and {_total} > $minRequestRate"),
        for_="10m",
        severity="warning",
        summary="Many Wasm invocations fail",
        description="{{ $value | humanizePercentage }} of invocations of {{ $labels.namespace }}/"
        "{{ $labels.app }} did not end ok.",
    ),
)


def default_thresholds() -> dict[str, str]:
    return {t.name: t.default for t in THRESHOLDS}
