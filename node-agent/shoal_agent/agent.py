"""The agent's run: register this node, run its Wasm placements, serve their HTTP triggers.

Start-up: servers up (healthz answers at once), WasmNode + Lease written, placement watch running;
/readyz turns 200 once both hold. SIGTERM (or SIGINT): /readyz and every trigger request answer 503,
placements are marked Draining (ready=false), in-flight invocations get `--grace-seconds` to finish,
guests still running after that are interrupted, the Lease stops being renewed, and the process exits 0
with no thread or child left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Sequence
from importlib import metadata

from kubernetes_asyncio import client, config

from shoal_oci import ArtifactPuller

from .apps import BindingsListener, TriggerFactory
from .capabilities import AgentCapabilities, CapabilityHost, ClusterDnsResolver, EndpointSliceResolver
from .checkpoint import Checkpoint
from .config import AgentConfig
from .files import FileTrees
from .metrics import AgentMetrics
from .placements import AgentContext, PlacementManager
from .registration import Registration
from .runtime import EngineSettings, HostFunctionRegistry, WasmRuntime, wasmtime_version
from .secrets import SecretReader
from .server import AgentServers
from .serving import Serving
from .warmstart import WarmStart

log = logging.getLogger("shoal_agent")


def agent_version() -> str:
    try:
        return metadata.version("shoal")
    except metadata.PackageNotFoundError:
        return "dev"


async def api_client(cfg: AgentConfig) -> client.ApiClient:
    """--kubeconfig / $KUBECONFIG if given, else in-cluster when in a pod, else ~/.kube/config."""
    c = client.Configuration()
    if cfg.kubeconfig:
        await config.load_kube_config(config_file=cfg.kubeconfig, client_configuration=c)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=c)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(client_configuration=c)
    return client.ApiClient(c)


async def run(
    cfg: AgentConfig,
    *,
    stop: asyncio.Event | None = None,
    api: client.ApiClient | None = None,
    host_functions: HostFunctionRegistry | None = None,
    trigger_factories: dict[str, TriggerFactory] | None = None,
    listeners: Sequence[BindingsListener] = (),
    warm: WarmStart | None = None,
) -> int:
    """Run until `stop` is set (or SIGTERM/SIGINT); the plug points are for capability code.
    `api` lets the caller share its client (the caller then closes it). `warm`: the data plane the
    warm start already serves from (warmstart.py), taken over instead of a new one."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    # Scratch directories a killed agent's invocations left (no app served before this point has one).
    shutil.rmtree(cfg.scratch_dir, ignore_errors=True)
    if warm is not None:
        metrics, runtime, serving = warm.metrics, warm.runtime, warm.serving
        if host_functions is not None:  # warm apps import none (no dependencies): safe to swap now
            runtime.use_host_functions(host_functions)
    else:
        metrics = AgentMetrics(cfg.node_name)
        runtime = WasmRuntime(
            metrics,
            cache_dir=cfg.module_cache_dir,
            settings=EngineSettings(memory_budget_bytes=cfg.memory_budget_bytes),
            host_functions=host_functions,
        )
        serving = Serving(
            runtime, cluster_domain=cfg.cluster_domain, checkpoint=Checkpoint(cfg.checkpoint_path)
        )
    owns_api = api is None
    if api is None:
        api = await api_client(cfg)
    registration = Registration(api, cfg, wasmtime_version=wasmtime_version(), agent_version=agent_version())
    ctx = AgentContext(
        cfg=cfg,
        api=api,
        serving=serving,
        puller=ArtifactPuller(cfg.oci_cache_dir),
        metrics=metrics,
        secrets=SecretReader(api),
        files=FileTrees(cfg.files_dir),
        trigger_factories=dict(trigger_factories or {}),
        listeners=list(listeners),
    )
    manager = PlacementManager(ctx, registration.set_placements)
    servers = AgentServers(
        serving,
        metrics,
        ready_checks=lambda: {
            "registered": registration.registered and registration.lease_fresh(),
            "placement watch": manager.watching,
        },
        settled=lambda: manager.settled,
    )
    try:
        await servers.start(
            http_host=cfg.http_host,
            http_port=cfg.http_port,
            metrics_host=cfg.metrics_host,
            metrics_port=cfg.metrics_port,
        )
        log.info(
            "agent for node %s: triggers on %s:%d (advertised %s), metrics on %s:%d, cache %s, "
            "memory budget %d MiB",
            cfg.node_name,
            cfg.http_host,
            cfg.http_port,
            cfg.advertise_host,
            cfg.metrics_host,
            cfg.metrics_port,
            cfg.cache_dir,
            cfg.memory_budget_bytes >> 20,
        )
        registration.start()
        manager.start()
        releaser = asyncio.create_task(release_when_settled(manager, serving), name="warm-release")
        await stop.wait()
        releaser.cancel()
        log.info("stopping: draining placements (grace %.1fs)", cfg.grace_seconds)
        servers.draining = True
        serving.keep_checkpoint()  # a drain for shutdown is no reason to start cold next time
        await manager.shutdown(cfg.grace_seconds)
        await registration.flush_status()
    finally:
        await registration.stop()
        await servers.stop()
        if runtime.plane.memory_in_use > 0:
            log.warning("interrupting guests still running after the grace period")
        runtime.interrupt()
        await asyncio.to_thread(runtime.close)
        if owns_api:
            await api.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0


async def release_when_settled(manager: PlacementManager, serving: Serving) -> None:
    """Once every placement of the first listing settled, warm apps none of them claimed stop."""
    while not manager.settled:  # noqa: ASYNC110 - a latched property, no event to await
        await asyncio.sleep(0.1)
    for key in serving.release_unclaimed():
        log.info("warm start: %s/%s is no longer placed here; unmounted", *key)


def main(cfg: AgentConfig, warm: WarmStart | None = None) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run_with_capabilities(cfg, warm))
    return 0


async def run_with_capabilities(cfg: AgentConfig, warm: WarmStart | None = None) -> int:
    """The agent as shipped: Redis/SQL host functions and the Redis pub/sub trigger plugged in.

    Dependencies are found through their Services' EndpointSlices (DNS when a Service has none),
    re-resolved every few seconds and right after a connection failure.
    """
    api = await api_client(cfg)
    resolver = EndpointSliceResolver(api, fallback=ClusterDnsResolver(cluster_domain=cfg.cluster_domain))
    caps = AgentCapabilities(CapabilityHost(resolver=resolver, secrets=SecretReader(api)))
    refresher = asyncio.create_task(
        caps.host.keep_fresh(interval_s=resolver.ttl_s), name="dependency-refresh"
    )
    try:
        return await run(
            cfg,
            api=api,
            host_functions=caps.host.registry(),
            trigger_factories={"redis": caps.redis_trigger},
            listeners=[caps],
            warm=warm,
        )
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        await asyncio.to_thread(caps.host.close)
        await api.close()
