"""The pure part of the chaos suite: figures from what the scenarios recorded, verdicts, the table.

Nothing here touches a process or a socket, so every figure's arithmetic has a unit test
(tests/unit/test_chaos_figures.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request of the load generator."""

    started: float
    """time.monotonic() when it was sent."""
    address: Address
    status: int
    """HTTP status; 0 when the connection failed or timed out."""
    seconds: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class RouteSample:
    """The ready addresses of an app's EndpointSlices, as read at `at` (monotonic)."""

    at: float
    addresses: frozenset[Address]


def first_time(
    samples: Sequence[RouteSample], *, after: float, present: bool, address: Address
) -> float | None:
    """The first sample at or after `after` in which `address` is (present) or is not (not present)
    routed, when it stays so in every later sample; None if that never happens."""
    found: float | None = None
    for sample in samples:
        if sample.at < after:
            continue
        if (address in sample.addresses) == present:
            if found is None:
                found = sample.at
        else:
            found = None
    return found


def failed(outcomes: Iterable[Outcome], *, start: float = -math.inf, end: float = math.inf) -> int:
    return sum(1 for o in outcomes if start <= o.started <= end and not o.ok)


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute; 0 for fewer than two distinct times."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60.0


@dataclass(frozen=True, slots=True)
class Goal:
    """`figure <= limit`; a scenario's verdict is whether all its goals hold."""

    figure: str
    limit: float

    def met(self, value: float | None) -> bool:
        return value is not None and not math.isnan(value) and value <= self.limit


@dataclass
class Result:
    scenario: str
    figures: dict[str, float | None] = field(default_factory=dict)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""
    """The scenario could not run to the end (a setup step failed): its figures are partial."""

    def missed(self) -> list[Goal]:
        return [g for g in self.goals if not g.met(self.figures.get(g.figure))]

    @property
    def passed(self) -> bool:
        return not self.error and not self.missed()

    def verdict(self) -> str:
        if self.error:
            return f"{self.scenario}: ERROR {self.error}"
        missed = self.missed()
        if not missed:
            met = ", ".join(f"{g.figure} <= {fmt(g.limit)}" for g in self.goals) or "no goal set"
            return f"{self.scenario}: PASS ({met})" + "".join(f"; {n}" for n in self.notes)
        why = ", ".join(f"{g.figure}={fmt(self.figures.get(g.figure))} > {fmt(g.limit)}" for g in missed)
        return f"{self.scenario}: GOAL MISSED ({why})" + "".join(f"; {n}" for n in self.notes)

    def lines(self) -> list[str]:
        return [f"{name}={fmt(value)}" for name, value in self.figures.items()]


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}"


def table(results: Sequence[Result]) -> str:
    """One row per figure: scenario, figure, value, goal, met."""
    rows = [("scenario", "figure", "value", "goal", "")]
    for r in results:
        goals = {g.figure: g for g in r.goals}
        for name, value in r.figures.items():
            goal = goals.get(name)
            mark = "" if goal is None else ("ok" if goal.met(value) else "MISSED")
            rows.append((r.scenario, name, fmt(value), f"<= {fmt(goal.limit)}" if goal else "", mark))
        if r.error:
            rows.append((r.scenario, "error", r.error[:60], "", "ERROR"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    out.insert(1, "-" * len(out[0]))
    return "\n".join(out)
