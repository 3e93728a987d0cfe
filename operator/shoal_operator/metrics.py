"""The operator's Prometheus metrics (shoal_operator_*), on their own registry."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class OperatorMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total & co.: what the operator costs
        self.reconcile_seconds = Histogram(
            "shoal_operator_reconcile_duration_seconds",
            "Time to reconcile one batch of WasmApps (decide, write placements and status).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.reconcile_errors = Counter(
            "shoal_operator_reconcile_errors_total",
            "Reconciles of one WasmApp that failed and were retried.",
            ["reason"],
            registry=r,
        )
        for reason in ("batch", "api"):  # a healthy operator exports zeros, not "no data"
            self.reconcile_errors.labels(reason=reason)
        self.scheduling_latency = Histogram(
            "shoal_operator_scheduling_latency_seconds",
            "From seeing a new WasmApp generation to its placements being written.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.decision_seconds = Histogram(
            "shoal_operator_scheduler_decision_seconds",
            "Scheduler core time per app decision (batch time divided by its apps).",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1),
            registry=r,
        )
        self.events_dropped = Counter(
            "shoal_operator_events_dropped_total",
            "Events not posted because the background sender's queue was full.",
            registry=r,
        )
        self.placements = Gauge("shoal_operator_placements", "WasmPlacements per node.", ["node"], registry=r)
        self.apps = Gauge("shoal_operator_wasmapps", "WasmApps known to the operator.", registry=r)
        self.unschedulable = Gauge(
            "shoal_operator_unschedulable_apps", "WasmApps with replicas that found no node.", registry=r
        )
        self.leader = Gauge("shoal_operator_leader", "1 while this replica is the leader.", registry=r)
