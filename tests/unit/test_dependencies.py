"""Rendering of provisioned dependencies: object shapes, labels, ownership, retain, names, endpoints."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal_api.constants import API_VERSION, LABEL_APP, LABEL_MANAGED_BY, MANAGED_BY_VALUE
from shoal_api.meta import KeySelector
from shoal_api.wasmapp import WasmApp
from shoal_api.wasmplacement import DependencyEndpoint, ServiceEndpoint
from shoal_operator.dependencies import (
    LABEL_DEPENDENCY,
    LABEL_NAME,
    MAX_DEPENDENCY_NAME,
    dependency_endpoints,
    dependency_object_name,
    dependency_pod_selector,
    generate_password,
    generated_secret_name,
    provisioned_dependencies,
    render_dependency,
)

pytestmark = pytest.mark.unit

UID = "0b6f1c3e-1111-2222-3333-444455556666"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def make_app(*deps: dict[str, Any], name: str = "tally", namespace: str = "team") -> WasmApp:
    return WasmApp.model_validate(
        {
            "metadata": {"name": name, "namespace": namespace, "uid": UID},
            "spec": {
                "module": {"image": "registry.example/tally:v1"},
                "trigger": {"http": {"path": "/tally"}},
                "dependencies": list(deps),
            },
        }
    )


REDIS = {"name": "cache", "redis": {}}
MYSQL = {"name": "db", "mysql": {"database": "tally", "storage": "5Gi"}}


def render(app: WasmApp, name: str, **kw: Any) -> list[dict[str, Any]]:
    dep = app.spec.dependency(name)
    assert dep is not None
    return render_dependency(app, dep, password=kw.pop("password", "s3cret"), **kw).all()


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def container(sts: dict[str, Any]) -> dict[str, Any]:
    containers = sts["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    c: dict[str, Any] = containers[0]
    return c


# --- shapes -------------------------------------------------------------------------------------


def test_redis_renders_statefulset_and_service_without_secret() -> None:
    objs = by_kind(render(make_app(REDIS), "cache"))
    assert set(objs) == {"StatefulSet", "Service"}
    sts, svc = objs["StatefulSet"], objs["Service"]
    assert sts["metadata"]["name"] == svc["metadata"]["name"] == "tally-cache"
    assert sts["metadata"]["namespace"] == "team"
    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["serviceName"] == "tally-cache"
    c = container(sts)
    assert c["image"] == "redis:7"
    assert c["ports"][0]["containerPort"] == 6379
    assert "exec" in c["readinessProbe"]
    assert c["resources"]["requests"]
    assert svc["spec"]["ports"] == [{"name": "redis", "port": 6379, "targetPort": "redis", "protocol": "TCP"}]
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert c["volumeMounts"] == [{"name": claim["metadata"]["name"], "mountPath": "/data"}]


def test_mysql_renders_secret_wired_into_mariadb_env() -> None:
    objs = by_kind(render(make_app(MYSQL), "db", password="pw"))
    assert set(objs) == {"StatefulSet", "Service", "Secret"}
    secret, sts = objs["Secret"], objs["StatefulSet"]
    assert secret["metadata"]["name"] == "tally-db"
    assert secret["stringData"] == {"password": "pw", "user": "tally", "database": "tally"}
    c = container(sts)
    assert c["image"] == "mariadb:10.11"
    assert c["ports"][0]["containerPort"] == 3306
    env = {e["name"]: e for e in c["env"]}
    ref = {"secretKeyRef": {"name": "tally-db", "key": "password"}}
    assert env["MARIADB_ROOT_PASSWORD"]["valueFrom"] == ref
    assert env["MARIADB_PASSWORD"]["valueFrom"] == ref
    assert env["MARIADB_DATABASE"]["value"] == "tally"
    assert env["MARIADB_USER"]["value"] == "tally"
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert "storageClassName" not in claim["spec"]
    assert c["volumeMounts"][0]["mountPath"] == "/var/lib/mysql"


def test_mysql_with_own_password_secret_renders_no_secret() -> None:
    dep = {"name": "db", "mysql": {"database": "d", "passwordSecret": {"name": "mine", "key": "pw"}}}
    app = make_app(dep)
    objs = by_kind(render(app, "db", password=None))
    assert "Secret" not in objs
    env = {e["name"]: e for e in container(objs["StatefulSet"])["env"]}
    assert env["MARIADB_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "mine", "key": "pw"}}
    assert generated_secret_name(app, app.spec.dependencies[0]) is None


def test_generated_mysql_secret_requires_a_password() -> None:
    app = make_app(MYSQL)
    with pytest.raises(ValueError, match="password"):
        render_dependency(app, app.spec.dependencies[0], password=None)


def test_service_ref_dependencies_are_not_rendered() -> None:
    app = make_app({"name": "ext", "redis": {}, "serviceRef": {"name": "shared", "port": 6380}}, REDIS)
    assert [d.name for d in provisioned_dependencies(app)] == ["cache"]
    with pytest.raises(ValueError, match="serviceRef"):
        render_dependency(app, app.spec.dependencies[0], password=None)


def test_storage_class_is_configurable() -> None:
    sts = by_kind(render(make_app(MYSQL), "db", storage_class="local"))["StatefulSet"]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "local"


def test_pods_run_as_non_root_without_api_access() -> None:
    for name, dep in (("cache", REDIS), ("db", MYSQL)):
        pod = by_kind(render(make_app(dep), name))["StatefulSet"]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


# --- labels and ownership -----------------------------------------------------------------------


@pytest.mark.parametrize(("dep", "kind"), [(REDIS, "redis"), (MYSQL, "mariadb")])
def test_every_object_is_labelled(dep: dict[str, Any], kind: str) -> None:
    expected = {
        LABEL_MANAGED_BY: MANAGED_BY_VALUE,
        LABEL_APP: "tally",
        LABEL_DEPENDENCY: dep["name"],
        LABEL_NAME: kind,
    }
    objs = render(make_app(dep), dep["name"])
    for obj in objs:
        assert obj["metadata"]["labels"] == expected, obj["kind"]
    sts = by_kind(objs)["StatefulSet"]
    selector = sts["spec"]["selector"]["matchLabels"]
    assert selector == {LABEL_APP: "tally", LABEL_DEPENDENCY: dep["name"]}
    assert sts["spec"]["template"]["metadata"]["labels"].items() >= selector.items()
    assert by_kind(objs)["Service"]["spec"]["selector"] == selector
    assert (
        dependency_pod_selector("tally", dep["name"]) == f"{LABEL_APP}=tally,{LABEL_DEPENDENCY}={dep['name']}"
    )


@pytest.mark.parametrize("retain", [False, True])
def test_objects_are_controlled_by_the_app(retain: bool) -> None:
    owner = {
        "apiVersion": API_VERSION,
        "kind": "WasmApp",
        "name": "tally",
        "uid": UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    objs = by_kind(render(make_app(REDIS, MYSQL | {"retain": retain}), "db"))
    assert objs["StatefulSet"]["metadata"]["ownerReferences"] == [owner]
    assert objs["Service"]["metadata"]["ownerReferences"] == [owner]
    # The retained Secret outlives the app: the retained data only opens with its password.
    assert objs["Secret"]["metadata"].get("ownerReferences") == (None if retain else [owner])


@pytest.mark.parametrize(("retain", "policy"), [(False, "Delete"), (True, "Retain")])
def test_claim_retention_follows_retain(retain: bool, policy: str) -> None:
    for name, dep in (("cache", REDIS), ("db", MYSQL)):
        sts = by_kind(render(make_app(dep | {"retain": retain}), name))["StatefulSet"]
        assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
            "whenDeleted": policy,
            "whenScaled": "Retain",
        }


def test_app_without_uid_is_refused() -> None:
    app = make_app(REDIS)
    app.metadata.uid = None
    with pytest.raises(ValueError, match="uid"):
        render_dependency(app, app.spec.dependencies[0], password=None)


# --- names --------------------------------------------------------------------------------------


def test_plain_names_are_kept() -> None:
    assert dependency_object_name("tally", "cache") == "tally-cache"


@pytest.mark.parametrize(
    ("app", "dep"),
    [("a.b", "c"), ("1app", "db"), ("x" * 200, "cache"), ("a" * 40, "b" * 20), ("app", "d" * 63)],
)
def test_rewritten_names_are_dns_labels_that_fit_a_statefulset(app: str, dep: str) -> None:
    name = dependency_object_name(app, dep)
    assert DNS_1035.match(name), name
    assert len(name) <= MAX_DEPENDENCY_NAME


def test_rewritten_names_do_not_collide() -> None:
    assert dependency_object_name("a.b", "c") != dependency_object_name("a-b", "c")
    long = "x" * 60
    assert dependency_object_name(long + "1", "c") != dependency_object_name(long + "2", "c")


app_names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,60}[a-z0-9])?(\.[a-z0-9]{1,20}){0,3}", fullmatch=True)
dep_names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)


@given(app=app_names, dep=dep_names)
def test_any_valid_pair_gives_a_valid_bounded_name(app: str, dep: str) -> None:
    name = dependency_object_name(app, dep)
    assert DNS_1035.match(name), name
    assert len(name) <= MAX_DEPENDENCY_NAME


def test_long_app_names_give_bounded_label_values_and_mysql_user() -> None:
    app = make_app(MYSQL, name="a" * 200)
    objs = by_kind(render(app, "db"))
    assert len(objs["StatefulSet"]["metadata"]["labels"][LABEL_APP]) <= 63
    assert len(objs["Secret"]["stringData"]["user"]) <= 32
    assert len(objs["StatefulSet"]["metadata"]["name"]) <= MAX_DEPENDENCY_NAME


# --- endpoints ----------------------------------------------------------------------------------


def test_endpoints_of_provisioned_dependencies_point_at_rendered_services() -> None:
    app = make_app(REDIS, MYSQL)
    endpoints = dependency_endpoints(app, namespace="team")
    assert endpoints == [
        DependencyEndpoint(
            name="cache",
            kind="redis",
            service=ServiceEndpoint(name="tally-cache", namespace="team", port=6379),
        ),
        DependencyEndpoint(
            name="db",
            kind="mysql",
            service=ServiceEndpoint(name="tally-db", namespace="team", port=3306),
            database="tally",
            password_secret=KeySelector(name="tally-db", key="password"),
            user="tally",
        ),
    ]
    rendered = by_kind(render(app, "db"))
    assert endpoints[1].service.name == rendered["Service"]["metadata"]["name"]
    assert endpoints[1].password_secret is not None
    assert endpoints[1].password_secret.name == rendered["Secret"]["metadata"]["name"]


def test_endpoints_of_service_refs_use_the_referenced_service() -> None:
    app = make_app(
        {"name": "cache", "redis": {}, "serviceRef": {"name": "shared-redis", "port": 6380}},
        {
            "name": "db",
            "mysql": {"database": "orders", "passwordSecret": {"name": "db-creds", "key": "pw"}},
            "serviceRef": {"name": "mysql", "namespace": "data", "port": 3307},
        },
    )
    cache, db = dependency_endpoints(app, namespace="team")
    assert cache.service == ServiceEndpoint(name="shared-redis", namespace="team", port=6380)
    assert db.service == ServiceEndpoint(name="mysql", namespace="data", port=3307)
    assert db.database == "orders"
    assert db.password_secret == KeySelector(name="db-creds", key="pw")
    assert db.user is None


def test_generated_passwords_are_long_and_distinct() -> None:
    passwords = {generate_password() for _ in range(32)}
    assert len(passwords) == 32
    assert all(len(p) >= 32 and re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in passwords)
