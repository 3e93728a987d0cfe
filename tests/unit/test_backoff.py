"""The one backoff: delays as data, jitter within bounds, the injectable sleep, per-key state."""

from __future__ import annotations

import itertools

import pytest

from shoal_api.backoff import Backoff, KeyedBackoff, Retry

pytestmark = pytest.mark.unit


def test_delays_double_from_first_up_to_the_cap() -> None:
    backoff = Backoff(first=1.0, cap=60.0)
    assert [backoff.nominal(n) for n in range(0, 9)] == [0.0, 1, 2, 4, 8, 16, 32, 60, 60]
    assert list(itertools.islice(backoff.delays(), 8)) == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.nominal(10_000) == 60.0, "a loop failing for days must not overflow"


def test_jitter_shortens_by_at_most_its_fraction() -> None:
    backoff = Backoff(first=2.0, cap=10.0, jitter=0.5)
    assert backoff.delay(1, rand=lambda: 0.0) == 1.0
    assert backoff.delay(1, rand=lambda: 0.999) == pytest.approx(1.999)
    assert all(1.0 <= backoff.delay(1) <= 2.0 for _ in range(200))
    assert Backoff(first=2.0, cap=10.0).delay(1, rand=lambda: 0.0) == 2.0, "no jitter unless asked"


@pytest.mark.parametrize(
    "kwargs",
    [{"first": -1, "cap": 1}, {"first": 1, "cap": 2, "factor": 0.5}, {"first": 1, "cap": 2, "jitter": 2}],
)
def test_nonsense_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid backoff"):
        Backoff(**kwargs)


async def test_retry_sleeps_through_the_injected_sleep_and_starts_over_on_success() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    retry = Retry(Backoff(first=0.5, cap=2.0), sleep=sleep)
    assert retry.upcoming == 0.5
    for _ in range(4):
        await retry.failed()
    assert slept == [0.5, 1.0, 2.0, 2.0]
    retry.succeeded()
    await retry.failed()
    assert slept[-1] == 0.5


def test_keyed_backoff_grows_per_key_and_forgets() -> None:
    keyed = KeyedBackoff(Backoff(first=1.0, cap=60.0))
    assert [keyed.next_delay("a") for _ in range(3)] == [1.0, 2.0, 4.0]
    assert keyed.next_delay("b") == 1.0, "another key starts from the first delay"
    keyed.forget("a")
    assert keyed.failures("a") == 0 and keyed.next_delay("a") == 1.0
