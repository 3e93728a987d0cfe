"""Every PromQL expression Shoal ships (dashboard panels and alerts) returns data from a real Prometheus
scraping the real operator and agents (installed with the chart's tokens) under real traffic.

Prometheus starts before any app exists, so rates see each event: placements (pull, compile, cold
start), a rollout to new bytes, an agent restart (compile cache loads), HTTP traffic including a guest
that traps (errors), and a namespace whose quota refuses Services (operator reconcile errors).
Alerts are checked twice: as shipped (default thresholds) they must evaluate; with thresholds that
fire, after an agent and the operator are stopped, each must return a series.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboards import ALERTS, all_expressions
from harness.clusters import control_plane_at, local_shoal
from localcluster import examples
from localcluster.chart import Release
from localcluster.controlplane import ControlPlane
from localcluster.prometheus import Prometheus
from localcluster.registry import Registry
from localcluster.shoalprocs import LocalShoal
from localcluster.testnet import TestNet
from shoal_oci import WasmFormat, push_wasm

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

NS = "shoal-demo"
QUOTA_NS = "no-services"
FIRING = {
    "instanceStartP99Seconds": "0",
    "placementColdStartP99Seconds": "0",
    "errorRatio": "0",
    "minRequestRate": "0",
    "agentDownFor": "0s",
}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("promql")


@pytest.fixture(scope="module")
def plane(work: Path) -> Iterator[ControlPlane]:
    with control_plane_at(work / "cluster") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def shoal(plane: ControlPlane, work: Path) -> Iterator[LocalShoal]:
    net = TestNet.create(name=f"prom-{work.name[-10:]}", pod_cidr=plane.pod_cidr)
    release = Release(plane)
    try:
        release.install()
        with local_shoal(release, net, work / "shoal") as local:
            yield local
    finally:
        net.stop()


@pytest.fixture(scope="module")
def prometheus(shoal: LocalShoal, work: Path) -> Iterator[Prometheus]:
    prom = Prometheus(workdir=work / "prometheus", targets=shoal.scrape_targets())
    prom.start()
    try:
        prom.wait_for_scrapes()
        yield prom
    finally:
        prom.stop()


def wait_series(prom: Prometheus, expr: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(prom.query(expr)) < count:
        assert time.monotonic() < deadline, f"{expr}: fewer than {count} series after {timeout}s"
        time.sleep(0.5)


def with_custom_section(wasm: bytes, payload: bytes) -> bytes:
    """Same module, other bytes (a new digest): custom sections are ignored by the runtime."""
    name = b"shoal-test"
    content = bytes([len(name)]) + name + payload
    return wasm + b"\x00" + bytes([len(content)]) + content


@pytest.fixture(scope="module")
def traffic(shoal: LocalShoal, prometheus: Prometheus, work: Path) -> Prometheus:
    plane = shoal.release.plane
    registry = Registry(workdir=work / "registry")
    registry.start()
    try:
        wasm = examples.build()
        examples.push(registry.address, wasm, [examples.HELLOS[0], examples.HELLOS[2], examples.UNREACHABLE])
        docs = examples.manifests(
            examples.EXAMPLES_DIR / "hello.yaml", registry.address, only=["hello-c", "hello-wat"]
        )
        trap = {
            "apiVersion": "shoal.dev/v1alpha1",
            "kind": "WasmApp",
            "metadata": {"name": "trap", "namespace": NS},
            "spec": {
                "module": {"image": examples.image(registry.address, examples.UNREACHABLE)},
                "trigger": {"http": {"path": "/trap"}},
            },
        }
        # A namespace whose quota refuses Services: the operator's writes fail and are retried.
        quota = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": QUOTA_NS}},
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "no-services", "namespace": QUOTA_NS},
                "spec": {"hard": {"services": "0"}},
            },
        ]
        blocked = {**trap, "metadata": {"name": "blocked", "namespace": QUOTA_NS}}
        examples.apply(plane, [*docs, trap, *quota])
        examples.apply(plane, [blocked])
        examples.wait_ready(plane, NS, ["hello-c", "hello-wat", "trap"])
        wait_series(prometheus, "shoal_placement_cold_start_seconds_count", 5)

        def hit() -> None:
            urls: list[tuple[str, str | None]] = []
            for agent in shoal.agents.values():
                urls += [(f"{agent.url}/", f"{app}.{NS}") for app in ("hello-c", "hello-wat", "trap")]
            codes = examples.send(urls, times=15)
            assert codes.get(200, 0) > 0 and codes.get(500, 0) > 0, codes

        hit()
        # An agent restart (compiled modules load from its disk cache), then a rollout to new bytes.
        shoal.stop_agent("node-1")
        shoal.start_agent("node-1", shoal.agents["node-1"].pod, wait=True)
        v2 = f"{registry.address}/examples/hello-c:v2"
        push_wasm(
            v2, with_custom_section((wasm / "hello-c.wasm").read_bytes(), b"v2"), WasmFormat.WASM_ARTIFACT
        )
        plane.kubectl(
            "-n",
            NS,
            "patch",
            "wasmapp",
            "hello-c",
            "--type=merge",
            "-p",
            f'{{"spec":{{"module":{{"image":"{v2}"}}}}}}',
        )
        time.sleep(1)
        examples.wait_ready(plane, NS, ["hello-c"])
        hit()
        time.sleep(4)  # a few more scrapes
        hit()
        time.sleep(3)
        return prometheus
    finally:
        registry.stop()


def has_data(prom: Prometheus, expr: str) -> bool:
    """At least one series, and at least one value that is a number (a quantile of nothing is NaN)."""
    result = prom.query(expr)
    return any(not math.isnan(float(s["value"][1])) for s in result)


def test_every_panel_expression_returns_data(traffic: Prometheus) -> None:
    panels = [e for e in all_expressions() if not e.source.startswith("alert:")]
    assert len(panels) > 20
    failing = [f"{e.source}: {e.runnable}" for e in panels if not has_data(traffic, e.runnable)]
    assert not failing, "expressions without data:\n" + "\n".join(failing)


def test_alerts_as_shipped_evaluate(traffic: Prometheus) -> None:
    for e in (e for e in all_expressions() if e.source.startswith("alert:")):
        traffic.query(e.runnable)  # raises PromQLError on a bad expression


def test_every_alert_fires_when_its_condition_holds(traffic: Prometheus, shoal: LocalShoal) -> None:
    shoal.stop_agent("node-3")
    shoal.stop_operator()
    wait_series(traffic, 'up{job="shoal-agent"} == 0', 1)
    wait_series(traffic, 'up{job="shoal-operator"} == 0', 1)
    failing = []
    for alert in ALERTS:
        expr, _ = alert.render(FIRING)
        if not has_data(traffic, expr):
            failing.append(f"{alert.name}: {expr}")
    assert not failing, "alerts that did not fire:\n" + "\n".join(failing)
