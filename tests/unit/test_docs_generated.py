"""docs/wasmapp-reference.md and docs/metrics.md are what hack/gen_docs.py makes of the code."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

import gen_docs
from shoal_api import WasmApp
from shoal_api.crds import crd_definitions

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_docs_are_generated_from_the_code() -> None:
    assert gen_docs.drifted() == [], "run .venv/bin/python hack/gen_docs.py (make docs)"


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    assert gen_docs.main(["--check", "--root", str(tmp_path)]) == 1  # nothing there yet
    assert gen_docs.main(["--root", str(tmp_path)]) == 0
    assert gen_docs.main(["--check", "--root", str(tmp_path)]) == 0
    victim = tmp_path / gen_docs.METRICS
    victim.write_text(victim.read_text() + "edited by hand\n")
    assert gen_docs.drifted(tmp_path) == [gen_docs.METRICS]
    assert gen_docs.main(["--check", "--root", str(tmp_path)]) == 1


def _leaf_paths(schema: dict[str, object], path: str) -> list[str]:
    props = schema.get("properties")
    items = schema.get("items")
    if isinstance(items, dict) and items.get("type") == "object":
        return _leaf_paths(items, f"{path}[]")
    if not isinstance(props, dict) or not props:
        return [path]
    return [leaf for name, sub in props.items() for leaf in _leaf_paths(sub, f"{path}.{name}")]


def test_every_wasmapp_field_of_the_crd_is_documented_with_its_rules() -> None:
    text = gen_docs.render_reference()
    schema = crd_definitions()["shoal.dev_wasmapps.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in ("spec", "status"):
        for leaf in _leaf_paths(schema["properties"][part], part):
            assert f"| `{leaf}` |" in text, leaf
    for message in (
        "exactly one trigger kind must be set: http, redis, job or schedule",
        "memory must be between 1Mi and 4Gi",
        "a mysql dependency with serviceRef needs mysql.passwordSecret",
    ):
        assert message in text


def test_the_example_manifest_is_a_valid_wasmapp_and_spells_fields_right() -> None:
    text = gen_docs.render_reference()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    app = WasmApp.model_validate(yaml.safe_load(block))
    assert app.spec.replicas == 3 and app.spec.dependencies
    typo = copy.deepcopy(gen_docs.EXAMPLE)
    typo["spec"]["resources"]["maxConcurency"] = 3  # the model ignores it; the generator must not
    with pytest.raises(ValueError, match=r"\.spec\.resources\.maxConcurency"):
        gen_docs.validated_example(typo)


def test_metrics_doc_lists_every_metric_with_labels_and_buckets() -> None:
    text = gen_docs.render_metrics()
    for doc in [*gen_docs.agent_metric_docs(), *gen_docs.operator_metric_docs()]:
        assert f"| `{doc.name}` | {doc.type} |" in text, doc.name
    by_name = {d.name: d for d in gen_docs.agent_metric_docs()}
    pull = by_name["shoal_artifact_pull_seconds"]
    assert pull.labels == ("namespace", "app", "node", "result")
    assert pull.buckets[0] == pytest.approx(1e-5) and pull.buckets[-1] == 10.0
    assert by_name["shoal_invocations_total"].type == "counter"
    assert "10µs, 25µs" in text and "+Inf" in text
    for name, _ in gen_docs.COLD_START_PHASES:
        assert f"`{name}`:" in text
