"""The schedule trigger: run an app at the times of a cron expression, a fresh instance per run.

The decisions are pure functions (when to wake, whether a run may start, what a finished run
records); `ScheduleRunner.run` is the loop around them, with the clock and the sleep injected so
tests can drive it. Cancelling the loop cancels the runs it started: a run interrupted by an update
or a removal is not recorded (its guest still ends by its own deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shoal_api.schedule import ConcurrencyPolicy, CronSchedule, latest_runs, output_tail
from shoal_api.wasmapp import ScheduledRun

from ..runtime.app import InvocationRequest
from ..runtime.outcome import InvocationResult, Outcome
from .base import Invoker

MAX_SLEEP_SECONDS = 30.0
"""Sleep at most this long before looking at the wall clock again (it may have been stepped)."""


def may_start(policy: ConcurrencyPolicy, active: int, limit: int) -> bool:
    """Forbid skips a run while the previous one still runs; Allow starts it unless `limit` (the
    app's maxConcurrency) runs are on already: a guest slower than its schedule must not pile up
    runs waiting for a slot without end."""
    return active == 0 or (policy == "Allow" and active < limit)


def following(schedule: CronSchedule, due: datetime, now: datetime) -> datetime:
    """The run after `due`; times the agent slept through (a stopped clock, a busy loop) are
    skipped, not caught up on."""
    return schedule.next_after(max(due, now))


def wait_seconds(due: datetime, now: datetime) -> float:
    """How long to sleep towards `due`, in steps of at most MAX_SLEEP_SECONDS."""
    return max(0.0, min((due - now).total_seconds(), MAX_SLEEP_SECONDS))


def record(
    node: str, due: datetime, started: datetime, ended: datetime, result: InvocationResult
) -> ScheduledRun:
    """What a finished run leaves in the status."""
    exit_code = result.exit_code
    if exit_code is None and result.outcome is Outcome.OK:
        exit_code = 0
    # Whole seconds, as metav1.Time is written: the run read back from the apiserver is this run.
    return ScheduledRun(
        node=node,
        schedule_time=due.replace(microsecond=0),
        start_time=started.replace(microsecond=0),
        completion_time=ended.replace(microsecond=0),
        outcome=result.outcome.value,
        exit_code=exit_code,
        output=output_tail(result.stdout + result.stderr),
    )


@dataclass(frozen=True)
class Due:
    """A run time came: the run started, or was skipped; `active` counts the runs now on."""

    due: datetime
    active: int
    started: bool


@dataclass(frozen=True)
class Finished:
    run: ScheduledRun
    active: int


@dataclass(frozen=True)
class Waiting:
    due: datetime
    """The next run time."""


Report = Callable[[Due | Finished | Waiting], None]


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ended(run: ScheduledRun) -> str:
    """How a run ended, in words: "exited with code 3", "timeout"."""
    if run.exit_code is not None:
        return f"exited with code {run.exit_code}"
    return run.outcome.replace("_", " ")


@dataclass(frozen=True)
class ScheduleView:
    """What the placement's status says about its schedule: the next time and the latest news."""

    what: str
    policy: ConcurrencyPolicy
    due: datetime | None = None
    last: str = "no run yet"

    @classmethod
    def of(cls, schedule: CronSchedule, policy: ConcurrencyPolicy) -> ScheduleView:
        return cls(f"schedule {schedule.expression} ({schedule.zone_name}, {policy})", policy)

    @property
    def message(self) -> str:
        upcoming = f"next run at {when(self.due)}" if self.due is not None else "starting"
        return f"{self.what}: {upcoming}; {self.last}"

    def observe(
        self, event: Due | Finished | Waiting, runs: Sequence[ScheduledRun]
    ) -> tuple[ScheduleView, dict[str, Any]]:
        """The view after `event`, and the status fields it sets (`runs`: the placement's so far)."""
        if isinstance(event, Waiting):
            return replace(self, due=event.due), {}
        if isinstance(event, Finished):
            fields = {"runs": latest_runs(runs, [event.run]), "active_runs": event.active}
            return replace(self, last=f"run of {when(event.run.schedule_time)} {ended(event.run)}"), fields
        if event.started:
            fields = {"last_schedule_time": event.due, "active_runs": event.active}
            return replace(self, last=f"run of {when(event.due)} started"), fields
        why = "concurrencyPolicy Forbid" if self.policy == "Forbid" else "resources.maxConcurrency"
        skipped = f"skipped the run of {when(event.due)}: {event.active} still running ({why})"
        return replace(self, last=skipped), {}


def utcnow() -> datetime:
    return datetime.now(UTC)


class ScheduleRunner:
    """Runs one app version on its schedule until cancelled."""

    def __init__(
        self,
        schedule: CronSchedule,
        policy: ConcurrencyPolicy,
        invoker: Invoker,
        report: Report,
        *,
        node: str,
        args: tuple[str, ...] = (),
        max_wait_s: float | None = None,
        max_active: int = 1,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.schedule = schedule
        self.policy = policy
        self.invoker = invoker
        self.report = report
        self.node = node
        self.request = InvocationRequest(args=args, max_wait_s=max_wait_s)
        self.max_active = max_active
        self.clock = clock
        self.sleep = sleep
        self._runs: set[asyncio.Task[None]] = set()

    @property
    def active(self) -> int:
        return len(self._runs)

    async def run(self) -> None:
        due = self.schedule.next_after(self.clock())
        try:
            while True:
                self.report(Waiting(due))
                while (now := self.clock()) < due:
                    await self.sleep(wait_seconds(due, now))
                if may_start(self.policy, self.active, self.max_active):
                    task = asyncio.create_task(self._run_one(due), name=f"scheduled-run-{due.isoformat()}")
                    self._runs.add(task)
                    task.add_done_callback(self._runs.discard)
                    self.report(Due(due, self.active, started=True))
                else:
                    self.report(Due(due, self.active, started=False))
                due = following(self.schedule, due, self.clock())
        finally:
            runs = list(self._runs)
            for task in runs:
                task.cancel()
            for task in runs:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _run_one(self, due: datetime) -> None:
        started = self.clock()
        result = await self.invoker(self.request)
        ended = self.clock()
        # Still counted in `active` until this task is done: report the count without it.
        self.report(Finished(record(self.node, due, started, ended, result), self.active - 1))
