"""The shared API models: parsing, validation mirrors of the CRD rules, k8s round-trips."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from shoal_api import (
    API_VERSION,
    LABEL_APP,
    LABEL_NODE,
    WasmApp,
    WasmAppSpec,
    WasmNode,
    WasmPlacement,
    WasmPlacementSpec,
    agent_lease_name,
    parse_cpu_millicores,
    parse_duration_ms,
    parse_duration_seconds,
    parse_memory_bytes,
    parse_quantity,
    placement_labels,
    placement_name,
    set_condition,
)
from shoal_api.naming import app_selector, node_selector
from shoal_api.quantity import format_cpu, format_memory
from shoal_api.wasmapp import Rollout
from shoal_api.wasmplacement import WasmPlacementStatus

pytestmark = pytest.mark.unit

MI = 2**20


# --- quantities & durations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "millicores"),
    [
        ("50m", 50),
        ("2", 2000),
        ("1.5", 1500),
        ("0.1", 100),
        (".5", 500),
        ("1e3", 1_000_000),
        ("1n", 1),
        ("0", 0),
    ],
)
def test_cpu_millicores(text: str, millicores: int) -> None:
    assert parse_cpu_millicores(text) == millicores


@pytest.mark.parametrize(
    ("text", "num_bytes"),
    [
        ("64Mi", 64 * MI),
        ("1Gi", 2**30),
        ("1G", 10**9),
        ("100k", 100_000),
        ("1.5Ki", 1536),
        ("2", 2),
        ("1.5", 2),  # rounded up
        ("1E", 10**18),
        ("1Ei", 2**60),
        ("5e2", 500),
    ],
)
def test_memory_bytes(text: str, num_bytes: int) -> None:
    assert parse_memory_bytes(text) == num_bytes


def test_parse_quantity_accepts_numbers() -> None:
    assert parse_quantity(3) == Decimal(3)
    assert parse_quantity(0.25) == Decimal("0.25")


@pytest.mark.parametrize("bad", ["", "-1", "1Mb", "Mi", "1.2.3", "abc", "1e", " ", "1 Gi"])
def test_bad_quantities(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(bad)


@pytest.mark.parametrize("bad", [-1, float("nan"), True])
def test_bad_numeric_quantities(bad: Any) -> None:
    with pytest.raises(ValueError):
        parse_quantity(bad)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("500ms", 500),
        ("2s", 2000),
        ("1m", 60_000),
        ("1m30s", 90_000),
        ("1.5h", 5_400_000),
        ("10us", 1),
        ("0s", 0),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


def test_duration_seconds() -> None:
    assert parse_duration_seconds("500ms") == 0.5


@pytest.mark.parametrize("bad", ["", "5", "1d", "ms", "-1s", "1.s", "1 s"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration_ms(bad)


def test_formatting_helpers() -> None:
    assert format_memory(64 * MI) == "64Mi"
    assert format_memory(1000) == "1000"
    assert format_cpu(1500) == "1500m"
    assert format_cpu(2000) == "2"


# --- WasmApp ------------------------------------------------------------------------------------


def app_body(**spec_overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "module": {"image": "registry.example:5000/demo/tally:v1", "imagePullSecrets": [{"name": "regcred"}]},
        "replicas": 3,
        "trigger": {"http": {"path": "/tally"}},
        "resources": {
            "memory": "32Mi",
            "timeout": "500ms",
            "maxConcurrency": 64,
            "requests": {"cpu": "50m", "memory": "64Mi"},
        },
        "env": [
            {"name": "GREETING", "value": "hi"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "token"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        ],
        "dependencies": [
            {"name": "cache", "redis": {}},
            {"name": "db", "mysql": {"database": "whiskers", "storage": "1Gi"}, "retain": True},
            {"name": "ext", "serviceRef": {"name": "svc", "port": 6379}, "redis": {}},
        ],
        "placement": {
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "wasm", "effect": "NoSchedule"}
            ],
            "spread": {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone"},
            "preferNearDependencies": True,
        },
        "rollout": {"maxUnavailable": 1},
        "capabilities": {"shareKeysWith": ["other"]},
    }
    spec.update(spec_overrides)
    return {
        "apiVersion": API_VERSION,
        "kind": "WasmApp",
        "metadata": {
            "name": "tally",
            "namespace": "demo",
            "generation": 4,
            "uid": "u-1",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": spec,
    }


def test_full_example_parses() -> None:
    app = WasmApp.from_k8s(app_body())
    spec = app.spec
    assert app.key == "demo/tally"
    assert spec.module.image_pull_secrets[0].name == "regcred"
    assert spec.trigger.kind == "http"
    assert spec.trigger.summary() == "http /tally"
    assert spec.resources.memory_bytes == 32 * MI
    assert spec.resources.timeout_ms == 500
    assert spec.resources.requests.cpu_millis == 50
    assert spec.resources.requests.memory_bytes == 64 * MI
    assert spec.env[1].value_from is not None and spec.env[1].value_from.secret_key_ref is not None
    assert [d.kind for d in spec.dependencies] == ["redis", "mysql", "redis"]
    assert spec.dependencies[2].service_ref is not None and spec.dependencies[2].service_ref.port == 6379
    assert spec.placement.spread is not None and spec.placement.spread.max_skew == 1
    assert spec.rollout.resolve_max_unavailable(replicas=3) == 1
    assert app.metadata.creation_timestamp == datetime(2026, 1, 1, tzinfo=UTC)


def test_minimal_spec_gets_defaults() -> None:
    spec = WasmAppSpec.model_validate({"module": {"image": "r/m:v1"}, "trigger": {"job": {}}})
    assert spec.replicas == 1
    assert spec.resources.memory == "32Mi"
    assert spec.resources.timeout == "30s"
    assert spec.resources.requests.cpu == "10m"
    assert spec.trigger.job is not None and spec.trigger.job.backoff_limit == 3
    assert spec.placement.prefer_near_dependencies is True
    assert spec.rollout.max_unavailable == 1
    assert spec.trigger.summary() == "job"
    assert spec.trigger.entrypoint == "_start" and spec.trigger.args == []


def test_every_trigger_kind_takes_args_and_an_entry_point() -> None:
    for kind, body in (
        ("http", {"path": "/x"}),
        ("job", {}),
        ("redis", {"dependency": "cache", "channel": "c"}),
    ):
        spec = WasmAppSpec.model_validate(
            {
                "module": {"image": "r/m:v1"},
                "dependencies": [{"name": "cache", "redis": {}}],
                "trigger": {kind: {**body, "args": ["-v", "x"]}, "entrypoint": "handle"},
            }
        )
        assert spec.trigger.kind == kind
        assert (spec.trigger.args, spec.trigger.entrypoint) == (["-v", "x"], "handle")


def test_round_trip_is_stable() -> None:
    app = WasmApp.from_k8s(app_body())
    body = app.to_k8s()
    assert body["apiVersion"] == API_VERSION and body["kind"] == "WasmApp"
    assert "managedFields" not in body["metadata"]  # unknown metadata is ignored
    assert body["spec"]["resources"]["maxConcurrency"] == 64  # camelCase on the wire
    assert body["metadata"]["creationTimestamp"] == "2026-01-01T00:00:00Z"
    assert "status" not in body  # None fields dropped
    assert WasmApp.from_k8s(body).to_k8s() == body


def test_snake_case_construction_works() -> None:
    spec = WasmAppSpec(
        module={"image": "r/m:v1"},
        trigger={"http": {"path": "/"}},
    )
    assert spec.to_dict()["module"] == {"image": "r/m:v1", "imagePullSecrets": []}


def test_status_from_server_ignores_unknown_fields() -> None:
    body = app_body()
    body["status"] = {
        "observedGeneration": 4,
        "replicas": 3,
        "readyReplicas": 2,
        "readySummary": "2/3",
        "selector": "shoal.dev/app=tally",
        "somethingNew": {"x": 1},
        "placements": [{"node": "n1", "state": "Ready", "ready": True, "extra": 1}],
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "Rolling",
                "message": "1 updating",
                "lastTransitionTime": "2026-01-01T00:00:05Z",
                "observedGeneration": 4,
            }
        ],
    }
    app = WasmApp.from_k8s(body)
    assert app.status is not None
    assert app.status.ready_replicas == 2
    ready = app.status.condition("Ready")
    assert ready is not None and ready.status == "False"
    assert app.status.condition("Degraded") is None
    assert app.status.placements[0].state == "Ready"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"trigger": {}}, "exactly one trigger kind"),
        ({"trigger": {"http": {"path": "/"}, "job": {}}}, "exactly one trigger kind"),
        ({"env": [{"name": "A"}]}, "exactly one of value or valueFrom"),
        (
            {"env": [{"name": "A", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
            "exactly one of value or valueFrom",
        ),
        ({"env": [{"name": "A", "valueFrom": {}}]}, "exactly one of secretKeyRef or configMapKeyRef"),
        ({"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, "duplicate env names: A"),
        (
            {"dependencies": [{"name": "c", "redis": {}}, {"name": "c", "redis": {}}]},
            "duplicate dependency names: c",
        ),
        ({"dependencies": [{"name": "Bad_Name", "redis": {}}]}, "should match pattern"),
        ({"dependencies": [{"name": "x"}]}, "exactly one dependency kind"),
        (
            {"dependencies": [{"name": "x", "redis": {}, "mysql": {"database": "d"}}]},
            "exactly one dependency kind",
        ),
        (
            {
                "dependencies": [
                    {"name": "x", "serviceRef": {"name": "s", "port": 3306}, "mysql": {"database": "d"}}
                ]
            },
            "needs mysql.passwordSecret",
        ),
        ({"trigger": {"redis": {"dependency": "nope", "channel": "c"}}}, "must name a redis dependency"),
        ({"trigger": {"redis": {"dependency": "db", "channel": "c"}}}, "must name a redis dependency"),
        ({"replicas": -1}, "greater than or equal to 0"),
        ({"resources": {"memory": "512Ki"}}, "memory must be between 1Mi and 4Gi"),
        ({"resources": {"memory": "5Gi"}}, "memory must be between 1Mi and 4Gi"),
        ({"resources": {"memory": "lots"}}, "should match pattern"),
        ({"resources": {"timeout": "2h"}}, "timeout must be at most 1h"),
        ({"resources": {"timeout": "5"}}, "should match pattern"),
        ({"rollout": {"maxUnavailable": 0}}, "maxUnavailable must be"),
        ({"rollout": {"maxUnavailable": "150%"}}, "maxUnavailable must be"),
        ({"rollout": {"maxUnavailable": "abc"}}, "maxUnavailable must be"),
        ({"trigger": {"http": {"path": "no-slash"}}}, "should match pattern"),
        ({"trigger": {"http": {"path": "/"}, "entrypoint": "two words"}}, "should match pattern"),
        ({"trigger": {"http": {"path": "/"}, "entrypoint": ""}}, "at least 1 character"),
    ],
)
def test_invalid_specs_are_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WasmApp.from_k8s(app_body(**overrides))


def test_redis_trigger_on_declared_redis_dependency() -> None:
    app = WasmApp.from_k8s(app_body(trigger={"redis": {"dependency": "cache", "channel": "clicks"}}))
    assert app.spec.trigger.summary() == "redis cache/clicks"
    assert app.spec.dependency("cache") is not None
    assert app.spec.dependency("missing") is None


@pytest.mark.parametrize(
    ("value", "replicas", "expected"), [(2, 10, 2), ("25%", 10, 2), ("10%", 3, 1), ("100%", 4, 4)]
)
def test_rollout_resolution(value: int | str, replicas: int, expected: int) -> None:
    assert Rollout(max_unavailable=value).resolve_max_unavailable(replicas=replicas) == expected


# --- WasmPlacement & WasmNode -------------------------------------------------------------------


def placement_spec(**overrides: Any) -> WasmPlacementSpec:
    body: dict[str, Any] = {
        "app": "tally",
        "nodeName": "node-a",
        "module": {
            "image": "r/m:v1",
            "digest": "sha256:" + "a" * 64,
            "imagePullSecrets": [{"name": "regcred"}],
        },
        "limits": {"memoryBytes": 32 * MI, "timeoutMs": 500, "maxConcurrency": 64},
        "requests": {"cpuMillis": 50, "memoryBytes": 64 * MI},
        "trigger": {"http": {"path": "/tally"}},
        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "token"}}}],
        "dependencies": [
            {
                "name": "cache",
                "kind": "redis",
                "service": {"name": "tally-cache", "namespace": "demo", "port": 6379},
            },
            {
                "name": "db",
                "kind": "mysql",
                "service": {"name": "tally-db", "namespace": "demo", "port": 3306},
                "database": "whiskers",
                "passwordSecret": {"name": "tally-db", "key": "password"},
            },
        ],
        "appGeneration": 4,
    }
    body.update(overrides)
    return WasmPlacementSpec.model_validate(body)


def test_placement_spec_fields() -> None:
    spec = placement_spec()
    assert spec.module.reference == "r/m@sha256:" + "a" * 64
    assert spec.limits.memory_bytes == 32 * MI
    assert spec.dependencies[0].service.host == "tally-cache.demo.svc"
    assert spec.dependencies[1].password_secret is not None
    assert spec.env[0].value is None  # secrets stay references


def test_template_hash_ignores_node_and_generation() -> None:
    a = placement_spec().with_template_hash()
    b = placement_spec(nodeName="node-b", appGeneration=9).with_template_hash()
    c = placement_spec(trigger={"http": {"path": "/other"}}).with_template_hash()
    assert a.template_hash == b.template_hash
    assert a.template_hash != c.template_hash
    assert len(a.template_hash) == 16
    assert a.compute_template_hash() == a.template_hash  # the hash field itself is excluded


def test_placement_round_trip_and_status() -> None:
    placement = WasmPlacement(metadata={"name": "tally.node-a", "namespace": "demo"}, spec=placement_spec())
    body = placement.to_k8s()
    assert body["kind"] == "WasmPlacement" and body["spec"]["nodeName"] == "node-a"
    body["status"] = {
        "state": "Failed",
        "ready": False,
        "exitCode": 3,
        "attempts": 2,
        "output": "boom",
        "observedTemplateHash": "abc",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "agentInternal": True,
    }
    parsed = WasmPlacement.from_k8s(body)
    assert parsed.status is not None and parsed.status.exit_code == 3 and parsed.status.state == "Failed"
    assert WasmPlacementStatus.bound_output("x" * 10_000) == "x" * 4096


def test_placement_state_is_checked() -> None:
    with pytest.raises(ValidationError):
        WasmPlacementStatus.model_validate({"state": "Exploded"})


def test_wasmnode_round_trip() -> None:
    body = {
        "apiVersion": API_VERSION,
        "kind": "WasmNode",
        "metadata": {"name": "node-a"},
        "spec": {
            "capacity": {"cpuMillis": 2000, "memoryBytes": 2**31},
            "endpoint": {"host": "10.0.0.5", "port": 8080},
            "runtime": {"wasmtime": "50.0.0", "agent": "0.1.0"},
            "lease": {"name": agent_lease_name("node-a"), "namespace": "shoal-system"},
        },
        "status": {
            "allocated": {"cpuMillis": 50, "memoryBytes": 64 * MI},
            "placements": [{"namespace": "demo", "name": "tally.node-a", "app": "tally", "state": "Ready"}],
        },
    }
    node = WasmNode.from_k8s(body)
    assert node.spec.capacity.cpu_millis == 2000
    # Derived for kubectl's printer columns, whatever the writer put there.
    assert (node.spec.capacity.cpu, node.spec.capacity.memory) == ("2", "2Gi")
    assert node.status is not None and node.status.allocated.to_dict()["memory"] == "64Mi"
    assert node.status is not None and node.status.placements[0].app == "tally"
    assert WasmNode.NAMESPACED is False
    assert WasmNode.from_k8s(node.to_k8s()) == node


def test_kind_is_filled_in() -> None:
    assert WasmPlacement(spec=placement_spec()).kind == "WasmPlacement"


# --- naming -------------------------------------------------------------------------------------


def test_naming_helpers() -> None:
    assert agent_lease_name("node-a") == "shoal-agent-node-a"
    assert placement_name(app="tally", node="node-a") == "tally.node-a"
    assert placement_labels(app="tally", node="node-a") == {LABEL_APP: "tally", LABEL_NODE: "node-a"}
    assert node_selector("node-a") == "shoal.dev/node=node-a"
    assert app_selector("tally") == "shoal.dev/app=tally"


def test_long_names_are_bounded_and_stable() -> None:
    node = "n" * 250
    lease = agent_lease_name(node)
    assert len(lease) <= 253 and lease == agent_lease_name(node)
    assert lease != agent_lease_name("n" * 249 + "m")
    labels = placement_labels(app="a" * 100, node=node)
    assert all(len(v) <= 63 for v in labels.values())
    assert all(v[-1].isalnum() for v in labels.values())


@pytest.mark.parametrize(
    ("image", "reference"),
    [
        ("registry.example:5000/demo/tally:v1", "registry.example:5000/demo/tally@sha256:" + "b" * 64),
        ("registry.example:5000/demo/tally", "registry.example:5000/demo/tally@sha256:" + "b" * 64),
        ("r/m@sha256:" + "c" * 64, "r/m@sha256:" + "b" * 64),
    ],
)
def test_module_reference_pins_digest(image: str, reference: str) -> None:
    spec = placement_spec(module={"image": image, "digest": "sha256:" + "b" * 64})
    assert spec.module.reference == reference


def test_wrong_kind_is_rejected() -> None:
    body = app_body()
    body["kind"] = "WasmPlacement"
    with pytest.raises(ValidationError, match="expected 'WasmApp'"):
        WasmApp.from_k8s(body)


def test_set_condition_keeps_transition_time_when_status_is_unchanged() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    t1 = datetime(2026, 1, 2, tzinfo=UTC)
    conditions = set_condition([], type="Ready", status="False", reason="Pending", now=t0)
    conditions = set_condition(conditions, type="Scheduled", status="True", reason="Placed", now=t0)
    same = set_condition(conditions, type="Ready", status="False", reason="Pulling", message="x", now=t1)
    assert [c.type for c in same] == ["Ready", "Scheduled"]
    assert same[0].last_transition_time == t0 and same[0].reason == "Pulling"
    flipped = set_condition(
        same, type="Ready", status="True", reason="AllReady", now=t1, observed_generation=3
    )
    assert flipped[0].last_transition_time == t1 and flipped[0].observed_generation == 3
    assert flipped[0].to_dict()["lastTransitionTime"] == "2026-01-02T00:00:00Z"
