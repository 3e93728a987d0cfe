"""charts/shoal: lint, render, a server-side dry run on the real control plane, and its RBAC for real.

The dry run sends every rendered object through the real apiserver (schemas, defaulting, admission,
the shoal.dev CRDs) without persisting anything. ServiceMonitor and PrometheusRule need the Prometheus
Operator's CRDs, which this control plane does not have; the test installs stand-ins that accept any
spec (so the dry run still checks apiVersion, kind, metadata and namespaces) and checks what the
stand-ins cannot, the links between those objects and the chart's Services, in Python.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster.tools import tool

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "shoal"
ALL_ON = REPO / "hack" / "values-all-on.yaml"
KUBE_VERSION = "1.33.0"  # helm built from source defaults to v1.20; the chart needs >= 1.31
MONITORING = "monitoring.coreos.com/v1"
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

Manifest = dict[str, Any]


def run(*cmd: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
    return done


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(tool("helm"), *args, check=check)


def render(*args: str, release: str = "shoal", namespace: str = "shoal-system") -> list[Manifest]:
    out = helm("template", release, str(CHART), "-n", namespace, "--kube-version", KUBE_VERSION, *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def kinds(docs: list[Manifest]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def dump(docs: list[Manifest]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


# --- lint and render (no cluster) -------------------------------------------------------------


@pytest.mark.parametrize("values", [[], ["-f", str(ALL_ON)]], ids=["defaults", "all-on"])
def test_lint_strict(values: list[str]) -> None:
    done = helm("lint", "--strict", "--kube-version", KUBE_VERSION, *values, str(CHART))
    assert "0 chart(s) failed" in done.stdout


def test_schema_rejects_unknown_and_invalid_values() -> None:
    for bad in ("operator.replicass=2", "agent.httpPort=0", "metrics.prometheusRule.thresholds.errorRatio=2"):
        done = helm("template", "x", str(CHART), "--kube-version", KUBE_VERSION, "--set", bad, check=False)
        assert done.returncode != 0 and "schema" in done.stderr.lower(), bad


def test_replicas_without_leader_election_fail() -> None:
    done = helm(
        "template",
        "x",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        "--set",
        "operator.leaderElection=false",
        check=False,
    )
    assert done.returncode != 0 and "leaderElection" in done.stderr
    docs = render("--set", "operator.leaderElection=false", "--set", "operator.replicas=1")
    (deploy,) = (d for d in docs if d["kind"] == "Deployment")
    assert deploy["spec"]["template"]["spec"]["containers"][0]["args"] == ["--no-leader-election"]


def test_defaults_render_the_core_objects() -> None:
    docs = render()
    assert kinds(docs) == sorted(
        ["ClusterRole"] * 5
        + ["ClusterRoleBinding"] * 3
        + ["ConfigMap"] * 2
        + ["DaemonSet", "Deployment"]
        + ["Role"] * 2
        + ["RoleBinding"] * 2
        + ["Service"] * 2
        + ["ServiceAccount"] * 2
    )
    (deploy,) = (d for d in docs if d["kind"] == "Deployment")
    assert deploy["spec"]["replicas"] == 2
    env = {e["name"]: e for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["SHOAL_AGENT_NAMESPACE"]["value"] == "shoal-system"

    (ds,) = (d for d in docs if d["kind"] == "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    (agent,) = pod["containers"]
    env = {e["name"]: e.get("valueFrom") for e in agent["env"]}
    assert env["CPU_REQUEST"]["resourceFieldRef"] == {
        "containerName": agent["name"],
        "resource": "requests.cpu",
        "divisor": "1m",
    }
    assert env["MEMORY_REQUEST"]["resourceFieldRef"]["resource"] == "requests.memory"
    assert env["MEMORY_LIMIT"]["resourceFieldRef"]["resource"] == "limits.memory"
    assert env["NODE_NAME"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["POD_IP"]["fieldRef"]["fieldPath"] == "status.podIP"
    cache = next(v for v in pod["volumes"] if v["name"] == "cache")
    assert "emptyDir" in cache


def test_dashboards_are_labelled_configmaps() -> None:
    maps = [d for d in render() if d["kind"] == "ConfigMap"]
    assert {m["metadata"]["labels"]["grafana_dashboard"] for m in maps} == {"1"}
    for m in maps:
        ((name, text),) = m["data"].items()
        assert json.loads(text)["uid"] == name.removesuffix(".json")
    assert not [d for d in render("--set", "dashboards.enabled=false") if d["kind"] == "ConfigMap"]


def test_monitoring_objects_need_the_api_and_the_values() -> None:
    without_api = kinds(render("-f", str(ALL_ON)))
    assert "ServiceMonitor" not in without_api and "PrometheusRule" not in without_api
    with_api_defaults = kinds(render("--api-versions", MONITORING))
    assert "ServiceMonitor" not in with_api_defaults and "PrometheusRule" not in with_api_defaults
    everything = kinds(render("-f", str(ALL_ON), "--api-versions", MONITORING))
    assert everything.count("ServiceMonitor") == 2 and everything.count("PrometheusRule") == 1


def check_monitoring_links(docs: list[Manifest]) -> None:
    """What the stand-in CRDs cannot check: each ServiceMonitor selects exactly one metrics Service by
    labels and port name, and the rules carry the thresholds from the values."""
    services = [d for d in docs if d["kind"] == "Service"]
    for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if wanted.items() <= s["metadata"]["labels"].items()]
        assert len(matched) == 1, monitor["metadata"]["name"]
        ports = {p["name"] for p in matched[0]["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
        assert monitor["spec"]["namespaceSelector"]["matchNames"] == [matched[0]["metadata"]["namespace"]]
    (rule,) = (d for d in docs if d["kind"] == "PrometheusRule")
    rules = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    values = yaml.safe_load(ALL_ON.read_text())["metrics"]["prometheusRule"]["thresholds"]
    assert rules["ShoalAgentDown"]["for"] == values["agentDownFor"]
    assert rules["ShoalInvocationErrorRatioHigh"]["expr"].count(f"> {values['errorRatio']} ") == 1
    assert "{{ $labels.node }}" in rules["ShoalAgentDown"]["annotations"]["description"]


RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.mark.parametrize("values", [[], ["-f", str(ALL_ON)]], ids=["defaults", "all-on"])
def test_pods_are_restricted(values: list[str]) -> None:
    for workload in (d for d in render(*values) if d["kind"] in ("Deployment", "DaemonSet")):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not pod.get("hostNetwork") and not pod.get("hostPID")
        assert all("hostPath" not in v for v in pod.get("volumes", []))
        for container in pod["containers"]:
            assert RESTRICTED_CONTAINER.items() <= container["securityContext"].items()
            assert all("hostPort" not in p for p in container["ports"])


# --- against the control plane --------------------------------------------------------------------

STANDIN_CRDS: list[Manifest] = [
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": plural[:-1], "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                            },
                        }
                    },
                }
            ],
        },
    }
    for kind, plural in (("ServiceMonitor", "servicemonitors"), ("PrometheusRule", "prometheusrules"))
]


@pytest.fixture(scope="module")
def kubectl(shoal_crds: Path) -> list[str]:
    """kubectl as cluster admin, with the shoal.dev CRDs installed and Prometheus Operator stand-ins."""
    cmd = [tool("kubectl"), f"--kubeconfig={shoal_crds}"]
    run(*cmd, "apply", "--server-side", "-f", "-", stdin=dump(STANDIN_CRDS))
    names = [f"crd/{c['metadata']['name']}" for c in STANDIN_CRDS]
    run(*cmd, "wait", "--for=condition=Established", "--timeout=60s", *names)
    return cmd


@pytest.fixture
def release_namespace(kubectl: list[str]) -> Iterator[str]:
    """A namespace that warns about anything the restricted Pod Security Standard forbids."""
    name = f"shoal-chart-{uuid.uuid4().hex[:6]}"
    run(*kubectl, "create", "namespace", name)
    run(*kubectl, "label", "namespace", name, "pod-security.kubernetes.io/warn=restricted")
    try:
        yield name
    finally:
        run(*kubectl, "delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize("all_on", [False, True], ids=["defaults", "all-on"])
def test_server_side_dry_run(kubectl: list[str], release_namespace: str, all_on: bool) -> None:
    ns = release_namespace
    args: list[str] = []
    if all_on:
        args = [
            "-f",
            str(ALL_ON),
            "--api-versions",
            MONITORING,
            "--set-json",
            f'agent.secretNamespaces=["{ns}"]',
            "--set",
            f"dashboards.namespace={ns}",
        ]
    docs = render(*args, namespace=ns)
    if all_on:
        check_monitoring_links(docs)
    done = run(
        *kubectl,
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=helm",
        "-f",
        "-",
        stdin=dump(docs),
    )
    applied = [line for line in done.stdout.splitlines() if "serverside-applied (server dry run)" in line]
    assert len(applied) == len(docs), done.stdout
    # The namespace enforces nothing but warns (kubectl prints it) for any pod template it would reject.
    assert "violate PodSecurity" not in done.stderr, done.stderr


# --- RBAC, applied for real --------------------------------------------------------------------

OPERATOR_CAN = [
    ("list", "nodes", None),
    ("watch", "nodes", None),
    ("list", "pods", "*"),
    ("watch", "pods", "*"),
    ("list", "leases.coordination.k8s.io", "NS"),  # the agents' heartbeats
    ("watch", "leases.coordination.k8s.io", "NS"),
    ("create", "leases.coordination.k8s.io", "NS"),
    ("get", "leases.coordination.k8s.io/shoal-operator", "NS"),
    ("update", "leases.coordination.k8s.io/shoal-operator", "NS"),
    ("list", "wasmapps.shoal.dev", "*"),
    ("watch", "wasmapps.shoal.dev", "*"),
    ("patch", "wasmapps.shoal.dev --subresource=status", "APP"),
    ("list", "wasmnodes.shoal.dev", None),
    ("watch", "wasmnodes.shoal.dev", None),
    ("watch", "wasmplacements.shoal.dev", "*"),
    ("create", "wasmplacements.shoal.dev", "APP"),
    ("patch", "wasmplacements.shoal.dev", "APP"),
    ("delete", "wasmplacements.shoal.dev", "APP"),
    ("create", "events", "APP"),
    ("create", "statefulsets.apps", "APP"),
    ("create", "persistentvolumeclaims", "APP"),
    ("create", "secrets", "APP"),
    ("get", "secrets", "APP"),
    ("get", "configmaps", "APP"),  # spec.files: checked to exist, by name
    ("create", "services", "APP"),
    ("patch", "services", "APP"),
    ("create", "endpointslices.discovery.k8s.io", "APP"),
    ("delete", "endpointslices.discovery.k8s.io", "APP"),
]
OPERATOR_CANNOT = [
    ("list", "customresourcedefinitions.apiextensions.k8s.io", None),  # no framework discovering kinds
    ("list", "leases.coordination.k8s.io", "kube-node-lease"),  # only the agent namespace's are read
    ("watch", "leases.coordination.k8s.io", "*"),
    ("update", "leases.coordination.k8s.io/someone-else", "NS"),
    ("create", "leases.coordination.k8s.io", "APP"),
    ("update", "leases.coordination.k8s.io", "kube-system"),
    ("update", "wasmapps.shoal.dev", "APP"),
    ("delete", "wasmapps.shoal.dev", "APP"),
    ("update", "wasmplacements.shoal.dev --subresource=status", "APP"),
    ("create", "wasmnodes.shoal.dev", None),
    ("update", "wasmnodes.shoal.dev", None),
    ("list", "secrets", "APP"),
    ("watch", "secrets", "*"),
    ("update", "secrets", "APP"),
    ("create", "pods", "APP"),
    ("delete", "pods", "APP"),
    ("delete", "statefulsets.apps", "APP"),
    ("update", "statefulsets.apps", "APP"),
    ("delete", "services", "APP"),
    ("patch", "nodes", None),
    ("list", "configmaps", "APP"),
    ("watch", "configmaps", "*"),
    ("create", "clusterroles.rbac.authorization.k8s.io", None),
    ("update", "customresourcedefinitions.apiextensions.k8s.io", None),
]
AGENT_CAN = [
    ("get", "wasmplacements.shoal.dev", "APP"),
    ("list", "wasmplacements.shoal.dev", "*"),
    ("watch", "wasmplacements.shoal.dev", "*"),
    ("patch", "wasmplacements.shoal.dev --subresource=status", "APP"),
    ("get", "wasmnodes.shoal.dev", None),
    ("create", "wasmnodes.shoal.dev", None),
    ("update", "wasmnodes.shoal.dev", None),
    ("patch", "wasmnodes.shoal.dev", None),
    ("patch", "wasmnodes.shoal.dev --subresource=status", None),
    ("get", "nodes", None),
    ("get", "services", "APP"),
    ("list", "endpointslices.discovery.k8s.io", "APP"),
    ("get", "secrets", "APP"),
    ("get", "configmaps", "APP"),
    ("get", "leases.coordination.k8s.io", "NS"),
    ("create", "leases.coordination.k8s.io", "NS"),
    ("update", "leases.coordination.k8s.io", "NS"),
    ("patch", "leases.coordination.k8s.io", "NS"),
]
AGENT_CANNOT = [
    ("get", "wasmapps.shoal.dev", "APP"),
    ("list", "wasmapps.shoal.dev", "*"),
    ("delete", "wasmapps.shoal.dev", "APP"),
    ("create", "wasmplacements.shoal.dev", "APP"),
    ("update", "wasmplacements.shoal.dev", "APP"),
    ("patch", "wasmplacements.shoal.dev", "APP"),
    ("delete", "wasmplacements.shoal.dev", "APP"),
    ("delete", "wasmnodes.shoal.dev", None),
    ("list", "wasmnodes.shoal.dev", None),
    ("list", "secrets", "APP"),
    ("list", "secrets", "*"),
    ("watch", "secrets", "*"),
    ("list", "configmaps", "APP"),
    ("create", "secrets", "APP"),
    ("create", "leases.coordination.k8s.io", "APP"),
    ("update", "leases.coordination.k8s.io", "kube-system"),
    ("delete", "leases.coordination.k8s.io", "NS"),
    ("list", "leases.coordination.k8s.io", "NS"),
    ("list", "nodes", None),
    ("patch", "nodes", None),
    ("create", "pods", "APP"),
    ("create", "events", "APP"),
    ("patch", "services", "APP"),
    ("watch", "endpointslices.discovery.k8s.io", "APP"),
]


@pytest.fixture
def applied_rbac(kubectl: list[str], release_namespace: str) -> Iterator[tuple[str, str, str]]:
    """The chart's ServiceAccounts and RBAC applied for real; yields (release, namespace, app namespace)."""
    release = f"rbac-{uuid.uuid4().hex[:6]}"
    docs = [d for d in render(release=release, namespace=release_namespace) if d["kind"] in RBAC_KINDS]
    app_ns = f"{release_namespace}-apps"
    run(*kubectl, "create", "namespace", app_ns)
    run(*kubectl, "apply", "--server-side", "--field-manager=helm", "-f", "-", stdin=dump(docs))
    try:
        yield release, release_namespace, app_ns
    finally:
        cluster_scoped = [
            f"{d['kind'].lower()}/{d['metadata']['name']}" for d in docs if "namespace" not in d["metadata"]
        ]
        run(*kubectl, "delete", "--ignore-not-found", *cluster_scoped, check=False)
        run(*kubectl, "delete", "namespace", app_ns, "--wait=false", check=False)


