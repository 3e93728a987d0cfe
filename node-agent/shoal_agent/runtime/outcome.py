"""What an invocation ended with: a closed set, so it is safe as a metric label."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.StrEnum):
    OK = "ok"  # `_start` returned, or the guest called proc_exit(0)
    EXIT = "exit"  # proc_exit with a non-zero code
    TRAP = "trap"  # a Wasm trap (unreachable, stack overflow, out-of-bounds, host function failure ...)
    TIMEOUT = "timeout"  # the epoch deadline passed
    OUT_OF_MEMORY = "out_of_memory"  # failed while linear memory was at the app's limit
    STDOUT_LIMIT = "stdout_limit"  # wrote more stdout than allowed; the guest was stopped
    BUSY = "busy"  # no concurrency slot within the wait budget; the guest never ran
    ERROR = "error"  # the host failed to run the guest (a bug or resource problem on our side)


@dataclass(frozen=True)
class InvocationResult:
    outcome: Outcome
    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int | None = None
    message: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    instantiate_seconds: float = 0.0
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK
