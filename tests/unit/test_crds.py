"""Generated CRDs: no drift from the models, structural schemas, CEL rules and metadata present."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field

import gen_crds
from shoal_api.crds import GENERATED_HEADER, crd_definitions, render_crd_yaml
from shoal_api.structural import StructuralSchemaError, model_schema, structural_problems

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CRDS = crd_definitions()


def schema_of(plural: str) -> dict[str, Any]:
    crd = CRDS[f"shoal.dev_{plural}.yaml"]
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")


def test_committed_crds_match_models() -> None:
    assert gen_crds.drifted(REPO / "crds") == [], "run .venv/bin/python hack/gen_crds.py"


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    assert gen_crds.main(["--out", str(tmp_path)]) == 0
    assert gen_crds.main(["--check", "--out", str(tmp_path)]) == 0
    victim = tmp_path / "shoal.dev_wasmapps.yaml"
    victim.write_text(victim.read_text() + "# edited\n")
    (tmp_path / "shoal.dev_stale.yaml").write_text("x")
    assert sorted(gen_crds.drifted(tmp_path)) == ["shoal.dev_stale.yaml", "shoal.dev_wasmapps.yaml"]
    assert gen_crds.main(["--check", "--out", str(tmp_path)]) == 1


def test_rendering_is_deterministic_and_parses_back() -> None:
    for crd in CRDS.values():
        text = render_crd_yaml(crd)
        assert text.startswith(GENERATED_HEADER)
        assert text == render_crd_yaml(crd_definitions()[next(k for k, v in CRDS.items() if v is crd)])
        assert yaml.safe_load(text) == crd


def test_files_and_names() -> None:
    assert list(CRDS) == [
        "shoal.dev_wasmapps.yaml",
        "shoal.dev_wasmnodes.yaml",
        "shoal.dev_wasmplacements.yaml",
    ]
    for crd in CRDS.values():
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        names = crd["spec"]["names"]
        assert crd["metadata"]["name"] == f"{names['plural']}.shoal.dev"
        [version] = crd["spec"]["versions"]
        assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
        assert version["subresources"]["status"] == {}
    assert CRDS["shoal.dev_wasmapps.yaml"]["spec"]["names"]["shortNames"] == ["wasm"]
    assert CRDS["shoal.dev_wasmplacements.yaml"]["spec"]["names"]["shortNames"] == ["wp"]
    assert CRDS["shoal.dev_wasmnodes.yaml"]["spec"]["scope"] == "Cluster"
    assert CRDS["shoal.dev_wasmapps.yaml"]["spec"]["scope"] == "Namespaced"


@pytest.mark.parametrize("plural", ["wasmapps", "wasmplacements", "wasmnodes"])
def test_schemas_are_structural(plural: str) -> None:
    schema = schema_of(plural)
    assert structural_problems(schema) == []
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["required"] == ["spec"]
    for path, node in walk(schema):
        assert "x-kubernetes-preserve-unknown-fields" not in node, path
        assert "default" not in node or node["default"] is not None, path


@pytest.mark.parametrize("plural", ["wasmapps", "wasmplacements", "wasmnodes"])
def test_every_list_is_bounded(plural: str) -> None:
    """The apiserver estimates CEL cost from maxItems/maxLength; unbounded ones blow the budget."""
    for path, node in walk(schema_of(plural)):
        if node.get("type") == "array":
            assert "maxItems" in node, path


def test_scale_subresource_and_printer_columns() -> None:
    [app_version] = CRDS["shoal.dev_wasmapps.yaml"]["spec"]["versions"]
    assert app_version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert [c["name"] for c in app_version["additionalPrinterColumns"]] == [
        "Ready",
        "Image",
        "Trigger",
        "Age",
        "Last Schedule",  # -o wide only (priority 1): most apps have no schedule
    ]
    assert app_version["additionalPrinterColumns"][-1]["priority"] == 1
    [wp_version] = CRDS["shoal.dev_wasmplacements.yaml"]["spec"]["versions"]
    assert [c["name"] for c in wp_version["additionalPrinterColumns"]] == [
        "Node",
        "App",
        "State",
        "Ready",
        "Age",
    ]
    assert {"jsonPath": ".spec.nodeName"} in wp_version["selectableFields"]


def test_printer_columns_point_at_real_fields() -> None:
    for crd in CRDS.values():
        [version] = crd["spec"]["versions"]
        schema = version["schema"]["openAPIV3Schema"]
        for column in version["additionalPrinterColumns"]:
            node = schema
            for part in column["jsonPath"].lstrip(".").split("."):
                if part == "metadata" or node == {"type": "object"}:
                    node = {"type": "object"}
                    continue
                assert part in node["properties"], column
                node = node["properties"][part]


def cel_rules(plural: str) -> dict[str, list[str]]:
    return {
        path: [v["rule"] for v in node["x-kubernetes-validations"]]
        for path, node in walk(schema_of(plural))
        if "x-kubernetes-validations" in node
    }


def test_wasmapp_cel_rules_present() -> None:
    found = cel_rules("wasmapps")
    assert "has(self.http)" in found[".spec.trigger"][0]
    assert found[".spec.env[]"] == ["has(self.value) != has(self.valueFrom)"]
    assert found[".spec.env[].valueFrom"] == ["has(self.secretKeyRef) != has(self.configMapKeyRef)"]
    assert "has(self.redis) != has(self.mysql)" in found[".spec.dependencies[]"]
    assert "self.trigger.redis.dependency" in found[".spec"][0]
    assert "quantity(self)" in found[".spec.resources.memory"][0]
    assert "duration(self)" in found[".spec.resources.timeout"][0]
    assert "type(self) == int" in found[".spec.rollout.maxUnavailable"][0]
    for node_rules in found.values():
        assert all(rule.strip() for rule in node_rules)
    for _, node in walk(schema_of("wasmapps")):
        for validation in node.get("x-kubernetes-validations", []):
            assert validation["message"], validation


def test_wasmapp_static_validation() -> None:
    spec = schema_of("wasmapps")["properties"]["spec"]
    assert spec["required"] == ["module", "trigger"]
    assert spec["properties"]["replicas"]["minimum"] == 0
    deps = spec["properties"]["dependencies"]
    assert deps["x-kubernetes-list-type"] == "map" and deps["x-kubernetes-list-map-keys"] == ["name"]
    assert deps["items"]["properties"]["name"]["pattern"] == "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    assert deps["items"]["properties"]["name"]["maxLength"] == 63
    resources = spec["properties"]["resources"]
    assert resources["default"] == {}
    assert resources["properties"]["requests"]["default"] == {}
    assert resources["properties"]["requests"]["properties"]["cpu"]["default"] == "10m"
    assert "pattern" in resources["properties"]["timeout"]
    max_unavailable = spec["properties"]["rollout"]["properties"]["maxUnavailable"]
    assert max_unavailable["x-kubernetes-int-or-string"] is True and "type" not in max_unavailable
    node_selector = spec["properties"]["placement"]["properties"]["nodeSelector"]
    assert node_selector["type"] == "object" and node_selector["additionalProperties"]["type"] == "string"
    status = schema_of("wasmapps")["properties"]["status"]["properties"]
    condition = status["conditions"]["items"]
    assert condition["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert condition["properties"]["lastTransitionTime"]["format"] == "date-time"
    assert set(condition["required"]) == {"type", "status", "reason", "lastTransitionTime"}


def test_placement_state_enum() -> None:
    status = schema_of("wasmplacements")["properties"]["status"]["properties"]
    states = ["Pending", "Pulling", "Compiling", "Ready", "Succeeded", "Failed", "Draining"]
    assert status["state"]["enum"] == states
    assert status["output"]["maxLength"] == 4096


# --- the converter on its own -------------------------------------------------------------------


class _Inner(BaseModel):
    """Inner doc."""

    x: int = Field(default=1, gt=0)


class _Outer(BaseModel):
    maybe: _Inner | None = Field(default=None, description="Field doc wins.")
    either: int | str = 3
    tags: dict[str, int] = {}
    items: list[_Inner] = []


def test_converter_inlines_refs_and_collapses_optional() -> None:
    schema = model_schema(_Outer)
    assert structural_problems(schema) == []
    maybe = schema["properties"]["maybe"]
    assert maybe["type"] == "object" and maybe["description"] == "Field doc wins."
    assert maybe["properties"]["x"] == {
        "type": "integer",
        "default": 1,
        "minimum": 0,
        "exclusiveMinimum": True,
    }
    assert schema["properties"]["either"] == {"x-kubernetes-int-or-string": True, "default": 3}
    assert schema["properties"]["tags"]["additionalProperties"] == {"type": "integer"}
    assert schema["properties"]["items"]["items"]["description"] == "Inner doc."
    assert "required" not in schema


class _Bad(BaseModel):
    value: int | list[int]


class _Anything(BaseModel):
    value: Any


def test_converter_refuses_what_it_cannot_express() -> None:
    with pytest.raises(StructuralSchemaError, match="union"):
        model_schema(_Bad)
    with pytest.raises(StructuralSchemaError, match="no type"):
        model_schema(_Anything)


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"properties": {}}, "no type"),
        ({"type": "object", "title": "T"}, "has title"),
        ({"type": "object", "properties": {"a": {"$ref": "#/x"}}}, ".a: has $ref"),
        (
            {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}}},
            "has anyOf",
        ),
        ({"type": "array"}, "array without items"),
        ({"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}, "both properties"),
        ({"type": "object", "x-kubernetes-preserve-unknown-fields": True}, "preserves unknown"),
        ({"type": "object", "required": ["a"], "properties": {}}, "required 'a'"),
        (
            {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["k"],
                "items": {"type": "object", "properties": {"k": {"type": "string"}}},
            },
            "list-map key 'k'",
        ),
    ],
)
def test_structural_checker_catches(schema: dict[str, Any], problem: str) -> None:
    problems = structural_problems(schema)
    assert any(problem in p for p in problems), problems


# --- CEL rules, evaluated (cel-python; Kubernetes-only functions such as quantity() are skipped) --

K8S_ONLY_FUNCTIONS = ("isQuantity(", "quantity(")


def all_rules() -> list[tuple[str, str]]:
    return sorted(
        {
            (path, rule)
            for plural in ("wasmapps", "wasmplacements", "wasmnodes")
            for path, rules in cel_rules(plural).items()
            for rule in rules
        }
    )


@pytest.mark.parametrize(("path", "rule"), all_rules())
def test_cel_rules_parse(path: str, rule: str) -> None:
    celpy = pytest.importorskip("celpy")
    celpy.Environment().compile(rule)


def evaluate(rule: str, value: Any) -> bool:
    celpy = pytest.importorskip("celpy")
    env = celpy.Environment()
    return bool(env.program(env.compile(rule)).evaluate({"self": celpy.json_to_cel(value)}))


APP_RULES = cel_rules("wasmapps")


@pytest.mark.parametrize(
    ("path", "value", "ok"),
    [
        (".spec.trigger", {"http": {"path": "/"}}, True),
        (".spec.trigger", {"job": {}}, True),
        (".spec.trigger", {}, False),
        (".spec.trigger", {"schedule": {"cron": "* * * * *"}}, True),
        (".spec.trigger", {"job": {}, "schedule": {"cron": "* * * * *"}}, False),
        (".spec.trigger", {"http": {"path": "/"}, "redis": {"dependency": "c", "channel": "x"}}, False),
        (".spec.env[]", {"name": "A", "value": ""}, True),
        (".spec.env[]", {"name": "A"}, False),
        (".spec.env[]", {"name": "A", "value": "x", "valueFrom": {}}, False),
        (".spec.env[].valueFrom", {"secretKeyRef": {"name": "s", "key": "k"}}, True),
        (".spec.env[].valueFrom", {}, False),
        (".spec.dependencies[]", {"name": "c", "redis": {}}, True),
        (".spec.dependencies[]", {"name": "c"}, False),
        (".spec.dependencies[]", {"name": "c", "redis": {}, "mysql": {"database": "d"}}, False),
        (
            ".spec.dependencies[]",
            {"name": "c", "mysql": {"database": "d"}, "serviceRef": {"name": "s", "port": 1}},
            False,
        ),
        (".spec.placement.tolerations[]", {"operator": "Exists"}, True),
        (".spec.placement.tolerations[]", {"key": "k", "operator": "Exists", "value": "v"}, False),
        (".spec.placement.tolerations[]", {"operator": "Equal", "value": "v"}, False),
        (".spec.resources.timeout", "30s", True),
        (".spec.resources.timeout", "1h", True),
        (".spec.resources.timeout", "61m", False),
        (".spec.rollout.maxUnavailable", 1, True),
        (".spec.rollout.maxUnavailable", 0, False),
        (".spec.rollout.maxUnavailable", "25%", True),
        (".spec.rollout.maxUnavailable", "0%", False),
        (".spec.rollout.maxUnavailable", "101%", False),
    ],
)
def test_cel_rules_behave(path: str, value: Any, ok: bool) -> None:
    rules = [r for r in APP_RULES[path] if not any(f in r for f in K8S_ONLY_FUNCTIONS)]
    assert rules
    assert all(evaluate(rule, value) for rule in rules) is ok


@pytest.mark.parametrize(
    ("spec", "ok"),
    [
        ({"trigger": {"http": {"path": "/"}}}, True),
        (
            {
                "trigger": {"redis": {"dependency": "c", "channel": "x"}},
                "dependencies": [{"name": "c", "redis": {}}],
            },
            True,
        ),
        ({"trigger": {"redis": {"dependency": "c", "channel": "x"}}}, False),
        (
            {
                "trigger": {"redis": {"dependency": "c", "channel": "x"}},
                "dependencies": [{"name": "d", "redis": {}}],
            },
            False,
        ),
        (
            {
                "trigger": {"redis": {"dependency": "c", "channel": "x"}},
                "dependencies": [{"name": "c", "mysql": {}}],
            },
            False,
        ),
    ],
)
def test_redis_trigger_rule(spec: dict[str, Any], ok: bool) -> None:
    [rule] = APP_RULES[".spec"]
    assert evaluate(rule, spec) is ok
