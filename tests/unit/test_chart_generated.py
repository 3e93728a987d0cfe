"""Everything in charts/shoal that is generated (CRDs, dashboards, alert rules) matches its source."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

import gen_crds
import gen_dashboards
from dashboards import ALERTS, THRESHOLDS, all_expressions, expected_files
from dashboards.promql import GRAFANA_DEFAULTS
from dashboards.render import DASHBOARD_DIR

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "shoal"


def test_chart_crds_are_generated_from_the_models() -> None:
    assert gen_crds.drifted(CHART / "crds") == [], "run .venv/bin/python hack/gen_crds.py"
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == sorted(gen_crds.expected_files())


def test_gen_crds_check_covers_the_chart(tmp_path: Path) -> None:
    """--check without --out looks at both folders; --chart-out adds a second folder to any run."""
    assert gen_crds.main(["--check"]) == 0
    assert gen_crds.main(["--out", str(tmp_path / "a"), "--chart-out", str(tmp_path / "b")]) == 0
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(gen_crds.expected_files())
    (tmp_path / "b" / "shoal.dev_wasmapps.yaml").write_text("edited\n")
    assert gen_crds.main(["--check", "--out", str(tmp_path / "a"), "--chart-out", str(tmp_path / "b")]) == 1


def test_dashboards_and_rules_are_generated() -> None:
    assert gen_dashboards.drifted() == [], "run .venv/bin/python hack/gen_dashboards.py"


def test_drift_is_detected(tmp_path: Path) -> None:
    for rel, text in expected_files().items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert gen_dashboards.drifted(tmp_path) == []
    stale = tmp_path / DASHBOARD_DIR / "old.json"
    stale.write_text("{}")
    first = sorted(expected_files())[0]
    (tmp_path / first).write_text("changed")
    assert gen_dashboards.drifted(tmp_path) == [first, f"{DASHBOARD_DIR}/old.json"]


def test_dashboards_have_variables_and_unique_panel_ids() -> None:
    for path in sorted((CHART / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        assert board["uid"] == path.stem
        names = [v["name"] for v in board["templating"]["list"]]
        assert names[0] == "datasource"
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == "${datasource}"
    workloads = json.loads((CHART / "dashboards" / "shoal-workloads.json").read_text())
    assert [v["name"] for v in workloads["templating"]["list"]] == ["datasource", "namespace", "app", "node"]
    assert any(p["type"] == "heatmap" for p in workloads["panels"])


REQUIRED_METRICS = {
    "shoal_artifact_pull_seconds",
    "shoal_module_compile_seconds",
    "shoal_instance_start_seconds",
    "shoal_invocation_first_byte_seconds",
    "shoal_placement_cold_start_seconds",
    "shoal_invocations_total",
    "shoal_instances_active",
    "shoal_operator_scheduling_latency_seconds",
    "shoal_operator_reconcile_errors_total",
}


def test_expressions_cover_the_metrics_and_resolve_grafana_variables() -> None:
    exprs = all_expressions()
    text = "\n".join(e.expr for e in exprs)
    assert {m for m in REQUIRED_METRICS if m not in text} == set()
    for e in exprs:
        assert "$" not in e.runnable, e
        assert e.runnable.count("(") == e.runnable.count(")"), e
    assert {e.source for e in exprs if e.source.startswith("alert: ")} == {f"alert: {a.name}" for a in ALERTS}
    assert set(GRAFANA_DEFAULTS) >= set(re.findall(r"\$\w+", text))


def test_metric_names_exist_in_the_programs() -> None:
    """Every shoal_* metric a query uses is registered by the agent or the operator."""
    from prometheus_client import CollectorRegistry

    from shoal_agent.metrics import AgentMetrics
    from shoal_operator.metrics import OperatorMetrics

    names: set[str] = set()
    for registry in (AgentMetrics("n").registry, OperatorMetrics(CollectorRegistry()).registry):
        for family in registry.collect():
            names.add(family.name)
    used = set(re.findall(r"\bshoal_[a-z_]+", "\n".join(e.expr for e in all_expressions())))
    known = {n for n in names} | {f"{n}{s}" for n in names for s in ("_bucket", "_count", "_sum", "_total")}
    assert used - known == set()


def test_values_thresholds_match_the_alert_defaults() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    thresholds = values["metrics"]["prometheusRule"]["thresholds"]
    assert {k: str(v) for k, v in thresholds.items()} == {t.name: t.default for t in THRESHOLDS}
