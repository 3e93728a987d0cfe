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
    quantile,
    slope_per_minute,
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
    assert missed.lines() == ["x_s=4.500", "y=nan"]
    rendered = table([ok, missed])
    assert "MISSED" in rendered and rendered.splitlines()[0].split() == [
        "scenario",
        "figure",
        "value",
        "goal",
    ]
