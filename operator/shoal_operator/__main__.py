"""shoal-operator: elect a leader, list and watch what it schedules by (informers: the first lists warm
the cache), then reconcile.

Two replicas never fight: only the holder of the `shoal-operator` Lease watches and writes; the
other waits to take over. Losing the Lease stops this replica (the Deployment restarts it as a
standby), which is simpler and safer than trying to step down in place.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from typing import Any

from kubernetes_asyncio import client, config
from prometheus_client import start_http_server

from shoal_operator.cache import ClusterCache
from shoal_operator.config import OperatorConfig
from shoal_operator.events import EventRecorder
from shoal_operator.handlers import all_synced, informers
from shoal_operator.kube import Kube, look_up_proxy_once
from shoal_operator.leader import ElectionThread
from shoal_operator.liveness import AgentLinks
from shoal_operator.metrics import OperatorMetrics
from shoal_operator.reconciler import Reconciler
from shoal_operator.resolver import DigestResolver

logger = logging.getLogger("shoal_operator")


async def api_configuration() -> client.Configuration:
    cfg = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(client_configuration=cfg)
    return cfg


def api_client(cfg: client.Configuration) -> client.ApiClient:
    api = client.ApiClient(cfg)
    look_up_proxy_once(api, cfg.host)
    return api


async def run(cfg: OperatorConfig, *, stop: asyncio.Event) -> int:
    metrics = OperatorMetrics()
    start_http_server(cfg.metrics_port, addr=cfg.metrics_host, registry=metrics.registry)
    logger.info("metrics on %s:%d/metrics", cfg.metrics_host, cfg.metrics_port)
    api_cfg = await api_configuration()
    async with api_client(api_cfg) as api:
        elector = None
        if cfg.leader_election:
            elector = ElectionThread(
                api_cfg, namespace=cfg.lease_namespace, name="shoal-operator", identity=cfg.identity
            )
            logger.info("waiting to lead (Lease %s/shoal-operator) as %s", cfg.lease_namespace, cfg.identity)
            acquire = asyncio.ensure_future(elector.acquire())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                acquire.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await acquire
                await elector.release()
                return 0
            stopping.cancel()
            logger.info("became the leader")
            metrics.leader.set(1)

        cache = ClusterCache()
        kube = Kube(api, identity=cfg.identity)
        events = EventRecorder(kube.event, on_drop=metrics.events_dropped.inc)
        reconciler = Reconciler(
            cache=cache,
            kube=kube,
            resolver=DigestResolver(),
            config=cfg,
            metrics=metrics,
            events=events,
        )
        links = reconciler.agents.links = AgentLinks(on_change=reconciler.links_changed)
        watches = informers(api, cache=cache, reconciler=reconciler, agent_namespace=cfg.agent_namespace)
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(w.run(), name=f"watch {w.what}") for w in watches
        ]
        tasks.append(asyncio.create_task(stop.wait(), name="stop"))
        if elector is not None:
            tasks.append(asyncio.create_task(elector.lost.wait(), name="leadership-lost"))
        synced = asyncio.create_task(all_synced(watches), name="first lists")
        done, _ = await asyncio.wait([synced, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if synced in done:
            logger.info(
                "cache warm: %d nodes, %d agents, %d apps, %d placements",
                len(cache.nodes),
                len(cache.agents),
                len(cache.apps),
                len(cache.placements),
            )
            reconciler.publish.existing_at_start = frozenset(cache.apps)
            reconciler.enqueue_all()
            tasks += [
                asyncio.create_task(reconciler.run(), name="reconciler"),
                asyncio.create_task(events.run(), name="events"),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        else:
            synced.cancel()
        first = next(iter(done))
        code = 0
        if first.get_name() == "leadership-lost":
            logger.error("lost the leader Lease; stopping so a standby can take over")
            code = 1
        elif first.get_name() != "stop":
            logger.error("%s ended unexpectedly: %r", first.get_name(), first.exception())
            code = 1
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=10)
        await links.close()
        if elector is None or not elector.lost.is_set():  # a leader that lost its Lease must not write
            with contextlib.suppress(Exception):
                await asyncio.wait_for(events.flush(), timeout=5)
        if elector is not None:
            await elector.release()
            metrics.leader.set(0)
        logger.info("stopped")
        return code


def parse_args(argv: list[str] | None) -> tuple[OperatorConfig, bool]:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="shoal-operator", description=__doc__)
    parser.add_argument(
        "--agent-namespace", default=env("SHOAL_AGENT_NAMESPACE", env("POD_NAMESPACE", "shoal-system"))
    )
    parser.add_argument("--lease-namespace", default=env("POD_NAMESPACE", "shoal-system"))
    parser.add_argument("--identity", default=env("POD_NAME", f"{socket.gethostname()}-{os.getpid()}"))
    parser.add_argument("--metrics-port", type=int, default=int(env("SHOAL_METRICS_PORT", "8080")))
    parser.add_argument("--metrics-host", default=env("SHOAL_METRICS_HOST", "0.0.0.0"))
    parser.add_argument("--no-leader-election", action="store_true", help="for a single replica")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    return (
        OperatorConfig(
            agent_namespace=args.agent_namespace,
            lease_namespace=args.lease_namespace,
            identity=args.identity,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
            leader_election=not args.no_leader_election,
        ),
        args.verbose,
    )


def main(argv: list[str] | None = None) -> None:
    cfg, verbose = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING)

    async def _main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run(cfg, stop=stop)

    sys.exit(asyncio.run(_main()))


if __name__ == "__main__":
    main()
