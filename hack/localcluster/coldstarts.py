"""The demo's cold-start table: what the agents observed, read from their histograms in Prometheus.

A histogram's `_count` and `_sum` are exact, so every cell shows the count and the mean. Quantiles
from `histogram_quantile` are interpolated inside a bucket: with one sample in the 50-100 ms bucket it
says "p50 75 ms, p99 99.5 ms" whatever the sample was. So they are shown only for cells with at
least `MIN_QUANTILE_SAMPLES` observations, in a table of their own labelled as bucket estimates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

MIN_QUANTILE_SAMPLES = 20


class Queryable(Protocol):
    def query(self, expr: str) -> list[dict[str, object]]: ...


@dataclass(frozen=True)
class Observed:
    count: int
    mean: float
    p50: float | None = None  # bucket estimates, only with MIN_QUANTILE_SAMPLES or more
    p99: float | None = None


def observed(prom: Queryable, metric: str, namespace: str) -> dict[str, Observed]:
    """app -> what `metric` (a histogram) recorded for it since the agents started."""
    sel = f'{{namespace="{namespace}"}}'

    def by_app(expr: str) -> dict[str, float]:
        out = {}
        for series in prom.query(expr):
            labels, value = series["metric"], series["value"]
            assert isinstance(labels, dict) and isinstance(value, list)
            out[str(labels["app"])] = float(value[1])
        return out

    counts = by_app(f"sum by (app) ({metric}_count{sel})")
    sums = by_app(f"sum by (app) ({metric}_sum{sel})")
    quantiles = {
        q: by_app(f"histogram_quantile({q}, sum by (le, app) ({metric}_bucket{sel}))") for q in (0.5, 0.99)
    }
    return summarize(counts, sums, quantiles)


def summarize(
    counts: Mapping[str, float], sums: Mapping[str, float], quantiles: Mapping[float, Mapping[str, float]]
) -> dict[str, Observed]:
    out = {}
    for app, n in counts.items():
        if n < 1:
            continue
        many = n >= MIN_QUANTILE_SAMPLES
        p50, p99 = quantiles.get(0.5, {}).get(app), quantiles.get(0.99, {}).get(app)
        out[app] = Observed(
            count=round(n),
            mean=sums.get(app, math.nan) / n,
            p50=p50 if many else None,
            p99=p99 if many else None,
        )
    return out


def fmt(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def table(phases: Sequence[str], columns: Mapping[str, Mapping[str, Observed]]) -> str:
    """Mean and count per app and phase; then p50/p99 where there were enough samples."""
    apps = sorted({app for col in columns.values() for app in col})
    width = 22
    first = max([12, *(len(app) + 2 for app in apps)])  # hello-c-component is longer than 12
    header = f"{'app':<{first}}" + "".join(f"{name + ' mean (n)':>{width}}" for name in phases)
    rows = ["observed: mean of every sample (count)", header, "-" * len(header)]
    for app in apps:
        cells = []
        for name in phases:
            o = columns.get(name, {}).get(app)
            cells.append(f"{(fmt(o.mean) + f' ({o.count})') if o else '-':>{width}}")
        rows.append(f"{app:<{first}}" + "".join(cells))
    estimated = [
        (app, name, o)
        for app in apps
        for name in phases
        if (o := columns.get(name, {}).get(app)) is not None and o.p50 is not None
    ]
    rows.append("")
    if not estimated:
        rows.append(f"(no phase of any app has {MIN_QUANTILE_SAMPLES}+ samples: no quantiles estimated)")
        return "\n".join(rows)
    rows.append(f"estimated from histogram buckets (histogram_quantile), where n >= {MIN_QUANTILE_SAMPLES}:")
    rows.append(f"{'app':<{first}}{'phase':<14}{'n':>8}{'p50':>12}{'p99':>12}")
    for app, name, o in estimated:
        rows.append(f"{app:<{first}}{name:<14}{o.count:>8}{fmt(o.p50):>12}{fmt(o.p99):>12}")
    return "\n".join(rows)
