"""Triggers turn events into invocations: `http` (WAGI, served natively) and `job`; others plug in
via `Trigger`."""

from .base import Invoker, Trigger
from .http import HttpRoute, HttpRouter, HttpTarget
from .job import JobResult, JobSpec, run_job

__all__ = [
    "HttpRoute",
    "HttpRouter",
    "HttpTarget",
    "Invoker",
    "JobResult",
    "JobSpec",
    "Trigger",
    "run_job",
]
