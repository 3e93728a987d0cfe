"""This node's placements, each driven through its lifecycle by a `PlacementWorker`.

    Pending -> Pulling -> Compiling -> Ready          (HTTP routes mounted / trigger started / job running)
                 \\________\\__________-> Failed       (message says why; retried with backoff when the
                                                      cause may go away: registry down, Secret missing)
    Ready -> Draining (placement deleting, agent stopping): no new work, in-flight finishes, unload.

A new template (spec.templateHash) is loaded next to the running version, then swapped in atomically
and the old one retired, so an update never drops requests. If the new version fails to load, the old
one keeps serving and the status says Failed for the new template.

Jobs: while running, state Ready with ready=true; success stays Ready (exitCode 0, condition
Complete=True); exhausting backoffLimit is Failed (condition Complete=False). A finished job is not
re-run when the agent restarts (its status already records the outcome for this template).

Schedules: Ready while the loop runs (triggers/schedule.py); each run a fresh instance, its record
(times, outcome, exit code, output tail) kept in status.runs, the latest few, across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from shoal_api.backoff import Backoff, Retry
from shoal_api.constants import GROUP, VERSION, WASMPLACEMENT_PLURAL
from shoal_api.egress import parse_allowed_host
from shoal_api.informer import Informer, cluster_objects
from shoal_api.naming import node_selector
from shoal_api.schedule import parse_schedule, schedule_problem
from shoal_api.wasmapp import PlacementState
from shoal_api.wasmnode import NodePlacement, NodeResources
from shoal_api.wasmplacement import WasmPlacement, WasmPlacementStatus
from shoal_oci import ArtifactPuller, OciError, PullResult

from .apps import AppBindings, BindingsListener, InFlight, RunningApp, TriggerFactory
from .capabilities import capabilities_for
from .config import AgentConfig
from .files import FilesError, FilesPlan, FileTrees, config_map_files, content_key, inside, write_files
from .metrics import AgentMetrics
from .runtime import AppLimits, AppSpec, InvocationRequest, InvocationResult, LoadError, Outcome
from .secrets import MissingReference, SecretReader
from .serving import Serving
from .status import StatusPump, transition, with_job_condition
from .triggers import Due, Finished, JobSpec, ScheduleRunner, ScheduleView, Waiting, run_job

log = logging.getLogger(__name__)

RETRY = Backoff(first=2.0, cap=60.0)
STATUS_FLUSH_SECONDS = 3.0
ROUTE_LINGER_SECONDS = 2.0
"""A deleted placement's HTTP routes serve this long before they go (see `PlacementWorker.drain`)."""


@dataclass
class AgentContext:
    """What every placement worker shares."""

    cfg: AgentConfig
    api: client.ApiClient
    serving: Serving
    puller: ArtifactPuller
    metrics: AgentMetrics
    secrets: SecretReader
    files: FileTrees
    trigger_factories: dict[str, TriggerFactory] = field(default_factory=dict)
    listeners: list[BindingsListener] = field(default_factory=list)
    on_change: Callable[[], None] = lambda: None
    forget_module: Callable[[str], None] = lambda _digest: None


