"""EndpointSliceResolver: Service port -> slice port mapping, ready-endpoint choice, DNS fallback,
the short cache and `forget()`, and CapabilityHost.refresh() following a moved pod."""

from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

import pytest

from shoal_agent.capabilities import CapabilityHost, EndpointSliceResolver, HostPort
from shoal_agent.capabilities.endpointslices import NoReadyEndpoint, SlicePort, pick_endpoint, service_port
from shoal_api.wasmplacement import DependencyEndpoint, ServiceEndpoint

pytestmark = pytest.mark.unit


def svc(*ports: tuple[str | None, int, Any], selector: dict[str, str] | None = None) -> Any:
    return NS(spec=NS(ports=[NS(name=n, port=p, target_port=t) for n, p, t in ports], selector=selector))


def eps(*addresses: str, ready: bool | None = True, terminating: bool | None = None) -> Any:
    return NS(addresses=list(addresses), conditions=NS(ready=ready, terminating=terminating))


def slice_(ports: list[tuple[str | None, int]], *endpoints: Any) -> Any:
    return NS(ports=[NS(name=n, port=p) for n, p in ports], endpoints=list(endpoints))


def test_named_target_port_is_matched_by_port_name() -> None:
    want = service_port(svc(("redis", 6379, "redis")), 6379)
    assert want == SlicePort(name="redis", target=None)
    found = pick_endpoint([slice_([("redis", 7000)], eps("10.0.0.9"))], want)
    assert found == HostPort("10.0.0.9", 7000)


def test_numeric_target_port_and_unnamed_ports() -> None:
    want = service_port(svc((None, 80, 8080)), 80)
    assert pick_endpoint([slice_([(None, 8080)], eps("10.0.0.1"))], want) == HostPort("10.0.0.1", 8080)
    assert service_port(svc(("a", 1, None)), 2) == SlicePort(name="", target=2)


def test_only_ready_not_terminating_endpoints_and_a_stable_choice() -> None:
    want = SlicePort(name="mariadb", target=None)
    slices = [
        slice_(
            [("mariadb", 3306)], eps("10.0.0.5", ready=False), eps("10.0.0.7"), eps("10.0.0.3", ready=None)
        ),
        slice_([("mariadb", 3306)], eps("10.0.0.1", terminating=True)),
        slice_([("other", 1)], eps("10.0.0.0")),
    ]
    assert pick_endpoint(slices, want) == HostPort("10.0.0.3", 3306)
    assert pick_endpoint([], want) is None


class FakeApi:
    """Just enough of CoreV1Api/DiscoveryV1Api for the resolver."""

    def __init__(self) -> None:
        self.service = svc(("redis", 6379, "redis"))
        self.slices: list[Any] = []
        self.calls = 0

    async def read_namespaced_service(self, name: str, namespace: str) -> Any:
        self.calls += 1
        return self.service

    async def list_namespaced_endpoint_slice(self, namespace: str, *, label_selector: str) -> Any:
        assert label_selector == "kubernetes.io/service-name=cache"
        return NS(items=self.slices)


def resolver(api: FakeApi, now: list[float]) -> EndpointSliceResolver:
    r = EndpointSliceResolver(NS(), ttl_s=3, clock=lambda: now[0])  # type: ignore[arg-type]
    r.core = r.discovery = api  # type: ignore[assignment]
    return r


async def test_falls_back_to_dns_caches_and_forgets() -> None:
    api, now = FakeApi(), [0.0]
    r = resolver(api, now)
    service = ServiceEndpoint(name="cache", namespace="ns", port=6379)
    assert await r.resolve(service) == HostPort("cache.ns.svc.cluster.local", 6379)
    api.slices = [slice_([("redis", 6379)], eps("10.244.0.4"))]
    assert (await r.resolve(service)).host == "cache.ns.svc.cluster.local"  # cached
    now[0] = 4
    assert await r.resolve(service) == HostPort("10.244.0.4", 6379)
    api.slices = [slice_([("redis", 6379)], eps("10.244.0.9"))]
    r.forget(HostPort("10.244.0.4", 6379))
    assert await r.resolve(service) == HostPort("10.244.0.9", 6379)


async def test_refresh_rebinds_an_app_whose_dependency_moved() -> None:
    api, now = FakeApi(), [0.0]
    api.slices = [slice_([("redis", 6379)], eps("10.244.0.4"))]
    host = CapabilityHost(resolver=resolver(api, now))
    dep = DependencyEndpoint(
        name="cache", kind="redis", service=ServiceEndpoint(name="cache", namespace="ns", port=6379)
    )
    await host.bind_app(namespace="ns", app="tally", dependencies=[dep])
    assert await host.refresh() == []
    api.slices = [slice_([("redis", 6379)], eps("10.244.0.9"))]
    host._endpoint_failed(HostPort("10.244.0.4", 6379))  # what a pool does after a connection error
    assert await host.refresh() == [("ns", "tally")]
    binding = host.bindings.get("ns", "tally")
    assert binding is not None and binding.redis["cache"] == HostPort("10.244.0.9", 6379)
    host.close()


async def test_pod_backed_service_without_ready_endpoint_is_not_ready() -> None:
    api, now = FakeApi(), [0.0]
    api.service = svc(("redis", 6379, "redis"), selector={"app": "cache"})
    r = resolver(api, now)
    service = ServiceEndpoint(name="cache", namespace="ns", port=6379)
    with pytest.raises(NoReadyEndpoint, match="no ready endpoint"):
        await r.resolve(service)
    api.slices = [slice_([("redis", 6379)], eps("10.244.0.4", ready=False))]
    with pytest.raises(NoReadyEndpoint):
        await r.resolve(service)
    api.slices = [slice_([("redis", 6379)], eps("10.244.0.4"))]
    assert await r.resolve(service) == HostPort("10.244.0.4", 6379)  # a miss is not cached
