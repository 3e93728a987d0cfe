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


def causes(outcomes: Iterable[Outcome], *, start: float = -math.inf) -> str:
    """The failures by cause, most frequent first: "503 x12, ConnectionRefusedError x3" ("" for none)."""
    counts: dict[str, int] = {}
    for o in outcomes:
        if o.started >= start and not o.ok:
            key = str(o.status) if o.status else o.error
            counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} x{n}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


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
    """`figure <= limit` (or `>=` with `at_least`); a scenario's verdict is whether all its goals hold."""

    figure: str
    limit: float
    at_least: bool = False

    def met(self, value: float | None) -> bool:
        if value is None or math.isnan(value):
            return False
        return value >= self.limit if self.at_least else value <= self.limit

    def __str__(self) -> str:
        return f"{self.figure} {'>=' if self.at_least else '<='} {fmt(self.limit)}"


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
            met = ", ".join(str(g) for g in self.goals) or "no goal set"
            return f"{self.scenario}: PASS ({met})" + "".join(f"; {n}" for n in self.notes)
        why = ", ".join(
            f"{g.figure}={fmt(self.figures.get(g.figure))} {'<' if g.at_least else '>'} {fmt(g.limit)}"
            for g in missed
        )
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
            limit = "" if goal is None else f"{'>=' if goal.at_least else '<='} {fmt(goal.limit)}"
            rows.append((r.scenario, name, fmt(value), limit, mark))
        if r.error:
            rows.append((r.scenario, "error", r.error[:60], "", "ERROR"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    out.insert(1, "-" * len(out[0]))
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class Op:
    """One step of the operator kill storm's burst: what the driver asks the apiserver for."""

    verb: str
    """create, scale, update or delete"""
    app: str
    replicas: int = 1
    generation: int = 0
    """For update: a value that changes the template (an env var), so placements must roll."""


def storm_plan(count: int, *, apps: int, seed: int, max_replicas: int = 3) -> list[Op]:
    """`count` operations over a pool of `apps` names: creates of absent apps, then scales, updates
    and deletes of present ones, in a seeded random order (the same plan every run)."""
    import random

    rng = random.Random(seed)
    present: dict[str, int] = {}
    plan: list[Op] = []
    for _ in range(count):
        absent = [f"storm-{i}" for i in range(apps) if f"storm-{i}" not in present]
        if absent and (not present or rng.random() < 0.4):
            name = rng.choice(absent)
            present[name] = rng.randint(1, max_replicas)
            plan.append(Op("create", name, present[name]))
            continue
        name = rng.choice(sorted(present))
        verb = rng.choice(("scale", "update", "update", "delete"))
        if verb == "scale":
            present[name] = rng.randint(1, max_replicas)
            plan.append(Op("scale", name, present[name]))
        elif verb == "update":
            plan.append(Op("update", name, present[name], generation=len(plan)))
        else:
            del present[name]
            plan.append(Op("delete", name))
    return plan


def placement_audit(desired: dict[str, int], placements: Iterable[tuple[str, str]]) -> tuple[int, int]:
    """(duplicates, lost) for live placements given as (app, node): duplicates are placements beyond
    an app's replicas, for apps that no longer exist, or a second one on a node; lost are replicas
    without a placement."""
    by_app: dict[str, list[str]] = {}
    for app, node in placements:
        by_app.setdefault(app, []).append(node)
    duplicates = lost = 0
    for app, nodes in by_app.items():
        want = desired.get(app, 0)
        duplicates += max(0, len(nodes) - want) + (len(nodes) - len(set(nodes)) if len(nodes) <= want else 0)
    for app, want in desired.items():
        lost += max(0, want - len(by_app.get(app, ())))
    return duplicates, lost


def metric_sum(text: str, name: str) -> float:
    """Sum of every sample of `name` (all label sets) in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def series_count(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


@dataclass(frozen=True, slots=True)
class ProcSample:
    rss_kib: int
    fds: int
    threads: int


def parse_proc_status(status: str) -> tuple[int, int]:
    """(VmRSS in KiB, Threads) from /proc/<pid>/status."""
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])
