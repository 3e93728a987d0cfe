"""Triggers turn events into invocations: `http` (WAGI) and `job`; others plug in via `Trigger`."""

from .base import Invoker, Trigger
from .http import HttpRoute, HttpRouter, HttpTarget, make_wagi_handler, result_to_response
from .job import JobResult, JobSpec, run_job
from .wagi import CgiRequest, CgiResponse, MalformedResponse, build_env, parse_response

__all__ = [
    "CgiRequest",
    "CgiResponse",
    "HttpRoute",
    "HttpRouter",
    "HttpTarget",
    "Invoker",
    "JobResult",
    "JobSpec",
    "MalformedResponse",
    "Trigger",
    "build_env",
    "make_wagi_handler",
    "parse_response",
    "result_to_response",
    "run_job",
]
