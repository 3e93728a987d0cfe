"""The job trigger: retries with backoff up to backoffLimit."""

from __future__ import annotations

import pytest

from shoal_agent.runtime import InvocationRequest, InvocationResult, Outcome
from shoal_agent.triggers.job import JobSpec, backoff_delays, run_job

pytestmark = pytest.mark.unit


class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[InvocationRequest] = []

    async def __call__(self, req: InvocationRequest) -> InvocationResult:
        self.calls.append(req)
        if len(self.calls) <= self.failures:
            return InvocationResult(Outcome.EXIT, exit_code=1, stdout=b"fail")
        return InvocationResult(Outcome.OK, exit_code=0, stdout=b"done")


async def test_succeeds_after_retries_with_exponential_backoff() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    invoker = Flaky(failures=2)
    spec = JobSpec(args=("7",), backoff_limit=3, backoff_base_s=0.5)
    result = await run_job(spec, invoker, sleep)
    assert result.succeeded and result.exit_code == 0 and result.last.stdout == b"done"
    assert len(result.attempts) == 3
    assert slept == [0.5, 1.0]
    assert invoker.calls[0].args == ("7",)


async def test_gives_up_after_backoff_limit() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    result = await run_job(JobSpec(backoff_limit=2, backoff_base_s=1), Flaky(failures=10), sleep)
    assert not result.succeeded
    assert len(result.attempts) == 3 and result.exit_code == 1
    assert slept == [1, 2]  # no sleep after the last attempt


async def test_zero_backoff_limit_runs_once() -> None:
    result = await run_job(JobSpec(backoff_limit=0), Flaky(failures=1), sleep=lambda s: None)  # type: ignore[arg-type,return-value]
    assert len(result.attempts) == 1 and not result.succeeded


def test_backoff_is_capped() -> None:
    assert backoff_delays(JobSpec(backoff_limit=5, backoff_base_s=10, backoff_max_s=30)) == [
        10,
        20,
        30,
        30,
        30,
    ]
