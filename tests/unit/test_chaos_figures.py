"""The chaos suite's arithmetic (hack/chaos/figures.py): every figure it prints comes from these."""

from __future__ import annotations

import math

import pytest

from chaos.figures import (
    Goal,
    Outcome,
    Result,
    RouteSample,
    failed,
    first_time,
    metric_sum,
    parse_proc_status,
    placement_audit,
    quantile,
    series_count,
    slope_per_minute,
    storm_plan,
    table,
)

pytestmark = pytest.mark.unit

A, B = ("10.0.0.1", 80), ("10.0.0.2", 80)


def samples(*points: tuple[float, set[tuple[str, int]]]) -> list[RouteSample]:
    return [RouteSample(t, frozenset(a)) for t, a in points]


def test_first_time_is_when_the_address_left_for_good() -> None:
    s = samples((0, {A, B}), (1, {B}), (2, {A, B}), (3, {B}), (4, {B}))
    assert first_time(s, after=0.5, present=False, address=A) == 3  # it came back at 2: not yet gone
    assert first_time(s, after=0.5, present=True, address=B) == 1
    assert first_time(s, after=0.5, present=True, address=A) is None  # not routed at the end


def test_failed_counts_within_the_window() -> None:
    outcomes = [Outcome(t, A, status, 0.001) for t, status in ((0, 200), (1, 0), (2, 503), (3, 200))]
    assert failed(outcomes) == 2
    assert failed(outcomes, start=1.5) == 1


def test_quantile_and_slope() -> None:
    assert quantile([3, 1, 2, 4], 0.5) == 2
    assert quantile([3, 1, 2, 4], 0.99) == 4
    assert math.isnan(quantile([], 0.5))
    assert slope_per_minute([(0, 10), (30, 15), (60, 20)]) == pytest.approx(10)
    assert slope_per_minute([(0, 5)]) == 0
    assert slope_per_minute([(1, 5), (1, 7)]) == 0


def test_verdicts_say_which_goal_was_missed() -> None:
    ok = Result("s", {"x_s": 1.0}, [Goal("x_s", 3)])
    assert ok.passed and ok.verdict().startswith("s: PASS")
    missed = Result("s", {"x_s": 4.5, "y": None}, [Goal("x_s", 3), Goal("y", 0)])
    assert not missed.passed
    assert missed.verdict() == "s: GOAL MISSED (x_s=4.500 > 3, y=nan > 0)"
    assert Result("s", error="boom").verdict() == "s: ERROR boom"
    served = Result("s", {"n": 2}, [Goal("n", 3, at_least=True)])
    assert served.verdict() == "s: GOAL MISSED (n=2 < 3)"
    assert Result("s", {"n": 3}, [Goal("n", 3, at_least=True)]).verdict() == "s: PASS (n >= 3)"
    assert missed.lines() == ["x_s=4.500", "y=nan"]
    rendered = table([ok, missed])
    assert "MISSED" in rendered and rendered.splitlines()[0].split() == [
        "scenario",
        "figure",
        "value",
        "goal",
    ]


def test_storm_plan_is_seeded_and_consistent() -> None:
    plan = storm_plan(200, apps=30, seed=7)
    assert plan == storm_plan(200, apps=30, seed=7) and len(plan) == 200
    present: set[str] = set()
    for op in plan:
        if op.verb == "create":
            assert op.app not in present and 1 <= op.replicas <= 3
            present.add(op.app)
        else:
            assert op.app in present, op
            if op.verb == "delete":
                present.discard(op.app)
    assert {op.verb for op in plan} == {"create", "scale", "update", "delete"}


def test_placement_audit() -> None:
    desired = {"a": 2, "b": 1}
    assert placement_audit(desired, [("a", "n1"), ("a", "n2"), ("b", "n1")]) == (0, 0)
    assert placement_audit(desired, [("a", "n1"), ("a", "n2"), ("a", "n3"), ("gone", "n1")]) == (2, 1)
    assert placement_audit(desired, [("a", "n1"), ("a", "n1"), ("b", "n2")]) == (1, 0)


def test_metric_text_and_proc_status() -> None:
    text = (
        "# HELP x_total a\n# TYPE x_total counter\n"
        'x_total{a="1"} 2.0\nx_total{a="2"} 3\nx_total_other 100\nx_total 1e1\n'
    )
    assert metric_sum(text, "x_total") == 15
    assert series_count(text) == 4
    assert parse_proc_status("Name:\tpython\nVmRSS:\t  12345 kB\nThreads:\t7\n") == (12345, 7)
