"""Resolve a dependency's Service the way a headless-Service client does: from its EndpointSlices.

Why not only DNS: a ClusterIP needs kube-proxy (or an eBPF replacement) on the agent's node, and
the agent's pooled connections outlive any one lookup anyway. Reading the slices gives a ready pod
address directly, works in any cluster with routable pod IPs, and tells us when it changes. The
Service is read for its port -> targetPort mapping: a slice port carries the Service port's *name*
and the container's *number*. With no slices (a selector-less Service, or slices not readable)
the Service's cluster DNS name is used instead.

Needs RBAC: `get` on services and `list` on endpointslices (discovery.k8s.io) in the namespaces
of the Services dependencies reference.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from shoal_api.wasmplacement import ServiceEndpoint

from .pools import ClusterDnsResolver, EndpointResolver, HostPort

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_TTL_S = 3.0


@dataclass(frozen=True)
class SlicePort:
    """What a Service port maps to in its slices: match by name, else by the target number."""

    name: str
    target: int | None


class NoReadyEndpoint(LookupError):
    """The dependency's pods exist but none is ready: try again shortly."""


def service_port(service: Any, port: int) -> SlicePort:
    """The slice port to look for, from the Service's `spec.ports` entry for `port`."""
    for p in (service.spec.ports or []) if service.spec else []:
        if p.port == port:
            target = p.target_port
            if target is None:
                return SlicePort(name=p.name or "", target=port)
            if isinstance(target, int) or str(target).isdigit():
                return SlicePort(name=p.name or "", target=int(target))
            return SlicePort(name=p.name or "", target=None)  # a named container port
    return SlicePort(name="", target=port)


def pick_endpoint(slices: Iterable[Any], want: SlicePort) -> HostPort | None:
    """The first ready address (sorted, so every call agrees and pools are reused) whose slice
    has the wanted port; `ready` unset counts as ready, as the API documents."""
    candidates: list[HostPort] = []
    for s in slices:
        port = next((p.port for p in s.ports or [] if (p.name or "") == want.name and p.port), None)
        if port is None and want.target is not None:
            port = next((p.port for p in s.ports or [] if p.port == want.target), None)
        if port is None:
            continue
        for ep in s.endpoints or []:
            cond = ep.conditions
            if cond is not None and cond.ready is False:
                continue
            if cond is not None and cond.terminating:
                continue
            candidates.extend(HostPort(address, int(port)) for address in ep.addresses or [])
    return min(candidates, key=lambda h: (h.host, h.port)) if candidates else None


class EndpointSliceResolver:
    """EndpointResolver reading Services and EndpointSlices; answers are cached for `ttl_s`, and
    `forget()` (thread-safe: pools call it after a connection failure) drops them at once."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        fallback: EndpointResolver | None = None,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)
        self.fallback = fallback or ClusterDnsResolver(cluster_domain="cluster.local")
        self.ttl_s = ttl_s
        self.clock = clock
        self._cache: dict[tuple[str, str, int], tuple[float, HostPort]] = {}
        self._lock = threading.Lock()

    async def resolve(self, service: ServiceEndpoint) -> HostPort:
        key = (service.namespace, service.name, service.port)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and self.clock() < hit[0]:
            return hit[1]
        where = await self._lookup(service)
        with self._lock:
            self._cache[key] = (self.clock() + self.ttl_s, where)
        return where

    def forget(self, where: HostPort | None = None) -> None:
        """Drop cached answers (those pointing at `where`, or all): the next resolve asks again."""
        with self._lock:
            for key, (_, cached) in list(self._cache.items()):
                if where is None or cached == where:
                    del self._cache[key]

    async def _lookup(self, service: ServiceEndpoint) -> HostPort:
        try:
            svc = await self.core.read_namespaced_service(service.name, service.namespace)
        except ApiException as e:
            if e.status == 404:
                raise LookupError(f"Service {service.namespace}/{service.name} does not exist") from None
            if e.status != 403:
                raise
            log.warning("cannot read Service %s/%s (RBAC?): using DNS", service.namespace, service.name)
            return await self.fallback.resolve(service)
        try:
            listing = await self.discovery.list_namespaced_endpoint_slice(
                service.namespace, label_selector=f"{SERVICE_NAME_LABEL}={service.name}"
            )
        except ApiException as e:
            if e.status != 403:
                raise
            log.warning("cannot list EndpointSlices in %s (RBAC?): using DNS", service.namespace)
            return await self.fallback.resolve(service)
        where = pick_endpoint(listing.items or [], service_port(svc, service.port))
        if where is None:
            if getattr(svc.spec, "selector", None):
                # Pods back this Service and none is ready yet: binding now would hand the app an
                # address that cannot answer. The placement waits and retries instead.
                raise NoReadyEndpoint(f"Service {service.namespace}/{service.name} has no ready endpoint yet")
            # A Service without selector (endpoints managed elsewhere, ExternalName): its DNS name.
            return await self.fallback.resolve(service)
        return where
