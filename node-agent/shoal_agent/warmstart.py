"""Warm start: a restarted agent serves the HTTP apps it served before it stopped, from its own disk,
before it imports its Kubernetes client or says a word to the apiserver.

Why: kubelet restarts a crashed agent container in place, with its cache volume intact, and every
module it ran is still compiled on that disk. What kept the apps down for 2.7-6.8 s after a restart
(the chaos suite's `agent_restart_serving_s`) was the Python process itself: 3.3 s of imports
(kubernetes_asyncio 1.5 s, the pydantic models 0.85 s, aiohttp 0.6 s), then the apiserver's listing,
then a load per placement. This module imports only the data plane, prometheus-client and the
standard library, reads the checkpoint, cache-loads each module and listens; the rest of the agent
starts behind it and reconciles.

The checkpoint (checkpoint.py) lists the HTTP app versions the agent served; apps with env values
from Secrets or with dependencies are not in it and start the usual way.

Reconciling: when a placement worker loads exactly the spec and digest a warm app runs, `Serving`
hands it the warm app (no second load, no gap); a warm app that no placement of the first listing
claims is unmounted once the agent has settled (`release_unclaimed`). The operator routes to the agent
again only once its `/livez` says ready, which still waits for that first listing: warm serving
answers requests that reach the agent meanwhile (a Service's stale endpoints, a retrying client),
and makes every placement settle at once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import Checkpoint
from .config import AgentConfig
from .metrics import AgentMetrics
from .runtime import EngineSettings, WasmRuntime
from .serving import Serving

log = logging.getLogger(__name__)


@dataclass
class WarmStart:
    """What the warm start built; the agent goes on with these instead of making its own."""

    metrics: AgentMetrics
    runtime: WasmRuntime
    serving: Serving
    served: int = 0
    skipped: int = 0
    seconds: float = 0.0


def start(cfg: AgentConfig) -> WarmStart:
    """The data plane up and listening on the trigger port, serving what the checkpoint lists."""
    began = time.monotonic()
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    metrics = AgentMetrics(cfg.node_name)
    runtime = WasmRuntime(
        metrics,
        cache_dir=cfg.module_cache_dir,
        settings=EngineSettings(memory_budget_bytes=cfg.memory_budget_bytes),
    )
    checkpoint = Checkpoint(cfg.checkpoint_path)
    serving = Serving(runtime, cluster_domain=cfg.cluster_domain, checkpoint=checkpoint)
    warm = WarmStart(metrics, runtime, serving)
    for entry in checkpoint.read():
        try:
            wasm = Path(entry.source).read_bytes()
            serving.serve_warm(runtime.load_app(entry.spec, wasm, entry.digest), entry)
            warm.served += 1
        except Exception as e:  # a module gone from the cache, or no longer loadable: start it cold
            log.warning("warm start: %s/%s not served: %s", entry.spec.namespace, entry.spec.name, e)
            warm.skipped += 1
    try:
        serving.listen(cfg.http_host, cfg.http_port)
    except BaseException:
        with contextlib.suppress(Exception):
            runtime.close()
        raise
    warm.seconds = time.monotonic() - began
    log.info(
        "warm start: serving %d app(s) from the checkpoint (%d skipped) in %.3fs",
        warm.served,
        warm.skipped,
        warm.seconds,
    )
    return warm