def can_i(
    kubectl: list[str], user: str, verb: str, what: str, where: str | None, ns: str, app_ns: str
) -> bool:
    resource, *flags = what.split()
    scope = {None: [], "*": ["-A"], "NS": ["-n", ns], "APP": ["-n", app_ns]}.get(where, ["-n", where or ""])
    done = run(*kubectl, "auth", "can-i", verb, resource, *flags, *scope, f"--as={user}", check=False)
    assert done.stdout.strip() in ("yes", "no"), done.stderr
    return done.stdout.strip() == "yes"


@pytest.mark.parametrize("component", ["operator", "agent"])
def test_rbac_least_privilege(kubectl: list[str], applied_rbac: tuple[str, str, str], component: str) -> None:
    release, ns, app_ns = applied_rbac
    user = f"system:serviceaccount:{ns}:{release}-shoal-{component}"
    can, cannot = (OPERATOR_CAN, OPERATOR_CANNOT) if component == "operator" else (AGENT_CAN, AGENT_CANNOT)
    denied = [c for c in can if not can_i(kubectl, user, *c, ns, app_ns)]
    allowed = [c for c in cannot if can_i(kubectl, user, *c, ns, app_ns)]
    assert (denied, allowed) == ([], [])


def test_secret_namespaces_bind_reads_per_namespace() -> None:
    docs = render("--set-json", 'agent.secretNamespaces=["team-a","team-b"]')
    readers = [d for d in docs if d["metadata"]["name"].endswith("-env-reader")]
    assert sorted((d["kind"], d["metadata"].get("namespace")) for d in readers) == [
        ("ClusterRole", None),
        ("RoleBinding", "team-a"),
        ("RoleBinding", "team-b"),
    ]
