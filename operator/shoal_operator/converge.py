"""Stage 3 of a batch: make the cluster match a decision. Create, update (within maxUnavailable) and
delete the app's WasmPlacements, then write its status and, once, the Warning that explains it.

Our own writes go into the cache at once, so the next decision counts them before their watch
events arrive.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from kubernetes_asyncio.client.exceptions import ApiException

from shoal_api import WasmApp, WasmPlacement
from shoal_api.meta import ObjectMeta, OwnerReference, owner_ref
from shoal_api.naming import placement_labels, placement_name
from shoal_operator import adapt
from shoal_operator.agents import AgentView
from shoal_operator.cache import ClusterCache
from shoal_operator.clock import Clock, seconds_since
from shoal_operator.events import Notify
from shoal_operator.kube import Kube
from shoal_operator.memo import Memos, Prepared
from shoal_operator.metrics import OperatorMetrics
from shoal_operator.scheduling import AppDecision, diff_placements
from shoal_operator.workqueue import WorkQueue


@dataclass
class Converge:
    cache: ClusterCache
    kube: Kube
    agents: AgentView
    notify: Notify
    queue: WorkQueue
    memos: Memos
    metrics: OperatorMetrics
    clock: Clock

    async def __call__(
        self, app: WasmApp, prep: Prepared, decision: AppDecision | None
    ) -> list[WasmPlacement]:
        """Placements, then status; returns the app's placements as they now are."""
        ns, name = app.metadata.namespace or "", app.metadata.name or ""
        memo = self.memos[app.key]
        if decision is not None and prep.digest is not None:
            await self._placements(app, prep, decision)
            if decision.fully_scheduled and memo.seen is not None:
                self.metrics.scheduling_latency.observe(seconds_since(self.clock, memo.seen[1]))
                memo.seen = None
            message = decision.message or ""
            if message and memo.scheduling_message != message:
                await self.notify.warn(app, reason="FailedScheduling", message=message)
            memo.scheduling_message = message
        placements = self.cache.app_placements(app.key)

        dep_pods = {
            dep.name: self.cache.dependency_pods.get((ns, name, dep.name), {})
            for dep in app.spec.dependencies
        }
        status = adapt.app_status(
            app,
            placements=placements,
            fresh_agents=self.agents.fresh,
            serving_agents=self.agents.serving,
            decision=decision,
            digest=prep.digest or (app.status.resolved_digest if app.status else None),
            dependencies=adapt.dependencies_condition(app, dep_pods),
            problem=prep.problem,
            now=self.clock(),
        )
        failure = adapt.placement_failure(status)
        if failure and failure != adapt.placement_failure(app.status):
            # A placement's agent refused the app (a load error, a bad artifact): say so once, as
            # the Warning beside the Degraded condition that carries the same words.
            await self.notify.warn(app, reason="PlacementFailed", message=failure)
        new = status.to_dict()
        old = app.status.to_dict() if app.status else None
        if new != old:
            version = await self.kube.write_app_status(ns, name, new)
            # Our own write: the watch event will say the same, and the cache, now at that
            # version, can tell it from news without parsing it.
            app.status = status
            app.metadata.resource_version = version
        return placements

    async def _placements(self, app: WasmApp, prep: Prepared, decision: AppDecision) -> None:
        assert prep.digest is not None
        ns = app.metadata.namespace or ""
        specs = {
            node: adapt.placement_spec(app, node=node, digest=prep.digest, dependencies=prep.endpoints)
            for node in decision.nodes
        }
        template_hash = next(iter(specs.values())).template_hash if specs else ""
        actions = diff_placements(
            desired_nodes=decision.nodes,
            template_hash=template_hash,
            actual=adapt.actual_placements(
                self.cache.app_placements(app.key), fresh_agents=self.agents.serving
            ),
            replicas=app.spec.replicas,
            max_unavailable=app.spec.rollout.resolve_max_unavailable(replicas=app.spec.replicas),
        )
        owner = OwnerReference.model_validate(owner_ref(app))

        async def create(node: str) -> None:
            placement = WasmPlacement(
                metadata=ObjectMeta(
                    name=placement_name(app=app.metadata.name or "", node=node),
                    namespace=ns,
                    labels=placement_labels(app=app.metadata.name or "", node=node),
                    owner_references=[owner],
                ),
                spec=specs[node],
            )
            try:
                created = await self.kube.create_placement(ns, placement.to_k8s())
            except ApiException as e:
                if e.status != 409:
                    raise
                return  # already there: the watch will tell us about it
            self.cache.remember_placement(WasmPlacement.from_k8s(created))

        await asyncio.gather(*(create(node) for node in actions.create))
        for old in actions.update:
            spec = specs[old.node]
            await self.kube.replace_placement_spec(ns, old.name, spec.to_dict())
            current = self.cache.placements.get((ns, old.name))
            if current is not None:
                self.cache.remember_placement(current.model_copy(update={"spec": spec}))
        for old in actions.delete:
            await self.kube.delete_placement(ns, old.name)
            self.cache.forget_placement(ns, old.name)

        held = f" ({actions.held_back} held back by maxUnavailable)" if actions.held_back else ""
        for reason, verb, nodes, suffix in (
            ("Scheduled", "placed on", actions.create, ""),
            ("Descheduled", "removed from", tuple(p.node for p in actions.delete), ""),
            ("RollingUpdate", "updating", tuple(p.node for p in actions.update), held),
        ):
            if nodes:
                await self.notify.inform(
                    app, reason=reason, message=f"{verb} {', '.join(sorted(nodes))}{suffix}"
                )
        if actions.held_back or actions.waiting_for_termination:
            # The rest of the rollout waits for placements to become ready or go: their events
            # requeue the app, and this retry covers an agent that never reports.
            self.queue.retry(app.key)
