"""Helpers for tests on the test network: WasmApps applied as a user would, EndpointSlice addresses
read as a client would, plain HTTP to them, and synchronous polling."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from harness.kubehttp import KubeHttp
from localcluster.whiskers import http_get as http_get  # re-exported: the demo's client, for tests
from shoal_api import GROUP, VERSION

T = TypeVar("T")
APPS = f"/apis/{GROUP}/{VERSION}"


def eventually(check: Callable[[], T], *, within: float = 30, what: str, interval: float = 0.25) -> T:
    deadline = time.monotonic() + within
    last: T = check()
    while not last:
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what} (last: {last!r})")
        time.sleep(interval)
        last = check()
    return last


def apply_app(kube: KubeHttp, namespace: str, name: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WasmApp",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    kube.apply(f"{APPS}/namespaces/{namespace}/wasmapps/{name}", body)


def condition(kube: KubeHttp, namespace: str, app: str, type_: str) -> dict[str, Any] | None:
    obj = kube.get(f"{APPS}/namespaces/{namespace}/wasmapps/{app}")
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), None)


def is_ready(kube: KubeHttp, namespace: str, app: str) -> bool:
    cond = condition(kube, namespace, app, "Ready")
    return bool(cond and cond["status"] == "True")


def slice_addresses(kube: KubeHttp, namespace: str, service: str) -> list[tuple[str, int]]:
    """Ready (address, port) pairs of the Service's EndpointSlices, as any client would read them."""
    selector = urllib.parse.quote(f"kubernetes.io/service-name={service}")
    listing = kube.get(
        f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices?labelSelector={selector}"
    )
    out: list[tuple[str, int]] = []
    for s in listing["items"]:
        for port in s.get("ports") or []:
            for ep in s.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready", True):
                    out.extend((address, int(port["port"])) for address in ep["addresses"])
    return sorted(out)


def pod_of(kube: KubeHttp, namespace: str, selector: str) -> dict[str, Any] | None:
    """The Running pod matching `selector` with a pod IP, if any."""
    query = urllib.parse.quote(selector)
    for pod in kube.get(f"/api/v1/namespaces/{namespace}/pods?labelSelector={query}")["items"]:
        status = pod.get("status") or {}
        if (
            status.get("phase") == "Running"
            and status.get("podIP")
            and not pod["metadata"].get("deletionTimestamp")
        ):
            return dict(pod)
    return None
