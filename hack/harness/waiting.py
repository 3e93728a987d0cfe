"""Polling for a condition in async tests, with a failure message that says what the cluster looked like."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


async def eventually(
    check: Callable[[], Any],
    *,
    within: float = 30,
    what: str,
    interval: float = 0.25,
    explain: Callable[[], Awaitable[str]] | None = None,
) -> Any:
    """Poll `check` (plain or async) until it returns something truthy, and return that.

    On timeout the test fails naming `what` and the last value; `explain`, when given, adds a
    description of the state that kept it from happening (pods, claims, events), because a bare
    timeout in CI is a failure nobody can diagnose afterwards."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    detail = f"\n{await explain()}" if explain is not None else ""
    pytest.fail(f"timed out after {within}s waiting for {what} (last: {last!r}){detail}")
