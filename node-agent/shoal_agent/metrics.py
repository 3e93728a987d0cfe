"""Prometheus metrics of the node agent.

Every metric lives in a `CollectorRegistry` the caller owns and passes around, never the global
one, so that two agents (or two tests) in one process do not share counters. Label sets are
bounded: namespace/app come from the apps placed on this node, node is fixed per agent, and
result/outcome are closed enums.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

# 10 us .. 10 s in a 1-2.5-5 progression: fine enough to tell a 60 us instantiation from a 150 us one.
LATENCY_BUCKETS: tuple[float, ...] = (
    *(m * 10.0**e for e in range(-5, 1) for m in (1.0, 2.5, 5.0)),
    10.0,
)

APP_LABELS = ("namespace", "app", "node")

PULL_RESULTS = ("hit", "miss")
COMPILE_RESULTS = ("compiled", "cache_load")


@dataclass
class AgentMetrics:
    """All metrics of one agent, registered in `registry`."""

    node: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        # process_resident_memory_bytes & co.: the dashboards' memory-per-node panel reads it.
        ProcessCollector(registry=r)

        def hist(name: str, doc: str, extra: tuple[str, ...] = ()) -> Histogram:
            return Histogram(name, doc, (*APP_LABELS, *extra), registry=r, buckets=LATENCY_BUCKETS)

        self.artifact_pull_seconds = hist(
            "shoal_artifact_pull_seconds",
            "Time to make an app's Wasm artifact available locally.",
            ("result",),
        )
        self.module_compile_seconds = hist(
            "shoal_module_compile_seconds",
            "Time to obtain a compiled module: compiled from Wasm or loaded from the on-disk cache.",
            ("result",),
        )
        self.instance_start_seconds = hist(
            "shoal_instance_start_seconds", "Per-invocation instantiation time (store setup + instantiate)."
        )
        self.invocation_first_byte_seconds = hist(
            "shoal_invocation_first_byte_seconds", "Time from request arrival to the first response byte."
        )
        self.placement_cold_start_seconds = hist(
            "shoal_placement_cold_start_seconds", "Time from an app being placed on this node to ready."
        )
        self.invocation_duration_seconds = hist(
            "shoal_invocation_duration_seconds", "Wall time of one invocation, instantiation included."
        )
        self.invocations_total = Counter(
            "shoal_invocations_total", "Invocations by outcome.", (*APP_LABELS, "outcome"), registry=r
        )
        self.instances_active = Gauge(
            "shoal_instances_active", "Wasm instances currently running.", APP_LABELS, registry=r
        )

    def for_app(self, namespace: str, app: str) -> AppMetrics:
        """Label children bound once per app, so the hot path does no label lookups."""
        labels = (namespace, app, self.node)
        return AppMetrics(
            parent=self,
            labels=labels,
            instance_start=self.instance_start_seconds.labels(*labels),
            duration=self.invocation_duration_seconds.labels(*labels),
            first_byte=self.invocation_first_byte_seconds.labels(*labels),
            active=self.instances_active.labels(*labels),
        )


@dataclass
class AppMetrics:
    """Pre-bound metric children of one app."""

    parent: AgentMetrics
    labels: tuple[str, str, str]
    instance_start: Histogram
    duration: Histogram
    first_byte: Histogram
    active: Gauge
    _outcomes: dict[str, Counter] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        child = self._outcomes.get(outcome)
        if child is None:
            child = self.parent.invocations_total.labels(*self.labels, outcome)
            self._outcomes[outcome] = child
        child.inc()

    def compile(self, result: str, seconds: float) -> None:
        self.parent.module_compile_seconds.labels(*self.labels, result).observe(seconds)
