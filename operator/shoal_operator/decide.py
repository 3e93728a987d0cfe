"""Stage 2 of a batch: decide where each app's replicas go, through the pure `scheduling/` core.

The whole batch is decided on one snapshot of the cluster, so every decision sees the ones before
it. What this shell adds around the core: an app that prefers its dependencies' nodes waits (a
while) for their pods to be bound; a decision that deciding again could not change is reused; and a
tolerationSeconds running out, which no event reports, wakes the app up at that moment.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from shoal_api import WasmApp
from shoal_operator import adapt
from shoal_operator.cache import ClusterCache
from shoal_operator.clock import Clock, seconds_since
from shoal_operator.config import OperatorConfig
from shoal_operator.memo import Decided, Memos
from shoal_operator.metrics import OperatorMetrics
from shoal_operator.scheduling import AppDecision, iter_decisions, next_toleration_expiry
from shoal_operator.workqueue import WorkQueue

EXPIRY_GRACE_SECONDS = 0.05
"""Wake a little after a toleration runs out, so the decision then no longer tolerates the taint."""


@dataclass
class Decide:
    cache: ClusterCache
    config: OperatorConfig
    metrics: OperatorMetrics
    memos: Memos
    queue: WorkQueue
    clock: Clock

    def waits_for_dependency_pods(self, app: WasmApp) -> bool:
        """A new app that prefers its dependencies' nodes is placed once their pods are bound (a pod
        event requeues it), or when `dependency_wait_seconds` have passed, whichever comes first."""
        memo = self.memos[app.key]
        if (
            not app.spec.placement.prefer_near_dependencies
            or self.cache.app_placements(app.key)
            or not adapt.unbound_dependencies(self.cache, app)
        ):
            memo.dependency_wait_since = None
            return False
        if memo.dependency_wait_since is None:
            memo.dependency_wait_since = self.clock()
            self.queue.after(app.key, self.config.dependency_wait_seconds)
            return True
        return seconds_since(self.clock, memo.dependency_wait_since) < self.config.dependency_wait_seconds

    async def __call__(self, apps: list[WasmApp], now: datetime) -> list[AppDecision]:
        """A decision for each of `apps`, in order; ones that cannot change are reused."""
        decisions: list[AppDecision] = []
        to_decide = []
        for app in apps:
            settled = self._settled(app, now)
            if settled is not None:
                decisions.append(settled)
            else:
                to_decide.append(app)
        requests = [
            adapt.app_request(app, dependency_nodes=adapt.dependency_nodes(self.cache, app))
            for app in to_decide
        ]
        generations = {app.key: app.metadata.generation or 0 for app in to_decide}
        expiries = {}
        for request in requests:
            expiry = next_toleration_expiry(request.tolerations, self.cache.nodes.values(), now)
            expiries[request.key] = expiry
            delay = (
                None if expiry is None else max(0.0, (expiry - now).total_seconds()) + EXPIRY_GRACE_SECONDS
            )
            self.queue.wake_at(request.key, "toleration-expiry", delay)
        pending = iter_decisions(cluster=adapt.cluster_state(self.cache, now=now), apps=requests, now=now)
        while True:
            started = self.clock()
            decision = next(pending, None)
            if decision is None:
                break
            self.metrics.decision_seconds.observe(seconds_since(self.clock, started))
            decisions.append(decision)
            self.memos[decision.app].decided = Decided(
                generations[decision.app], self.cache.topology_epoch, decision, until=expiries[decision.app]
            )
            # A batch of a thousand decisions is seconds of CPU: let the Lease renewal and the
            # watch streams run in between, or the leader loses its Lease mid-batch.
            await asyncio.sleep(0)
        return decisions

    def _settled(self, app: WasmApp, now: datetime) -> AppDecision | None:
        """The last decision, if deciding again could not change it: same generation, nothing
        changed in nodes or agents since (the topology epoch), no toleration ran out, every replica
        placed, and the placements are where it put them. Placement status events (agents reporting)
        then cost no scheduling at all, which at a thousand apps is most of the operator's CPU."""
        last = self.memos[app.key].decided
        if last is None:
            return None
        if last.generation != (app.metadata.generation or 0) or last.epoch != self.cache.topology_epoch:
            return None
        if last.until is not None and now >= last.until:
            return None
        if not last.decision.fully_scheduled:
            return None
        live = {
            p.spec.node_name
            for p in self.cache.app_placements(app.key)
            if p.metadata.deletion_timestamp is None
        }
        return last.decision if live == set(last.decision.nodes) else None
