"""Triggers turn events into invocations: `http` (WAGI, served natively), `job` and `schedule`;
others plug in via `Trigger`."""

from .base import Invoker, Trigger
from .http import HttpRoute, HttpRouter, HttpTarget
from .job import JobResult, JobSpec, run_job
from .schedule import Due, Finished, ScheduleRunner, ScheduleView, Waiting

__all__ = [
    "Due",
    "Finished",
    "HttpRoute",
    "HttpRouter",
    "HttpTarget",
    "Invoker",
    "JobResult",
    "JobSpec",
    "ScheduleRunner",
    "ScheduleView",
    "Trigger",
    "Waiting",
    "run_job",
]
