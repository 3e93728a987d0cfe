"""The job trigger: run an app's `_start` to completion, retrying failures like a Kubernetes Job."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from shoal_api.backoff import Backoff, Sleep

from ..runtime.app import InvocationRequest
from ..runtime.outcome import InvocationResult, Outcome
from .base import Invoker


@dataclass(frozen=True)
class JobSpec:
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    stdin: bytes = b""
    backoff_limit: int = 6  # retries after the first attempt, as in batch/v1 Job
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0


@dataclass(frozen=True)
class JobResult:
    succeeded: bool
    attempts: list[InvocationResult] = field(default_factory=list)

    @property
    def last(self) -> InvocationResult:
        return self.attempts[-1]

    @property
    def exit_code(self) -> int | None:
        return self.last.exit_code


def backoff_delays(spec: JobSpec) -> Sequence[float]:
    """Exponential delays before each retry (10s, 20s, 40s... in Kubernetes; base is configurable)."""
    backoff = Backoff(first=spec.backoff_base_s, cap=spec.backoff_max_s)
    return [backoff.nominal(failures) for failures in range(1, spec.backoff_limit + 1)]


async def run_job(spec: JobSpec, invoker: Invoker, sleep: Sleep = asyncio.sleep) -> JobResult:
    """Run until an attempt succeeds (exit code 0) or the retries are used up."""
    request = InvocationRequest(stdin=spec.stdin, env=spec.env, args=spec.args)
    attempts: list[InvocationResult] = []
    delays = backoff_delays(spec)
    for attempt in range(spec.backoff_limit + 1):
        result = await invoker(request)
        attempts.append(result)
        if result.outcome is Outcome.OK:
            return JobResult(True, attempts)
        if attempt < len(delays):
            await sleep(delays[attempt])
    return JobResult(False, attempts)