class PlacementError(Exception):
    """A failure with its status message; `retryable` when waiting may fix it."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def describe(err: BaseException, reference: str) -> PlacementError:
    if isinstance(err, PlacementError):
        return err
    if isinstance(err, MissingReference):
        return PlacementError(str(err), retryable=True)
    if isinstance(err, FilesError):
        return PlacementError(str(err), retryable=err.retryable)
    if isinstance(err, OciError):
        return PlacementError(f"pull {reference}: {type(err).__name__}: {err}", retryable=err.retryable)
    if isinstance(err, LoadError):
        return PlacementError(f"load: {type(err).__name__}: {err}", retryable=False)
    if isinstance(err, ApiException):
        return PlacementError(f"Kubernetes API: {err.status} {err.reason}", retryable=True)
    # e.g. a BindingsListener's DependencyError: say what it was, and retry (it may be transient).
    log.warning("error loading %s", reference, exc_info=err)
    return PlacementError(f"{type(err).__name__}: {err}", retryable=True)


def template_hash(p: WasmPlacement) -> str:
    return p.spec.template_hash or p.spec.compute_template_hash()


def _job_result(result: InvocationResult) -> str:
    """How an attempt ended, in words: "exited with code 33", "deadline of 1s exceeded"."""
    if result.outcome is Outcome.OK:
        return "exited with code 0"
    return result.message or result.outcome.value.replace("_", " ")


def _tail(result: InvocationResult) -> str:
    text = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    return WasmPlacementStatus.bound_output(text)


class PlacementWorker:
    """Owns one placement: its loads, its running version, its status."""

    def __init__(self, ctx: AgentContext, placement: WasmPlacement) -> None:
        self.ctx = ctx
        self.namespace = placement.metadata.namespace or ""
        self.name = placement.metadata.name or ""
        self.placement = placement
        self.status = placement.status or WasmPlacementStatus()
        self.pump = StatusPump(ctx.api, self.namespace, self.name)
        self.active: RunningApp | None = None
        self._target: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._reported = False
        """This process set a status (the one read from the object may be a dead agent's)."""

    @property
    def settled(self) -> bool:
        """Serving, done (a finished job, a module that cannot load), or failing and retrying."""
        return (
            self.active is not None
            or (self._task is not None and self._task.done())
            or (self._reported and self.state == "Failed")
        )

    @property
    def app(self) -> str:
        return self.placement.spec.app

    @property
    def state(self) -> PlacementState:
        return self.status.state

    def update(self, placement: WasmPlacement) -> None:
        """Called for every watch event; only a new template starts work."""
        self.placement = placement
        wanted = template_hash(placement)
        if wanted == self._target:
            return
        self._target = wanted
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.create_task(
            self._converge(placement, wanted, time.monotonic()),
            name=f"placement-{self.namespace}/{self.name}",
        )

    # --- status -------------------------------------------------------------------------------------

    def _set(self, state: PlacementState, ready: bool, message: str, **job: Any) -> None:
        self.status = transition(
            self.status, state=state, ready=ready, message=message, observed_template_hash=self._target, **job
        )
        self._reported = True
        self.pump.publish(self.status)
        self.ctx.on_change()

    def _job_already_done(self, placement: WasmPlacement, wanted: str) -> bool:
        s = placement.status
        return (
            placement.spec.trigger.job is not None
            and s is not None
            and s.observed_template_hash == wanted
            and s.exit_code is not None
            and s.state in ("Succeeded", "Failed", "Ready")  # Ready: a job finished by an older agent
            and any(c.type == "Complete" for c in s.conditions)
        )

    # --- loading ------------------------------------------------------------------------------------

    async def _converge(self, placement: WasmPlacement, wanted: str, seen: float) -> None:
        if self._job_already_done(placement, wanted):
            log.info("%s/%s: job already finished for template %s", self.namespace, self.name, wanted)
            return
        if self.active is None:
            self._set("Pending", False, "placement seen by the agent")
        retry = Retry(RETRY)
        while True:
            try:
                running = await self._load(placement, wanted)
                break
            except asyncio.CancelledError:
                raise
            except Exception as e:
                err = describe(e, placement.spec.module.reference)
                delay = retry.next_delay()
                message = str(err)
                if self.active is not None:
                    message += f"; still serving template {self.active.template_hash}"
                if err.retryable:
                    message += f" (retrying in {delay:.0f}s)"
                log.warning("%s/%s: %s", self.namespace, self.name, message)
                self._set("Failed", False, message)
                if not err.retryable:
                    return
                await retry.sleep(delay)
        try:
            await self._activate(placement, running)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._set("Failed", False, f"starting trigger: {e}")
            await self._retire(running)
            return
        self.ctx.metrics.placement_cold_start_seconds.labels(
            self.namespace, self.app, self.ctx.cfg.node_name
        ).observe(time.monotonic() - seen)

    async def _load(self, placement: WasmPlacement, wanted: str) -> RunningApp:
        ctx, spec, ns = self.ctx, placement.spec, self.namespace
        kind = spec.trigger.kind
        if kind not in ("http", "job", "schedule") and kind not in ctx.trigger_factories:
            raise PlacementError(f"trigger kind {kind!r} is not available on this agent", retryable=False)
        if spec.trigger.schedule is not None:
            problem = schedule_problem(spec.trigger.schedule.cron, spec.trigger.schedule.time_zone)
            if problem is not None:
                raise PlacementError(problem, retryable=False)
        reference = spec.module.reference
        self._set("Pulling", False, f"pulling {reference}")
        pull_secrets = await ctx.secrets.pull_secrets(ns, spec.module.image_pull_secrets)
        env = await ctx.secrets.resolve_env(ns, spec.env)
        variables = await ctx.secrets.resolve_env(ns, spec.variables)
        pulled = await ctx.puller.pull(reference, pull_secrets)
        ctx.metrics.artifact_pull_seconds.labels(ns, spec.app, ctx.cfg.node_name, pulled.result).observe(
            pulled.seconds
        )
        files = await self._files(placement, pulled)
        try:
            return await self._load_pulled(placement, wanted, pulled, env, variables, files)
        except BaseException:
            ctx.files.release(files)
            raise

    async def _files(self, placement: WasmPlacement, pulled: PullResult) -> FilesPlan:
        """The app's file trees on this node (written once per content) and its scratch directory."""
        ctx, ns, declared = self.ctx, self.namespace, placement.spec.files
        if declared is None:
            return FilesPlan()
        mounts: list[tuple[str, str]] = []
        trees: set[Path] = set()
        for m in declared.mounts:
            what = f"files {m.path}"
            if m.artifact is not None:
                tree = await asyncio.to_thread(
                    ctx.files.tree,
                    "artifact",
                    pulled.digest.split(":", 1)[-1],
                    lambda folder, limit: ctx.puller.write_files(pulled, folder, limit),
                )
                host = inside(tree, m.artifact.path)
                if not host.is_dir():
                    raise FilesError(f"{what}: the artifact has no folder {m.artifact.path}", retryable=False)
            else:
                assert m.config_map is not None
                source = f"{what}: ConfigMap {ns}/{m.config_map.name}"
                data, binary = await ctx.secrets.config_map(ns, m.config_map.name, what)
                named = config_map_files(data, binary, source)
                tree = host = await asyncio.to_thread(
                    ctx.files.tree,
                    "configmap",
                    content_key(named),
                    functools.partial(write_files, named, source),
                )
            mounts.append((str(host), m.path))
            trees.add(tree)
        scratch = declared.scratch
        plan = FilesPlan(
            mounts=tuple(mounts),
            scratch=(scratch.path, scratch.size_bytes, str(ctx.cfg.scratch_dir)) if scratch else None,
            trees=frozenset(trees),
        )
        ctx.files.check_app(plan)
        ctx.files.use(plan)
        return plan

    async def _load_pulled(
        self,
        placement: WasmPlacement,
        wanted: str,
        pulled: PullResult,
        env: dict[str, str],
        variables: dict[str, str],
        files: FilesPlan,
    ) -> RunningApp:
        ctx, spec, ns = self.ctx, placement.spec, self.namespace
        self._set("Compiling", False, f"compiling {pulled.module_digest} ({pulled.format.value})")
        bindings = AppBindings(
            namespace=ns,
            app=spec.app,
            dependencies=tuple(spec.dependencies),
            capabilities=capabilities_for(spec.dependencies),
            share_keys_with=tuple(spec.capabilities.share_keys_with) if spec.capabilities else (),
        )
        app_spec = AppSpec(
            namespace=ns,
            name=spec.app,
            env=env,
            args=tuple(spec.trigger.args),
            entrypoint=spec.trigger.entrypoint,
            capabilities=bindings.capabilities,
            variables=variables,
            allowed_outbound=tuple(
                parse_allowed_host(p)
                for p in (spec.capabilities.allowed_outbound_hosts if spec.capabilities else ())
            ),
            limits=AppLimits(
                memory_bytes=spec.limits.memory_bytes,
                timeout_s=spec.limits.timeout_ms / 1000,
                max_concurrency=spec.limits.max_concurrency,
            ),
            mounts=files.mounts,
            scratch=files.scratch,
        )
        wasm = await asyncio.to_thread(pulled.module_path.read_bytes)
        bound: list[BindingsListener] = []
        try:
            for listener in ctx.listeners:
                await listener.bind(bindings)
                bound.append(listener)
            # No Secret value goes to the warm-start checkpoint: such apps get no source.
            source = pulled.module_path if all(v.value is not None for v in spec.env) else None
            loaded = await ctx.serving.load(app_spec, wasm, pulled.module_digest, source=source)
        except BaseException:
            for listener in bound:
                with contextlib.suppress(Exception):
                    await listener.unbind(bindings)
            raise
        inflight = InFlight(native=lambda: loaded.in_flight)
        serving = ctx.serving

        async def invoke(request: InvocationRequest) -> InvocationResult:
            return await serving.invoke(loaded, request)

        return RunningApp(
            template_hash=wanted,
            loaded=loaded,
            module_digest=pulled.module_digest,
            bindings=bindings,
            invoker=inflight.wrap(invoke),
            inflight=inflight,
            files=files,
        )

    # --- switching ----------------------------------------------------------------------------------

    async def _activate(self, placement: WasmPlacement, new: RunningApp) -> None:
        """Make `new` the serving version, then retire the previous one in the background."""
        ctx, trigger = self.ctx, placement.spec.trigger
        old = self.active
        if trigger.http is not None:
            mounted = ctx.serving.mount_http(new.loaded, trigger.http.path)
            self.active = new
            message = f"serving http {trigger.http.path}"
            if mounted.taken_by:
                message += "; path already served on this node by " + ", ".join(mounted.taken_by)
                message += ", reachable by Host only"
            if new.loaded.unimplemented:
                message += "; not implemented (calls trap): " + ", ".join(new.loaded.unimplemented)
            self._set("Ready", True, message)
        else:
            ctx.serving.unmount(self.namespace, self.app)
            self.active = new
            if trigger.job is not None:
                new.job_task = asyncio.create_task(self._run_job(placement, new), name=f"job-{self.name}")
            elif trigger.schedule is not None:
                new.job_task = asyncio.create_task(
                    self._run_schedule(placement, new), name=f"schedule-{self.name}"
                )
            else:
                factory = ctx.trigger_factories[trigger.kind]
                raw = trigger.to_dict().get(trigger.kind) or {}
                new.trigger = factory(new.bindings, raw, new.invoker)
                await new.trigger.start()
                self._set("Ready", True, f"{trigger.summary()} subscribed")
        if old is not None and old is not new:
            task = asyncio.create_task(self._retire(old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _run_job(self, placement: WasmPlacement, app: RunningApp) -> None:
        job = placement.spec.trigger.job
        assert job is not None
        total = job.backoff_limit + 1
        attempts = 0
        self._set("Ready", True, "job running", attempts=0, exit_code=None, output=None)

        async def attempt(request: InvocationRequest) -> InvocationResult:
            nonlocal attempts
            attempts += 1
            self._set("Ready", True, f"job running (attempt {attempts} of {total})", attempts=attempts)
            result = await app.invoker(request)
            self._set(
                "Ready",
                True,
                f"job attempt {attempts} of {total}: {_job_result(result)}",
                attempts=attempts,
                exit_code=result.exit_code,
                output=_tail(result),
            )
            return result

        outcome = await run_job(JobSpec(args=tuple(job.args), backoff_limit=job.backoff_limit), attempt)
        last = outcome.last
        common = {"attempts": attempts, "exit_code": last.exit_code, "output": _tail(last)}
        if outcome.succeeded:
            message = f"job succeeded: exit code 0 after {attempts} attempt(s)"
            self._set("Succeeded", True, message, **common)
            self.status = with_job_condition(self.status, complete=True, reason="Succeeded", message=message)
        else:
            message = f"job failed after {attempts} attempt(s): {_job_result(last)}"
            self._set("Failed", False, message, **common)
            self.status = with_job_condition(
                self.status, complete=False, reason="BackoffLimitExceeded", message=message
            )
        self.pump.publish(self.status)

    async def _run_schedule(self, placement: WasmPlacement, app: RunningApp) -> None:
        trigger = placement.spec.trigger.schedule
        assert trigger is not None
        schedule = parse_schedule(trigger.cron, trigger.time_zone)
        view = ScheduleView.of(schedule, trigger.concurrency_policy)

        def report(event: Due | Finished | Waiting) -> None:
            nonlocal view
            view, fields = view.observe(event, self.status.runs or [])
            self._set("Ready", True, view.message, **fields)

        runner = ScheduleRunner(
            schedule,
            trigger.concurrency_policy,
            app.invoker,
            report,
            node=self.ctx.cfg.node_name,
            args=tuple(trigger.args),
            max_wait_s=placement.spec.limits.timeout_ms / 1000,
            max_active=placement.spec.limits.max_concurrency,
        )
        self._set("Ready", True, view.message, active_runs=0)
        await runner.run()

    async def _retire(self, old: RunningApp, grace: float | None = None) -> None:
        """Stop its trigger, let in-flight invocations finish (bounded), then unload."""
        await old.stop_trigger()
        if not await old.inflight.wait_idle(self.ctx.cfg.grace_seconds if grace is None else grace):
            log.warning(
                "%s/%s: %d invocations still running at unload", self.namespace, self.name, old.inflight.count
            )
        runtime = self.ctx.serving.runtime
        if runtime.get(self.namespace, self.app) is old.loaded:
            runtime.unload(self.namespace, self.app)
        for listener in self.ctx.listeners:
            with contextlib.suppress(Exception):
                await listener.unbind(old.bindings)
        self.ctx.files.release(old.files)
        self.ctx.forget_module(old.module_digest)

    # --- removal ------------------------------------------------------------------------------------

    async def _cancel_work(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def drain(self, *, reason: str, grace: float, write_status: bool, linger: float = 0.0) -> None:
        """Stop routing new requests to this placement, wait for in-flight ones, unload. `linger`:
        keep serving that long first, while the address leaves the EndpointSlices and the clients'
        routes (as a pod's preStop sleep does): unmounting at once answered 404s meanwhile."""
        await self._cancel_work()
        if write_status:
            self._set("Draining", False, reason)
        active, self.active = self.active, None
        if active is not None:
            if linger > 0 and self.ctx.serving.mounted(self.namespace, self.app) is active.loaded:
                await asyncio.sleep(linger)
            self.ctx.serving.unmount(self.namespace, self.app, only=active.loaded)
            await self._retire(active, grace)
        for task in list(self._retiring):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if write_status:
            await self.pump.flush(STATUS_FLUSH_SECONDS)
        await self.pump.close()

    async def quiesce(self, grace: float) -> None:
        """Agent shutdown, step 1: no more loads or job attempts, say Draining, wait for in-flight."""
        await self._cancel_work()
        self._set("Draining", False, "agent is shutting down")
        if self.active is not None:
            await self.active.stop_trigger()
            await self.active.inflight.wait_idle(grace)


class PlacementManager:
    """Watches this node's placements and keeps one worker per placement."""

    def __init__(
        self, ctx: AgentContext, publish: Callable[[list[NodePlacement], NodeResources], None]
    ) -> None:
        self.ctx = ctx
        self._publish = publish
        self.workers: dict[tuple[str, str], PlacementWorker] = {}
        self._removals: set[asyncio.Task[None]] = set()
        lister, watcher = cluster_objects(
            ctx.api, GROUP, VERSION, WASMPLACEMENT_PLURAL, label_selector=node_selector(ctx.cfg.node_name)
        )
        self.watch = Informer("placement", lister, watcher, self._on_sync, self._on_event)
        self._task: asyncio.Task[None] | None = None
        self._first_listing: set[tuple[str, str]] | None = None
        self._settled = False
        ctx.on_change = self.publish
        ctx.forget_module = self._forget_module

    @property
    def watching(self) -> bool:
        return self.watch.synced.is_set() and self.watch.healthy

    @property
    def settled(self) -> bool:
        """Every placement of the first listing is settled (see `PlacementWorker.settled`). A restarted
        agent's placements still say Ready from before it died, so the operator (through `/livez`)
        routes to this agent again only from here on. Latched: a later load (a rolling update) keeps
        the old version serving meanwhile, which is no reason to withdraw the whole agent."""
        if not self._settled and self._first_listing is not None:
            self._settled = all(self.workers[k].settled for k in self._first_listing if k in self.workers)
        return self._settled

    def start(self) -> None:
        self._task = asyncio.create_task(self.watch.run(), name="placement-watch")

    def publish(self) -> None:
        placements: list[NodePlacement] = []
        cpu = memory = 0
        for (ns, name), w in sorted(self.workers.items()):
            placements.append(NodePlacement(namespace=ns, name=name, app=w.app, state=w.state))
            cpu += w.placement.spec.requests.cpu_millis
            memory += w.placement.spec.requests.memory_bytes
        self._publish(placements, NodeResources(cpu_millis=cpu, memory_bytes=memory))

    def _forget_module(self, digest: str) -> None:
        if not any(w.active is not None and w.active.module_digest == digest for w in self.workers.values()):
            with contextlib.suppress(ValueError):
                self.ctx.serving.forget_module(digest)

    # --- watch callbacks ----------------------------------------------------------------------------

    def _on_sync(self, items: list[dict[str, Any]]) -> None:
        seen = set()
        for obj in items:
            key = self._apply(obj)
            if key is not None:
                seen.add(key)
        if self._first_listing is None:
            self._first_listing = seen
        for key in set(self.workers) - seen:
            self._remove(key, deleting=False)

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if kind == "DELETED":
            self._remove((meta.get("namespace", ""), meta.get("name", "")), deleting=False)
        else:
            self._apply(obj)

    def _apply(self, obj: dict[str, Any]) -> tuple[str, str] | None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        try:
            placement = WasmPlacement.from_k8s(obj)
        except ValidationError as e:
            log.warning("ignoring invalid WasmPlacement %s/%s: %s", *key, e)
            return None
        if placement.spec.node_name != self.ctx.cfg.node_name:
            return None  # labelled for us but meant for another node (label values are truncated)
        if placement.metadata.deletion_timestamp is not None:
            self._remove(key, deleting=True)
            return key
        worker = self.workers.get(key)
        if worker is None:
            worker = self.workers[key] = PlacementWorker(self.ctx, placement)
            log.info("placement %s/%s (app %s) added", *key, placement.spec.app)
        worker.update(placement)
        return key

    def _remove(self, key: tuple[str, str], *, deleting: bool) -> None:
        worker = self.workers.pop(key, None)
        if worker is None:
            return
        log.info("placement %s/%s removed; draining", *key)
        task = asyncio.create_task(self._drain_and_forget(worker, deleting=deleting))
        self._removals.add(task)
        task.add_done_callback(self._removals.discard)
        self.publish()

    async def _drain_and_forget(self, worker: PlacementWorker, *, deleting: bool) -> None:
        await worker.drain(
            reason="placement is being deleted",
            grace=self.ctx.cfg.grace_seconds,
            write_status=deleting,
            linger=ROUTE_LINGER_SECONDS,
        )
        # Unless the app came back meanwhile (a new worker now owns its series).
        if not any(w.namespace == worker.namespace and w.app == worker.app for w in self.workers.values()):
            self.ctx.metrics.forget_app(worker.namespace, worker.app)

    # --- shutdown -----------------------------------------------------------------------------------

    async def shutdown(self, grace: float) -> None:
        """Stop watching, mark every placement Draining, wait (bounded) for in-flight work, unload."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        workers = list(self.workers.values())
        await asyncio.gather(*(w.quiesce(grace) for w in workers), return_exceptions=True)
        await asyncio.gather(
            *(w.drain(reason="agent is shutting down", grace=0, write_status=True) for w in workers),
            *self._removals,
            return_exceptions=True,
        )
        self.publish()
