"""The reconcile loop: a queue of app keys, drained in batches, each batch run through the stages.

    workqueue ─► prepare ─► decide ─► converge ─► publish
    (keys,       (Secrets,   (pure       (placements, (Service,
     backoff,     deps,       scheduler)  status)      EndpointSlices)
     wake-ups)    digest)

Why one worker and batches: the scheduler must see every placement it just decided before making
the next decision, or two apps could both take a node's last free memory. Deciding a whole batch
on one snapshot keeps decisions consistent; the slow part, the API writes, then runs concurrently.
Each stage keeps what it remembers about an app in the app's memo (memo.py); what requeues an app is
declared in requeue.py.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from kubernetes_asyncio.client.exceptions import ApiException

from shoal_api import WasmApp
from shoal_operator.agents import AgentView
from shoal_operator.cache import ClusterCache
from shoal_operator.clock import Clock, seconds_since, utc_now
from shoal_operator.config import OperatorConfig
from shoal_operator.converge import Converge
from shoal_operator.decide import Decide
from shoal_operator.events import EventRecorder, Notify
from shoal_operator.kube import Kube, api_message
from shoal_operator.memo import Memos, Prepared
from shoal_operator.metrics import OperatorMetrics
from shoal_operator.prepare import Prepare
from shoal_operator.publish import Publish
from shoal_operator.requeue import Requeue, affected_apps, agents_changed
from shoal_operator.resolver import DigestResolver
from shoal_operator.scheduling import AppDecision
from shoal_operator.workqueue import WorkQueue

logger = logging.getLogger(__name__)


@dataclass
class Reconciler:
    cache: ClusterCache
    kube: Kube
    resolver: DigestResolver
    config: OperatorConfig = field(default_factory=OperatorConfig)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    clock: Clock = utc_now
    events: EventRecorder | None = None
    """Where informational Events go (posted in the background); None posts them inline."""

    def __post_init__(self) -> None:
        self.queue = WorkQueue()
        self.memos = Memos()
        self.agents = AgentView(self.cache)
        self.notify = notify = Notify(self.kube.event, self.events)
        self.prepare = Prepare(self.cache, self.kube, self.resolver, notify, self.queue, self.memos)
        self.decide = Decide(self.cache, self.config, self.metrics, self.memos, self.queue, self.clock)
        self.converge = Converge(
            self.cache, self.kube, self.agents, notify, self.queue, self.memos, self.metrics, self.clock
        )
        self.publish = Publish(
            self.cache,
            self.kube,
            self.memos,
            concurrency=self.config.publish_concurrency,
            on_failure=self._publish_failed,
        )

    # --- what comes in --------------------------------------------------------------------------

    def requeue(self, what: Requeue) -> None:
        """A watch event's consequence (requeue.py)."""
        if what.generation is not None:
            key, generation = what.generation
            memo = self.memos[key]
            if memo.seen is None or memo.seen[0] != generation:
                memo.seen = (generation, self.clock())
        if what.apps:
            self.queue.add_all(what.apps)
        if what.topology:
            self.queue.add_all(affected_apps(self.cache, what.nodes))

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    def enqueue_all(self) -> None:
        self.queue.add_all(self.cache.apps)

    def links_changed(self) -> None:
        """An agent link changed state: look again at once, not at the next tick."""
        self.queue.poke()

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Drain the queue forever; tick to notice expired heartbeats; resync everything now and then."""
        last_resync = self.clock()
        publishing = asyncio.create_task(self.publish.run(), name="publish")
        try:
            await self._loop(last_resync)
        finally:
            publishing.cancel()

    async def _loop(self, last_resync: datetime) -> None:
        while True:
            await self.queue.wait(at_most=self.config.tick_seconds)
            self.requeue(agents_changed(self.agents.check(self.clock())))
            if seconds_since(self.clock, last_resync) > self.config.resync_seconds:
                last_resync = self.clock()
                self.enqueue_all()
            if not self.queue:
                continue
            batch = self.queue.take()
            try:
                await self.reconcile_batch(batch)
            except Exception:  # keep serving: a bug on one batch must not stop the operator
                logger.exception("reconcile of %d app(s) failed; retrying", len(batch))
                self.metrics.reconcile_errors.labels(reason="batch").inc()
                for key in batch:
                    self.queue.retry(key)

    # --- one batch ------------------------------------------------------------------------------

    async def reconcile_batch(self, keys: list[str]) -> None:
        started = self.clock()
        apps = [self.cache.apps[k] for k in keys if k in self.cache.apps]
        for key in keys:
            if key not in self.cache.apps:
                self.forget(key)
        if not apps:
            return
        prepared = await asyncio.gather(*(self.prepare(app) for app in apps))

        now = self.clock()
        self.requeue(agents_changed(self.agents.check(now)))
        ready = [
            a
            for a, p in zip(apps, prepared, strict=True)
            if p.problem is None and p.digest and not self.decide.waits_for_dependency_pods(a)
        ]
        decisions = await self.decide(ready, now)
        by_key: dict[str, AppDecision] = {d.app: d for d in decisions}

        gate = asyncio.Semaphore(self.config.write_concurrency)

        async def write(app: WasmApp, prep: Prepared) -> None:
            async with gate:
                try:
                    placements = await self.converge(app, prep, by_key.get(app.key))
                    if app.spec.trigger.http is not None:
                        self.publish.submit(app, placements, serving=self.agents.serving)
                except ApiException as e:
                    logger.warning(
                        "reconcile of %s failed: %s %s: %s; retrying",
                        app.key,
                        e.status,
                        e.reason,
                        api_message(e),
                    )
                    self.metrics.reconcile_errors.labels(reason="api").inc()
                    self.queue.retry(app.key)

        with self.notify.hold():
            await asyncio.gather(*(write(a, p) for a, p in zip(apps, prepared, strict=True)))
        self._observe(decisions)
        self.metrics.reconcile_seconds.observe(seconds_since(self.clock, started))

    def forget(self, key: str) -> None:
        """The app is gone: drop all that the stages and the queue remember of it."""
        self.memos.forget(key)
        self.queue.forget(key)
        self.publish.forget(key)

    def _publish_failed(self, key: str) -> None:
        self.metrics.reconcile_errors.labels(reason="api").inc()
        self.queue.retry(key)

    def _observe(self, decisions: list[AppDecision]) -> None:
        self.metrics.apps.set(len(self.cache.apps))
        self.metrics.unschedulable.set(sum(not d.fully_scheduled for d in decisions))
        per_node: dict[str, int] = {n: 0 for n in self.cache.nodes}
        for p in self.cache.placements.values():
            per_node[p.spec.node_name] = per_node.get(p.spec.node_name, 0) + 1
        for node, count in per_node.items():
            self.metrics.placements.labels(node=node).set(count)
