"""The "Shoal / Wasm workloads" dashboard: what the node agents see, per namespace, app and node."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards.panels import PanelSet, datasource_variable, query_variable
from dashboards.promql import (
    AGENT_JOB,
    APP_SELECTOR,
    QUANTILES,
    RATE,
    matchers,
    quantile,
    ratio,
)

UID = "shoal-workloads"
SEL = matchers(APP_SELECTOR)

# (panel title, metric, split by, description): the phases of a cold start in the order they happen.
COLD_START_PHASES = (
    (
        "Artifact pull",
        "shoal_artifact_pull_seconds",
        "result",
        "Making the module available locally: `miss` went to the registry, `hit` found it in the node cache.",
    ),
    (
        "Compile / cache load",
        "shoal_module_compile_seconds",
        "result",
        "Obtaining a compiled module: `compiled` ran Cranelift, `cache_load` deserialized the on-disk cache.",
    ),
    ("Instantiate", "shoal_instance_start_seconds", "", "Per-invocation store setup and instantiation."),
    ("First byte", "shoal_invocation_first_byte_seconds", "", "Request arrival to the first response byte."),
    (
        "Placement cold start",
        "shoal_placement_cold_start_seconds",
        "",
        "From an app being placed on a node to that node serving it: pull + compile + warm-up.",
    ),
)


def _quantile_targets(metric: str, by: str) -> list[tuple[str, str]]:
    suffix = f" {{{{{by}}}}}" if by else ""
    return [(quantile(q, metric, SEL, by=by), f"p{round(q * 100)}{suffix}") for q in QUANTILES]


def build(panels: PanelSet) -> dashboard.Dashboard:
    board = (
        dashboard.Dashboard("Shoal / Wasm workloads")
        .uid(UID)
        .description("Cold starts, invocations, caches and instances of WebAssembly apps run by Shoal.")
        .tags(["shoal", "wasm"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(datasource_variable())
        .with_variable(
            query_variable("namespace", "Namespace", "label_values(shoal_instances_active, namespace)")
        )
        .with_variable(
            query_variable("app", "App", 'label_values(shoal_instances_active{namespace=~"$namespace"}, app)')
        )
        .with_variable(query_variable("node", "Node", f'label_values(up{{job="{AGENT_JOB}"}}, node)'))
    )

    board = board.with_row(panels.row("Cold starts by phase"))
    for title, metric, by, description in COLD_START_PHASES:
        board = board.with_panel(
            panels.timeseries(title, description, "s", _quantile_targets(metric, by), width=8)
        )
    board = board.with_panel(
        panels.heatmap(
            "Instance start time",
            "Distribution of per-invocation instantiation time (histogram buckets).",
            f"sum by (le) (increase(shoal_instance_start_seconds_bucket{SEL}[{RATE}]))",
        )
    )

    board = board.with_row(panels.row("Invocations"))
    total = f"sum by (namespace, app) (rate(shoal_invocations_total{SEL}[{RATE}]))"
    errors_sel = matchers(APP_SELECTOR, 'outcome!="ok"')
    errors = f"sum by (namespace, app) (rate(shoal_invocations_total{errors_sel}[{RATE}]))"
    board = (
        board.with_panel(
            panels.timeseries(
                "Invocations per app", "All outcomes.", "reqps", [(total, "{{namespace}}/{{app}}")]
            )
        )
        .with_panel(
            panels.timeseries(
                "Errors per app by outcome",
                "Every outcome but `ok`: exit, trap, timeout, out_of_memory, stdout_limit, busy, error.",
                "reqps",
                [
                    (
                        "sum by (namespace, app, outcome)"
                        f" (rate(shoal_invocations_total{errors_sel}[{RATE}]))",
                        "{{namespace}}/{{app}} {{outcome}}",
                    )
                ],
            )
        )
        .with_panel(
            panels.timeseries(
                "Error ratio per app",
                "Share of invocations that did not end `ok`.",
                "percentunit",
                [(ratio(errors, total), "{{namespace}}/{{app}}")],
            )
        )
        .with_panel(
            panels.timeseries(
                "Admission refusals per app",
                "Requests answered 503 before a guest ran: `memory` (the agent's memory budget was taken "
                "by running instances) or `concurrency` (the app's maxConcurrency).",
                "reqps",
                [
                    (
                        "sum by (namespace, app, reason)"
                        f" (rate(shoal_admission_refusals_total{SEL}[{RATE}]))",
                        "{{namespace}}/{{app}} {{reason}}",
                    )
                ],
            )
        )
    )

    def count(metric: str, result: str = "") -> str:
        sel = matchers(APP_SELECTOR, f'result="{result}"' if result else "")
        return f"sum(rate({metric}_count{sel}[{RATE}]))"

    board = board.with_panel(
        panels.timeseries(
            "Cache hit ratio",
            "Artifact: pulls served from the node's blob cache. Compiled module: loads from the on-disk "
            "compile cache instead of compiling.",
            "percentunit",
            [
                (
                    ratio(count("shoal_artifact_pull_seconds", "hit"), count("shoal_artifact_pull_seconds")),
                    "artifact",
                ),
                (
                    ratio(
                        count("shoal_module_compile_seconds", "cache_load"),
                        count("shoal_module_compile_seconds"),
                    ),
                    "compiled module",
                ),
            ],
        )
    )

    board = board.with_panel(
        panels.timeseries(
            "Memory per instance",
            "Peak linear memory of one instance (shoal_instance_memory_bytes), per app: what each "
            "concurrent request costs the agent's memory budget in fact, next to the app's limit.",
            "bytes",
            [
                (
                    quantile(q, "shoal_instance_memory_bytes", SEL, by="namespace, app"),
                    f"p{round(q * 100)} {{{{namespace}}}}/{{{{app}}}}",
                )
                for q in (0.5, 0.99)
            ],
        )
    )

    board = board.with_row(panels.row("Nodes"))
    # The agent's own process metrics: no cAdvisor or kube-state-metrics needed, and `node` is the
    # label the ServiceMonitor already sets.
    memory = f'max by (node) (process_resident_memory_bytes{{job="{AGENT_JOB}", node=~"$node"}})'
    return board.with_panel(
        panels.timeseries(
            "Instances per node",
            "Wasm instances running now (shoal_instances_active).",
            "short",
            [(f"sum by (node) (shoal_instances_active{SEL})", "{{node}}")],
        )
    ).with_panel(
        panels.timeseries(
            "Agent memory per node",
            "Resident memory of the agent process (process_resident_memory_bytes), which includes the "
            "linear memory of every instance it runs.",
            "bytes",
            [(memory, "{{node}}")],
        )
    )
