"""The reconcile loop: a queue of app keys, drained in batches, each batch decided by the pure core.

Why one worker and batches: the scheduler must see every placement it just decided before making
the next decision, or two apps could both take a node's last free memory. Deciding a whole batch
with `schedule_batch` on one snapshot keeps decisions consistent; the slow part, the API writes,
then runs concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from shoal_api import WasmApp, WasmPlacement
from shoal_api.meta import ObjectMeta, OwnerReference
from shoal_api.naming import placement_labels, placement_name
from shoal_api.wasmplacement import DependencyEndpoint
from shoal_operator import adapt, endpoints
from shoal_operator.cache import ClusterCache
from shoal_operator.config import OperatorConfig
from shoal_operator.dependencies import dependency_endpoints, generate_password, render_dependency
from shoal_operator.events import EventRecorder
from shoal_operator.kube import Kube
from shoal_operator.liveness import AgentLinks
from shoal_operator.metrics import OperatorMetrics
from shoal_operator.resolver import DigestResolver, ResolveError
from shoal_operator.scheduling import AppDecision, diff_placements, iter_decisions, next_toleration_expiry

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Prepared:
    """What an app needs before it can be scheduled, worked out once per generation."""

    generation: int
    digest: str | None = None
    endpoints: list[DependencyEndpoint] = field(default_factory=list)
    problem: tuple[str, str] | None = None
    """(reason, message) when the spec cannot be acted on."""
    stale: bool = False
    """The digest is the one the placements run, kept because the registry could not be asked."""


@dataclass
class Reconciler:
    cache: ClusterCache
    kube: Kube
    resolver: DigestResolver
    config: OperatorConfig = field(default_factory=OperatorConfig)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    events: EventRecorder | None = None
    """Where informational Events go (posted in the background); None posts them inline."""

    _pending: set[str] = field(default_factory=set)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _prepared: dict[str, Prepared] = field(default_factory=dict)
    _retry_delay: dict[str, float] = field(default_factory=dict)
    _generation_seen: dict[str, tuple[int, float]] = field(default_factory=dict)
    _last_message: dict[str, str] = field(default_factory=dict)
    _fresh_agents: frozenset[str] = frozenset()
    """Agents with a live Lease: where placements may stay."""
    _serving_agents: frozenset[str] = frozenset()
    """Fresh agents whose `/livez` link is not down or starting: whose placements count as ready."""
    links: AgentLinks | None = None
    """The agents' `/livez` streams (liveness.py); None: Leases alone decide readiness."""
    _published: dict[str, dict[str, str]] = field(default_factory=dict)
    """App key -> kind/name -> the Service or EndpointSlice last written, so that unchanged ones
    (the Service, whenever only readiness changes) are not rewritten."""
    _published_slices: dict[str, set[str]] = field(default_factory=dict)
    existing_at_start: frozenset[str] = frozenset()
    """Apps that existed when this replica started (from the warm-up listing): only their slices
    may have been written by an earlier leader and need a listing to prune."""
    _dependency_wait: dict[str, float] = field(default_factory=dict)
    """App key -> when it started waiting for its dependency pods to be bound."""
    _decided: dict[str, tuple[int, int, AppDecision]] = field(default_factory=dict)
    """App key -> (generation, topology epoch, decision) of its last scheduling decision."""
    _expiry_timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    """App key -> the wake-up at which one of its tolerationSeconds runs out."""

    # --- queueing -------------------------------------------------------------------------------

    def enqueue(self, key: str) -> None:
        self._pending.add(key)
        self._wake.set()

    def enqueue_all(self) -> None:
        for key in self.cache.apps:
            self._pending.add(key)
        self._wake.set()

    def enqueue_affected_by_nodes(self, nodes: frozenset[str] | None = None) -> None:
        """Apps with a placement on one of `nodes` (all nodes when None) or replicas still missing."""
        for key, app in self.cache.apps.items():
            status = app.status
            if (
                status is None
                or status.replicas < app.spec.replicas
                or status.ready_replicas < app.spec.replicas
            ):
                self._pending.add(key)
                continue
            if nodes is None or any(p.spec.node_name in nodes for p in self.cache.app_placements(key)):
                self._pending.add(key)
        self._wake.set()

    def generation_seen(self, key: str, generation: int) -> None:
        if self._generation_seen.get(key, (None, 0.0))[0] != generation:
            self._generation_seen[key] = (generation, time.monotonic())

    def _retry_later(self, key: str) -> None:
        delay = min(60.0, self._retry_delay.get(key, 0.5) * 2)
        self._retry_delay[key] = delay
        asyncio.get_running_loop().call_later(delay, self.enqueue, key)

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Drain the queue forever; tick to notice expired heartbeats; resync everything now and then."""
        last_resync = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.config.tick_seconds)
            self._wake.clear()
            self._check_agents()
            if time.monotonic() - last_resync > self.config.resync_seconds:
                last_resync = time.monotonic()
                self.enqueue_all()
                self._wake.clear()
            if not self._pending:
                continue
            batch, self._pending = self._pending, set()
            try:
                await self.reconcile_batch(sorted(batch))
            except Exception:  # keep serving: a bug on one batch must not stop the operator
                logger.exception("reconcile of %d app(s) failed; retrying", len(batch))
                self.metrics.reconcile_errors.labels(reason="batch").inc()
                for key in batch:
                    self._retry_later(key)

    def links_changed(self) -> None:
        """An agent link changed state: look again at once, not at the next tick."""
        self._wake.set()

    def _check_agents(self) -> None:
        fresh = self.cache.fresh_agents(self.clock())
        if fresh != self._fresh_agents:
            changed = fresh.symmetric_difference(self._fresh_agents)
            lost = self._fresh_agents - fresh
            if lost:
                logger.info("agent heartbeat expired on %s: rescheduling their placements", sorted(lost))
            self._fresh_agents = fresh
            self.cache.topology_epoch += 1  # a heartbeat expiring is a change no watch event reports
            self.enqueue_affected_by_nodes(frozenset(changed))
        withdrawn = frozenset[str]()
        if self.links is not None:
            self.links.sync(self.cache.link_targets())
            withdrawn = self.links.withdrawn()
        serving = fresh - withdrawn
        if serving != self._serving_agents:
            # Readiness only: no new scheduling decision (the topology epoch stays), so an agent
            # restarting within its Lease keeps its placements and serves them from its caches.
            changed = serving.symmetric_difference(self._serving_agents)
            if newly := (self._serving_agents - serving) & withdrawn:
                logger.info("agent link down or starting on %s: withdrawing its addresses", sorted(newly))
            self._serving_agents = serving
            self.enqueue_affected_by_nodes(frozenset(changed))

    # --- one batch ------------------------------------------------------------------------------

    async def reconcile_batch(self, keys: list[str]) -> None:
        started = time.monotonic()
        apps = [self.cache.apps[k] for k in keys if k in self.cache.apps]
        for key in keys:
            if key not in self.cache.apps:
                self._forget(key)
        if not apps:
            return
        prepared = await asyncio.gather(*(self._prepare(app) for app in apps))

        now = self.clock()
        self._check_agents()
        ready_to_place = [
            (a, p)
            for a, p in zip(apps, prepared, strict=True)
            if p.problem is None and p.digest and not self._waits_for_dependency_pods(a)
        ]
        decisions: list[AppDecision] = []
        to_decide = []
        for app, _ in ready_to_place:
            settled = self._settled_decision(app)
            if settled is not None:
                decisions.append(settled)
            else:
                to_decide.append(app)
        requests = [
            adapt.app_request(app, dependency_nodes=adapt.dependency_nodes(self.cache, app))
            for app in to_decide
        ]
        generations = {app.key: app.metadata.generation or 0 for app in to_decide}
        for request in requests:
            self._wake_at_toleration_expiry(
                request.key, next_toleration_expiry(request.tolerations, self.cache.nodes.values(), now), now
            )
        pending = iter_decisions(cluster=adapt.cluster_state(self.cache, now=now), apps=requests, now=now)
        while True:
            decide_start = time.perf_counter()
            decision = next(pending, None)
            if decision is None:
                break
            self.metrics.decision_seconds.observe(time.perf_counter() - decide_start)
            decisions.append(decision)
            self._decided[decision.app] = (generations[decision.app], self.cache.topology_epoch, decision)
            # A batch of a thousand decisions is seconds of CPU: let the Lease renewal and the
            # watch streams run in between, or the leader loses its Lease mid-batch.
            await asyncio.sleep(0)
        by_key: dict[str, AppDecision] = {d.app: d for d in decisions}

        gate = asyncio.Semaphore(self.config.write_concurrency)

        async def one(app: WasmApp, prep: Prepared) -> None:
            async with gate:
                try:
                    await self._apply(app, prep, by_key.get(app.key))
                except ApiException as e:
                    logger.warning(
                        "reconcile of %s failed: %s %s: %s; retrying",
                        app.key,
                        e.status,
                        e.reason,
                        api_message(e),
                    )
                    self.metrics.reconcile_errors.labels(reason="api").inc()
                    self._retry_later(app.key)

        with self.events.hold() if self.events is not None else contextlib.nullcontext():
            await asyncio.gather(*(one(a, p) for a, p in zip(apps, prepared, strict=True)))
        self.metrics.apps.set(len(self.cache.apps))
        self.metrics.unschedulable.set(sum(not d.fully_scheduled for d in decisions))
        per_node: dict[str, int] = {n: 0 for n in self.cache.nodes}
        for p in self.cache.placements.values():
            per_node[p.spec.node_name] = per_node.get(p.spec.node_name, 0) + 1
        for node, count in per_node.items():
            self.metrics.placements.labels(node=node).set(count)
        self.metrics.reconcile_seconds.observe(time.monotonic() - started)

    def _waits_for_dependency_pods(self, app: WasmApp) -> bool:
        """A new app that prefers its dependencies' nodes is placed once their pods are bound (a pod
        event requeues it), or when `dependency_wait_seconds` have passed, whichever comes first."""
        if not app.spec.placement.prefer_near_dependencies or self.cache.app_placements(app.key):
            self._dependency_wait.pop(app.key, None)
            return False
        if not adapt.unbound_dependencies(self.cache, app):
            self._dependency_wait.pop(app.key, None)
            return False
        started = self._dependency_wait.get(app.key)
        if started is None:
            self._dependency_wait[app.key] = time.monotonic()
            delay = self.config.dependency_wait_seconds
            asyncio.get_running_loop().call_later(delay, self.enqueue, app.key)
            return True
        return time.monotonic() - started < self.config.dependency_wait_seconds

    def _wake_at_toleration_expiry(self, key: str, expiry: datetime | None, now: datetime) -> None:
        """A NoExecute taint tolerated for tolerationSeconds stops being tolerated with no event
        to say so: decide the app again at that moment (and not by reusing the old decision)."""
        timer = self._expiry_timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if expiry is None:
            return
        delay = max(0.0, (expiry - now).total_seconds()) + 0.05

        def expired() -> None:
            self._expiry_timers.pop(key, None)
            self._decided.pop(key, None)
            self.enqueue(key)

        self._expiry_timers[key] = asyncio.get_running_loop().call_later(delay, expired)

    def _settled_decision(self, app: WasmApp) -> AppDecision | None:
        """The last decision, if deciding again could not change it: same generation, nothing
        changed in nodes or agents since (the topology epoch), every replica placed, and the
        placements are where it put them. Placement status events (agents reporting) then cost no
        scheduling at all, which at a thousand apps is most of the operator's CPU."""
        last = self._decided.get(app.key)
        if last is None:
            return None
        generation, epoch, decision = last
        if generation != (app.metadata.generation or 0) or epoch != self.cache.topology_epoch:
            return None
        if not decision.fully_scheduled:
            return None
        live = {
            p.spec.node_name
            for p in self.cache.app_placements(app.key)
            if p.metadata.deletion_timestamp is None
        }
        return decision if live == set(decision.nodes) else None

    def _forget(self, key: str) -> None:
        timer = self._expiry_timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        for store in (
            self._prepared,
            self._retry_delay,
            self._generation_seen,
            self._last_message,
            self._published,
            self._published_slices,
            self._decided,
            self._dependency_wait,
        ):
            store.pop(key, None)

    # --- before scheduling: validate, provide dependencies, pin the digest ------------------------

    async def _prepare(self, app: WasmApp) -> Prepared:
        generation = app.metadata.generation or 0
        cached = self._prepared.get(app.key)
        if (
            cached is not None
            and cached.generation == generation
            and cached.problem is None
            and not cached.stale
        ):
            return cached
        prep = Prepared(generation=generation)
        ns = app.metadata.namespace or ""
        try:
            prep.problem = await self._validate(app)
            if prep.problem is None:
                await self._ensure_dependencies(app)
                prep.endpoints = dependency_endpoints(app, namespace=ns)
                prep.digest = await self._resolve_digest(app)
        except ResolveError as e:
            kept = adapt.pinned_digest(app, self.cache.app_placements(app.key))
            if kept is None:
                prep.problem = ("ModuleUnavailable", str(e))
            else:
                # Fail static: a scale-out during a registry outage places the bytes already
                # running; the lookup is retried, and a tag that moved meanwhile then rolls out.
                prep.digest, prep.stale = kept, True
                if self._last_message.get(f"stale:{app.key}") != str(e):
                    self._last_message[f"stale:{app.key}"] = str(e)
                    await self.kube.event(
                        event_ref(app),
                        type_="Warning",
                        reason="ModuleUnresolved",
                        message=f"{e}; keeping {kept}, which the app's placements run",
                    )
                self._retry_later(app.key)
        if prep.problem is not None:
            if self._last_message.get(f"problem:{app.key}") != prep.problem[1]:
                self._last_message[f"problem:{app.key}"] = prep.problem[1]
                await self.kube.event(
                    event_ref(app), type_="Warning", reason=prep.problem[0], message=prep.problem[1]
                )
            self._retry_later(app.key)
        elif not prep.stale:
            self._retry_delay.pop(app.key, None)
            self._last_message.pop(f"problem:{app.key}", None)
            self._last_message.pop(f"stale:{app.key}", None)
        self._prepared[app.key] = prep
        return prep

    async def _validate(self, app: WasmApp) -> tuple[str, str] | None:
        """What the schema cannot check: references to other objects."""
        ns = app.metadata.namespace or ""
        for env in app.spec.env:
            ref = env.value_from.secret_key_ref if env.value_from else None
            if ref is None:
                continue
            data = await self.kube.read_secret(ns, ref.name)
            if data is None:
                return "SecretNotFound", f"env {env.name}: Secret {ns}/{ref.name} does not exist"
            if ref.key not in data:
                return "SecretKeyNotFound", f"env {env.name}: Secret {ns}/{ref.name} has no key {ref.key!r}"
        for secret in app.spec.module.image_pull_secrets:
            if await self.kube.read_pull_secret(ns, secret.name) is None:
                return (
                    "PullSecretNotFound",
                    f"imagePullSecrets: Secret {ns}/{secret.name} is missing or not a dockerconfigjson",
                )
        return None

    async def _ensure_dependencies(self, app: WasmApp) -> None:
        for dep in app.spec.dependencies:
            if dep.service_ref is not None:
                continue
            password = generate_password() if dep.mysql is not None else None
            for body in render_dependency(app, dep, password=password).all():
                if await self.kube.create_if_absent(body):
                    await self._inform(
                        app,
                        reason="DependencyCreated",
                        message=f"created {body['kind']} {body['metadata']['name']} for {dep.name}",
                    )

    async def _resolve_digest(self, app: WasmApp) -> str:
        image = app.spec.module.image
        if "@sha256:" in image:
            return image.split("@", 1)[1]
        ns = app.metadata.namespace or ""
        secrets = []
        for ref in app.spec.module.image_pull_secrets:
            secret = await self.kube.read_pull_secret(ns, ref.name)
            if secret is not None:
                secrets.append(secret)
        digest = await self.resolver.resolve(image, secrets)
        logger.debug("%s: module %s resolved to %s", app.key, image, digest)
        return digest

    # --- after scheduling: write placements and status --------------------------------------------

    async def _apply(self, app: WasmApp, prep: Prepared, decision: AppDecision | None) -> None:
        ns, name = app.metadata.namespace or "", app.metadata.name or ""
        placements = self.cache.app_placements(app.key)
        if decision is not None and prep.digest is not None:
            await self._converge(app, prep, decision, placements)
            placements = self.cache.app_placements(app.key)
            if decision.fully_scheduled:
                seen = self._generation_seen.pop(app.key, None)
                if seen is not None:
                    self.metrics.scheduling_latency.observe(time.monotonic() - seen[1])
            message = decision.message or ""
            if message and self._last_message.get(app.key) != message:
                await self.kube.event(
                    event_ref(app), type_="Warning", reason="FailedScheduling", message=message
                )
            self._last_message[app.key] = message

        dep_pods = {
            dep.name: self.cache.dependency_pods.get((ns, name, dep.name), {})
            for dep in app.spec.dependencies
        }
        status = adapt.app_status(
            app,
            placements=placements,
            fresh_agents=self._fresh_agents,
            serving_agents=self._serving_agents,
            decision=decision,
            digest=prep.digest or (app.status.resolved_digest if app.status else None),
            dependencies=adapt.dependencies_condition(app, dep_pods),
            problem=prep.problem,
            now=self.clock(),
        )
        new = status.to_dict()
        old = app.status.to_dict() if app.status else None
        if new != old:
            version = await self.kube.write_app_status(ns, name, new)
            # Our own write: the watch event will say the same, and the cache, now at that
            # version, can tell it from news without parsing it.
            app.status = status
            app.metadata.resource_version = version
        if app.spec.trigger.http is not None:
            await self._publish_endpoints(app, placements)

    async def _inform(self, app: WasmApp, *, reason: str, message: str) -> None:
        """A Normal Event on `app`: queued for the background sender when there is one."""
        if self.events is not None:
            self.events.record(event_ref(app), type_="Normal", reason=reason, message=message)
        else:
            await self.kube.event(event_ref(app), type_="Normal", reason=reason, message=message)

    async def _publish_endpoints(self, app: WasmApp, placements: list[WasmPlacement]) -> None:
        """Keep `<app>` Service + EndpointSlices on the agents hosting the app's live placements."""
        ns, name = app.metadata.namespace or "", app.metadata.name or ""
        members = []
        for p in placements:
            agent = self.cache.agents.get(p.spec.node_name)
            if p.metadata.deletion_timestamp is not None or agent is None or agent.endpoint is None:
                continue
            ready = adapt.is_ready(p) and p.spec.node_name in self._serving_agents
            members.append(
                endpoints.AgentEndpoint(p.spec.node_name, agent.endpoint[0], agent.endpoint[1], ready)
            )
        desired = [endpoints.render_service(app), *endpoints.render_slices(app, members)]
        written = self._published.get(app.key, {})
        rendered = {f"{b['kind']}/{b['metadata']['name']}": json.dumps(b, sort_keys=True) for b in desired}
        if rendered == written:
            return
        known = self._published_slices.get(app.key)
        if known is None and app.key not in self.existing_at_start:
            known = set()  # a new app: no earlier run can have published slices for it
        for body in desired:
            key = f"{body['kind']}/{body['metadata']['name']}"
            if written.get(key) == rendered[key]:
                continue
            if known is not None and key not in written:
                await self.kube.create_or_apply(body)  # nobody can have written it: create
            else:
                await self.kube.apply(body)
        wanted = endpoints.slice_names(desired[1:])
        if known is None:  # first time since start: whatever an earlier run left behind
            await self.kube.prune_endpoint_slices(ns, name, keep=wanted)
        else:
            for stale in known - wanted:
                await self.kube.delete_endpoint_slice(ns, stale)
        self._published[app.key] = rendered
        self._published_slices[app.key] = wanted

    async def _converge(
        self, app: WasmApp, prep: Prepared, decision: AppDecision, placements: list[WasmPlacement]
    ) -> None:
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
            actual=adapt.actual_placements(placements, fresh_agents=self._serving_agents),
            replicas=app.spec.replicas,
            max_unavailable=app.spec.rollout.resolve_max_unavailable(replicas=app.spec.replicas),
        )
        owner = OwnerReference(
            api_version=app.api_version,
            kind=app.kind,
            name=app.metadata.name or "",
            uid=app.metadata.uid or "",
            controller=True,
            block_owner_deletion=True,
        )

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
                message = f"{verb} {', '.join(sorted(nodes))}{suffix}"
                await self._inform(app, reason=reason, message=message)
        if actions.held_back or actions.waiting_for_termination:
            self._retry_later(app.key)


def event_ref(app: WasmApp) -> dict[str, Any]:
    """What an Event needs of its object: far cheaper than serializing the whole app."""
    meta = app.metadata
    return {
        "apiVersion": app.api_version,
        "kind": app.kind,
        "metadata": {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid},
    }


def api_message(error: ApiException) -> str:
    """The apiserver's own explanation (a Status body), which says far more than the HTTP reason."""
    try:
        return str(json.loads(error.body or b"{}").get("message", ""))
    except (TypeError, ValueError):
        return str(error.body or "")[:500]
