"""Prometheus metrics of the node agent.

Every metric lives in a `CollectorRegistry` the caller owns and passes around, never the global
one, so that two agents (or two tests) in one process do not share counters. Label sets are
bounded: namespace/app come from the apps placed on this node, node is fixed per agent, and
result/outcome/reason are closed enums.

Per-invocation metrics are recorded by the native data plane (lock-free, on its threads) and read
from it at scrape time by `NativeMetrics`, a custom collector that exports them under the names
below; the agent's own phases (pull, compile, placement) are ordinary prometheus-client metrics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .runtime.metrics import LATENCY_BUCKETS, MEMORY_BUCKETS, NativeRow, NativeSnapshot

# prometheus-client's own `le` formatting (untyped upstream), so our buckets read like its own.
_le = cast(Callable[[float], str], floatToGoString)

APP_LABELS = ("namespace", "app", "node")

PULL_RESULTS = ("hit", "miss")
COMPILE_RESULTS = ("compiled", "cache_load")

# (snapshot key, metric name, help, bucket bounds), in the order they are exported.
NATIVE_HISTOGRAMS: tuple[tuple[str, str, str, tuple[float, ...]], ...] = (
    (
        "instance_start",
        "shoal_instance_start_seconds",
        "Per-invocation instantiation time (store setup + instantiate).",
        LATENCY_BUCKETS,
    ),
    (
        "first_byte",
        "shoal_invocation_first_byte_seconds",
        "Time from request arrival to the first response byte.",
        LATENCY_BUCKETS,
    ),
    (
        "duration",
        "shoal_invocation_duration_seconds",
        "Wall time of one invocation, instantiation included.",
        LATENCY_BUCKETS,
    ),
    (
        "queue_wait",
        "shoal_invocation_queue_wait_seconds",
        "Time from arrival until the guest got an execution slot (admission and fair queue).",
        LATENCY_BUCKETS,
    ),
    (
        "instance_memory",
        "shoal_instance_memory_bytes",
        "Peak linear memory of each instance (all its memories, initial size included): what one "
        "invocation costs in memory.",
        MEMORY_BUCKETS,
    ),
)
OUTCOMES = ("ok", "exit", "trap", "timeout", "out_of_memory", "stdout_limit", "busy", "error")
REFUSAL_REASONS = ("concurrency", "memory")


class NativeMetrics(Collector):
    """Exports the data plane's per-app counters and histograms at scrape time."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.source: NativeSnapshot | None = None
        self.document = False
        """Set by the docs generator: export one placeholder app so label names show."""

    def _rows(self) -> Sequence[NativeRow]:
        if self.source is not None:
            return self.source()
        if not self.document:
            return ()
        hists = {key: ((0,) * (len(bounds) + 1), 0.0) for key, _, _, bounds in NATIVE_HISTOGRAMS}
        return [
            (
                "<namespace>",
                "<app>",
                hists,
                dict.fromkeys(OUTCOMES, 0),
                dict.fromkeys(REFUSAL_REASONS, 0),
                0,
                0,
            )
        ]

    def collect(self) -> Iterator[Any]:
        rows = self._rows()
        for key, name, doc, buckets in NATIVE_HISTOGRAMS:
            bounds = [*(_le(b) for b in buckets), "+Inf"]
            fam = HistogramMetricFamily(name, doc, labels=APP_LABELS)
            for ns, app, hists, *_ in rows:
                counts, total = hists[key]
                fam.add_metric([ns, app, self.node], list(zip(bounds, counts, strict=True)), total)
            yield fam
        invocations = CounterMetricFamily(
            "shoal_invocations", "Invocations by outcome.", labels=(*APP_LABELS, "outcome")
        )
        refusals = CounterMetricFamily(
            "shoal_admission_refusals",
            "Invocations refused before they ran: `concurrency` (the app's maxConcurrency) or "
            "`memory` (the agent's memory budget).",
            labels=(*APP_LABELS, "reason"),
        )
        active = GaugeMetricFamily(
            "shoal_instances_active", "Wasm instances currently running.", labels=APP_LABELS
        )
        denied = CounterMetricFamily(
            "shoal_outbound_http_denied",
            "Outbound HTTP requests of components refused: not in capabilities.allowedOutboundHosts, "
            "or only loopback/link-local/metadata addresses that no pattern names literally.",
            labels=APP_LABELS,
        )
        for ns, app, _, outcomes, refused, running, outbound_denied in rows:
            for outcome in OUTCOMES:
                if outcomes.get(outcome) or self.document:
                    invocations.add_metric([ns, app, self.node, outcome], outcomes.get(outcome, 0))
            for reason in REFUSAL_REASONS:  # zeros too: a refusal rate of 0 is worth a panel line
                refusals.add_metric([ns, app, self.node, reason], refused.get(reason, 0))
            active.add_metric([ns, app, self.node], running)
            denied.add_metric([ns, app, self.node], outbound_denied)
        yield invocations
        yield refusals
        yield active
        yield denied


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
        self.placement_cold_start_seconds = hist(
            "shoal_placement_cold_start_seconds", "Time from an app being placed on this node to ready."
        )
        self.native = NativeMetrics(self.node)
        r.register(self.native)

    def for_app(self, namespace: str, app: str) -> AppMetrics:
        return AppMetrics(parent=self, labels=(namespace, app, self.node))

    def forget_app(self, namespace: str, app: str) -> None:
        """Drop an app's series once it left this node. Apps come and go all day; without this every
        app ever placed kept ~100 series per agent, and the scrape grew without bound (the chaos
        soak counted ~180 new series per app created)."""
        labels = (namespace, app, self.node)
        for hist, results in (
            (self.artifact_pull_seconds, PULL_RESULTS),
            (self.module_compile_seconds, COMPILE_RESULTS),
        ):
            for result in results:
                with contextlib.suppress(KeyError):
                    hist.remove(*labels, result)
        with contextlib.suppress(KeyError):
            self.placement_cold_start_seconds.remove(*labels)


@dataclass
class AppMetrics:
    """The agent-side metrics of one app (its invocations are counted by the data plane)."""

    parent: AgentMetrics
    labels: tuple[str, str, str]

    def compile(self, result: str, seconds: float) -> None:
        self.parent.module_compile_seconds.labels(*self.labels, result).observe(seconds)
