"""Per-invocation state the Python host functions keep, found through a thread-local.

The data plane makes one `InvocationState` per invocation, at its first host call, and passes it
to every host call of that invocation; `dispatch` (hostfuncs.py) makes it current for the call, so
capability code (e.g. host ABI v1's pending results) reaches it without threading it through.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class InvocationState:
    # (namespace, name) of the running app: lets a shared capability host function find that
    # app's dependency bindings without the runtime knowing about capabilities.
    app: tuple[str, str] | None = None
    host_failure: str | None = None
    # Free for capability host functions (e.g. a pending result, the last error).
    extras: dict[str, Any] = field(default_factory=dict)


_local = threading.local()


def current() -> InvocationState | None:
    state: InvocationState | None = getattr(_local, "state", None)
    return state


def set_current(state: InvocationState | None) -> None:
    _local.state = state
