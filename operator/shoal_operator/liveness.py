"""Links to the agents' `/livez` streams: which agents' addresses must leave the EndpointSlices now.

Why a held connection and not a shorter Lease: a killed agent's Lease stays valid until it expires
(15 s), and a Lease short enough to withdraw an address within a second or two means a write per agent
every few hundred milliseconds, all through etcd. A held TCP connection costs no API write at all; the
kernel closes it the moment the agent process dies, so the operator knows in milliseconds. It says
nothing about a node that vanished without closing anything (power, network): the Lease still covers
that, and still decides where placements go. The link only decides whether an agent's placements
count as ready (EndpointSlices, readyReplicas, maxUnavailable).

The core is pure (`LinkBook`: states in, the withdrawn set out); `AgentLinks` is the shell that keeps
one reader task per agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

import aiohttp

from shoal_api.backoff import Backoff

logger = logging.getLogger(__name__)

SILENCE_SECONDS = 3.0
"""No line for this long (the agent writes one every 0.5 s) counts as the link lost: a hung agent."""
RETRY = Backoff(first=0.1, cap=1.0)
"""Reconnect fast: a restarted agent serves again within a second or two and should be routed to."""

Target = tuple[str, int]


class Link(Enum):
    UNKNOWN = "unknown"
    """Never connected since this operator started: the Lease alone decides."""
    STARTING = "starting"
    """Connected; the agent does not serve its placements yet (restarted, loading) or drains."""
    READY = "ready"
    DOWN = "down"
    """Was connected, and the connection ended or went silent."""


@dataclass(slots=True)
class LinkBook:
    """node -> link state, with the rule of what it means for routing."""

    states: dict[str, Link] = field(default_factory=dict)

    def set(self, node: str, state: Link) -> bool:
        """Returns whether the state changed."""
        old = self.states.get(node, Link.UNKNOWN)
        self.states[node] = state
        return old != state

    def forget(self, node: str) -> None:
        self.states.pop(node, None)

    def withdrawn(self) -> frozenset[str]:
        """Agents whose addresses must not be routed to. When every known link is down at once, the
        likelier story is that this operator lost its own network, not that every agent died: then
        withdraw none (withdrawing all would be a total outage decided on the operator's evidence
        alone), and the Leases decide as before."""
        known = {n: s for n, s in self.states.items() if s is not Link.UNKNOWN}
        out = frozenset(n for n, s in known.items() if s in (Link.DOWN, Link.STARTING))
        if known and len(out) == len(known) and all(s is Link.DOWN for s in known.values()):
            return frozenset()
        return out


def state_of_line(line: bytes) -> Link:
    return Link.READY if line.strip() == b"ready" else Link.STARTING


def retry_delay(failures: int) -> float:
    """The wait before reconnecting after `failures` failed attempts in a row (0: the stream ended)."""
    return RETRY.nominal(failures + 1)


def link_changes(running: Mapping[str, Target], wanted: Mapping[str, Target]) -> tuple[list[str], list[str]]:
    """(nodes to (re)connect, nodes to drop): a new or moved endpoint means a new link."""
    stop = sorted(n for n, t in running.items() if wanted.get(n) != t)
    start = sorted(n for n, t in wanted.items() if running.get(n) != t)
    return start, stop


@dataclass
class AgentLinks:
    """One task per agent endpoint reading its `/livez` stream; `on_change` runs on every state change."""

    on_change: Callable[[], None]
    book: LinkBook = field(default_factory=LinkBook)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _targets: dict[str, Target] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None

    def sync(self, wanted: Mapping[str, Target]) -> None:
        """Keep a link to exactly the agents in `wanted` (node -> (host, health port))."""
        start, stop = link_changes(self._targets, wanted)
        for node in stop:
            task = self._tasks.pop(node, None)
            if task is not None:
                task.cancel()
            self._targets.pop(node, None)
            self.book.forget(node)
        for node in start:
            if node in self._tasks:
                continue
            self._targets[node] = wanted[node]
            self._tasks[node] = asyncio.create_task(self._follow(node, wanted[node]), name=f"livez-{node}")

    def withdrawn(self) -> frozenset[str]:
        return self.book.withdrawn()

    def _set(self, node: str, state: Link) -> None:
        if self.book.set(node, state):
            logger.info("agent link %s: %s", node, state.value)
            self.on_change()

    async def _follow(self, node: str, target: Target) -> None:
        if self._session is None:
            # No proxies: agents are reached directly, like kubelet probes reach pods.
            self._session = aiohttp.ClientSession(trust_env=False)
        host, port = target
        url = f"http://[{host}]:{port}/livez" if ":" in host else f"http://{host}:{port}/livez"
        failures = 0
        timeout = aiohttp.ClientTimeout(total=None, connect=SILENCE_SECONDS, sock_read=SILENCE_SECONDS)
        while True:
            try:
                async with self._session.get(url, timeout=timeout) as response:
                    if response.status != 200:
                        raise aiohttp.ClientResponseError(
                            response.request_info, (), status=response.status, message="not 200"
                        )
                    async for line in response.content:
                        failures = 0
                        self._set(node, state_of_line(line))
                raise ConnectionError("stream ended")
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                if self.book.states.get(node, Link.UNKNOWN) is not Link.UNKNOWN:
                    if self.book.states[node] is not Link.DOWN:
                        logger.info("agent link %s lost: %s", node, e or type(e).__name__)
                    self._set(node, Link.DOWN)
                failures += 1
            await asyncio.sleep(retry_delay(failures))

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
