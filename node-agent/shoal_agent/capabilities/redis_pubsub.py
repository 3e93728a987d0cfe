"""The Redis pub/sub trigger: one fresh instance per message on an app's channel, at most once.

Pub/sub keeps nothing: a message published while we are not subscribed (Redis down, agent
restarting, reconnect back-off) is lost. A burst beyond the app's concurrency limit queues here
(at most `max_pending` messages, each waiting up to `slot_wait_s` for a slot) rather than being
dropped after the short wait an HTTP client gets; past either bound it is dropped
(`stats.dropped_overflow`, `stats.dropped_busy`, and the runtime counts a `busy` invocation). A
message is handed to exactly one invocation on this agent and never retried, whatever its outcome.
Every replica of the app subscribes, so with N replicas each message runs N times
(docs/host-abi.md).

The channel declared as `clicks` in namespace `ns` is the Redis channel `ns/clicks`, the same one
a guest's `publish(..., "clicks", ...)` reaches (see namespacing.py).

Where Redis is can change (its pod moves and gets a new IP): every (re)subscription asks
`locate` for the current address, and a failed one calls `on_failure` so the agent re-resolves
the Service at once rather than at its next periodic refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from shoal_api.backoff import Backoff
from shoal_api.backoff import Retry as Retrying

from ..runtime.app import InvocationRequest
from ..runtime.outcome import Outcome
from ..triggers.base import Invoker
from .namespacing import channel_name
from .pools import HostPort, PoolSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackoffPolicy:
    initial_s: float = 0.1
    max_s: float = 5.0
    factor: float = 2.0


@dataclass
class TriggerStats:
    received: int = 0
    succeeded: int = 0
    failed: int = 0  # ran but did not end OK (exit code, trap, timeout ...), or could not run
    dropped_busy: int = 0  # the app was at its concurrency limit: never ran
    dropped_overflow: int = 0  # more than `max_pending` messages were waiting: never ran
    connects: int = 0
    disconnects: int = 0


class RedisPubSubTrigger:
    kind = "redis"

    def __init__(
        self,
        *,
        namespace: str,
        app: str,
        channel: str,
        where: HostPort | Callable[[], HostPort],
        invoker: Invoker,
        on_failure: Callable[[HostPort], None] | None = None,
        backoff: BackoffPolicy | None = None,
        settings: PoolSettings | None = None,
        max_pending: int = 1024,
        slot_wait_s: float = 30.0,
        health_check_s: int = 5,
    ) -> None:
        self.namespace = namespace
        self.app = app
        self.channel = channel
        self.redis_channel = channel_name(namespace, channel)
        self.locate: Callable[[], HostPort] = where if callable(where) else (lambda: where)
        self.on_failure = on_failure
        self.invoker = invoker
        self.backoff = backoff or BackoffPolicy()
        self.settings = settings or PoolSettings()
        self.max_pending = max_pending
        self.health_check_s = health_check_s
        self.stats = TriggerStats()
        self.subscribed = asyncio.Event()
        """Set while subscribed; tests (and readiness) can wait on it."""
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._env = (("SHOAL_TRIGGER", "redis"), ("SHOAL_CHANNEL", channel))
        self.slot_wait_s = slot_wait_s

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"redis-trigger {self.namespace}/{self.app}")

    async def stop(self) -> None:
        """Unsubscribe, then wait for the invocations already started (each ends by its deadline)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.subscribed.clear()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _run(self) -> None:
        retry = Retrying(
            Backoff(first=self.backoff.initial_s, cap=self.backoff.max_s, factor=self.backoff.factor)
        )
        while True:
            where = self.locate()
            client = aioredis.Redis(
                host=where.host,
                port=where.port,
                socket_connect_timeout=self.settings.connect_timeout_s,
                socket_keepalive=True,
                health_check_interval=self.health_check_s,
                retry=Retry(NoBackoff(), 0),  # reconnects are ours, with back-off
            )
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.redis_channel)
                    self.stats.connects += 1
                    self.subscribed.set()
                    retry.succeeded()
                    log.info("subscribed to %s for %s/%s", self.redis_channel, self.namespace, self.app)
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            self._dispatch(message["data"])
            except (redis.RedisError, OSError) as e:
                self.subscribed.clear()
                self.stats.disconnects += 1
                log.warning(
                    "redis trigger %s/%s: %s at %s:%s; resubscribing in %.1fs",
                    self.namespace,
                    self.app,
                    e,
                    where.host,
                    where.port,
                    retry.upcoming,
                )
                if self.on_failure is not None:
                    self.on_failure(where)
            finally:
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    await client.aclose()
            await retry.failed()

    def _dispatch(self, data: bytes) -> None:
        self.stats.received += 1
        if len(self._pending) >= self.max_pending:
            self.stats.dropped_overflow += 1
            return
        task = asyncio.create_task(self._invoke(bytes(data)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _invoke(self, data: bytes) -> None:
        try:
            request = InvocationRequest(stdin=data, env=self._env, max_wait_s=self.slot_wait_s)
            result = await self.invoker(request)
        except Exception:
            self.stats.failed += 1
            log.exception("redis trigger %s/%s: invocation failed to run", self.namespace, self.app)
            return
        if result.outcome is Outcome.OK:
            self.stats.succeeded += 1
        elif result.outcome is Outcome.BUSY:
            self.stats.dropped_busy += 1
        else:
            self.stats.failed += 1
            log.info("redis trigger %s/%s: %s: %s", self.namespace, self.app, result.outcome, result.message)
