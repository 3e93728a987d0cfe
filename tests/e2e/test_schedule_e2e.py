"""Scheduled apps through the real operator and agents: job-c on a seconds-field cron runs again
and again, each run a fresh instance, and the WasmApp's status records the runs (times, exit code,
output) where `kubectl get -o wide` and `kubectl describe` show them. A cron croniter cannot read
gets a condition and an Event; one of the wrong shape is refused by the apiserver."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.agentproc import AgentProcess
from harness.kubehttp import KubeHttp
from harness.netcluster import APPS, apply_app, condition, eventually, is_ready
from harness.operatorproc import OperatorProcess
from localcluster.registry import Registry
from localcluster.testnet import TestNet
from shoal_oci import WasmFormat, push_wasm
from tests.integration.test_crds_apiserver import kubectl

from .conftest import NET_LABEL

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

EVERY_2S = "*/2 * * * * *"  # six fields: seconds first


def status(kube: KubeHttp, namespace: str, app: str) -> dict[str, Any]:
    return dict(kube.get(f"{APPS}/namespaces/{namespace}/wasmapps/{app}").get("status") or {})


def runs(kube: KubeHttp, namespace: str, app: str) -> list[dict[str, Any]]:
    return list(status(kube, namespace, app).get("runs") or [])


def two_runs(kube: KubeHttp, namespace: str, app: str) -> list[dict[str, Any]]:
    def recorded() -> list[dict[str, Any]]:
        found = runs(kube, namespace, app)
        return found if len(found) >= 2 else []

    return eventually(recorded, within=60, what=f"two runs of {app} in its status")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_schedule_runs_again_and_again_and_the_status_records_the_runs(
    example_guests: Path,
    oci_registry: Registry,
    shoal_crds: Path,
    net_kube: KubeHttp,
    net_operator: OperatorProcess,
    net_agents: dict[str, AgentProcess],
    net_namespace: str,
    testnet: TestNet,
) -> None:
    image = f"{oci_registry.address}/net-e2e/job-c:v1"
    push_wasm(image, example_guests / "job-c.wasm", WasmFormat.WASM_ARTIFACT)
    ns = net_namespace
    common = {
        "module": {"image": image},
        "replicas": 1,
        "placement": {"nodeSelector": {NET_LABEL: testnet.name}},
    }
    tick = {"cron": EVERY_2S, "args": ["0", "tick"]}
    tock = {"cron": EVERY_2S, "args": ["3"], "concurrencyPolicy": "Forbid"}
    apply_app(net_kube, ns, "tick", {**common, "trigger": {"schedule": tick}})
    apply_app(net_kube, ns, "tock", {**common, "trigger": {"schedule": tock}})
    eventually(lambda: is_ready(net_kube, ns, "tick"), within=90, what="tick Ready")

    recorded = two_runs(net_kube, ns, "tick")
    times = [parse_time(r["scheduleTime"]) for r in recorded]
    assert times == sorted(times) and len(set(times)) == len(times), recorded  # distinct runs, in order
    assert all(t.second % 2 == 0 for t in times), times  # at the cron's times
    for r in recorded:
        assert r["outcome"] == "ok" and r["exitCode"] == 0, r
        assert "job-c ran with 2 argument(s)" in r["output"] and "arg[2]=tick" in r["output"], r
        assert r["node"] in net_agents
        assert parse_time(r["startTime"]) >= parse_time(r["scheduleTime"])
        assert parse_time(r["completionTime"]) >= parse_time(r["startTime"])
    app = status(net_kube, ns, "tick")
    assert app["triggerSummary"] == f"schedule {EVERY_2S}"
    assert parse_time(app["lastScheduleTime"]) >= times[-1]
    assert parse_time(app["lastSuccessfulTime"]) >= parse_time(recorded[-1]["completionTime"])

    for r in two_runs(net_kube, ns, "tock"):
        assert r["outcome"] == "exit" and r["exitCode"] == 3 and "exiting with 3" in r["output"], r
    assert "lastSuccessfulTime" not in status(net_kube, ns, "tock")

    wide = kubectl(shoal_crds, "get", "wasmapp", "tick", "-n", ns, "-o", "wide")
    assert wide.returncode == 0 and "LAST SCHEDULE" in wide.stdout, wide
    described = kubectl(shoal_crds, "describe", "wasmapp", "tick", "-n", ns)
    assert described.returncode == 0, described.stderr
    for words in (r"Last Schedule Time:\s+\S+Z", r"Runs:", r"Exit Code:\s+0\n", r"arg\[2\]=tick"):
        assert re.search(words, described.stdout), described.stdout

    # The agent running tick stops (SIGTERM: its schedule loop is cancelled and it exits 0) and
    # comes back. Whether the placement stays or moves meanwhile (the harness's Lease is 6 s, about
    # what a restart takes here), the app's status keeps the runs from before and the schedule goes on.
    agent = net_agents[recorded[-1]["node"]]
    stopped_at = datetime.now(UTC).replace(microsecond=0)
    assert agent.stop() == 0, agent.log()[-2000:]
    agent.start()

    def resumed() -> list[dict[str, Any]]:
        found = runs(net_kube, ns, "tick")
        return found if any(parse_time(r["startTime"]) > stopped_at for r in found) else []

    history = eventually(resumed, within=60, what="a run of tick after its agent restarted")
    assert any(parse_time(r["startTime"]) <= stopped_at for r in history), history  # kept
    assert all(r["exitCode"] == 0 for r in history), history


def test_a_cron_croniter_cannot_read_is_reported_and_a_malformed_one_refused(
    example_guests: Path,
    oci_registry: Registry,
    shoal_crds: Path,
    net_kube: KubeHttp,
    net_operator: OperatorProcess,
    net_namespace: str,
) -> None:
    image = f"{oci_registry.address}/net-e2e/job-c:v1"
    push_wasm(image, example_guests / "job-c.wasm", WasmFormat.WASM_ARTIFACT)
    ns = net_namespace
    feb30 = {"schedule": {"cron": "0 0 30 2 *"}}
    apply_app(net_kube, ns, "feb30", {"module": {"image": image}, "trigger": feb30})

    def refused() -> dict[str, Any]:
        cond = condition(net_kube, ns, "feb30", "Scheduled") or {}
        return cond if cond.get("reason") == "InvalidSchedule" else {}

    cond = eventually(refused, within=30, what="Scheduled=False InvalidSchedule")
    assert cond["status"] == "False" and "can never occur" in cond["message"], cond
    events = net_kube.get(f"/api/v1/namespaces/{ns}/events")["items"]
    assert any(e["reason"] == "InvalidSchedule" and e["type"] == "Warning" for e in events), events
    assert not net_kube.get(f"{APPS}/namespaces/{ns}/wasmplacements")["items"]

    manifest = f"""
apiVersion: shoal.dev/v1alpha1
kind: WasmApp
metadata: {{name: sometimes, namespace: {ns}}}
spec:
  module: {{image: {image}}}
  trigger: {{schedule: {{cron: "every five minutes"}}}}
"""
    applied = kubectl(shoal_crds, "apply", "-f", "-", input=manifest)
    assert applied.returncode != 0
    assert "spec.trigger.schedule.cron" in applied.stderr and "should match" in applied.stderr, applied.stderr
