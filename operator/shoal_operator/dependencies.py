"""The Kubernetes objects behind a WasmApp's provisioned dependencies, and the endpoints agents use.

Pure functions: an app in, plain dicts out (ready for create/patch/server-side apply), so the shape of
what the operator creates is unit-tested without a cluster and the reconciler stays a thin shell.

One dependency without `serviceRef` becomes a single-replica StatefulSet, a ClusterIP Service and,
for a mysql whose password the operator generates, a Secret. All share one name, `<app>-<dep>`.

Storage: both kinds get a PersistentVolumeClaim template (mysql sized from `mysql.storage`, redis a
fixed `REDIS_STORAGE` with AOF on). Redis could live in an emptyDir, but then `retain` would mean
nothing for it, and volumeClaimTemplates are immutable, so a StatefulSet whose shape followed
`retain` would have to be recreated when the flag flips. One shape for both kinds keeps `retain` a
patch of `persistentVolumeClaimRetentionPolicy`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any, Final

from shoal_api.constants import LABEL_APP, LABEL_MANAGED_BY, MANAGED_BY_VALUE
from shoal_api.meta import KeySelector, owner_ref
from shoal_api.naming import _bounded
from shoal_api.wasmapp import Dependency, WasmApp
from shoal_api.wasmplacement import DependencyEndpoint, ServiceEndpoint

LABEL_DEPENDENCY: Final = "shoal.dev/dependency"
LABEL_NAME: Final = "app.kubernetes.io/name"

REDIS_IMAGE: Final = "redis:7"
MARIADB_IMAGE: Final = "mariadb:10.11"
REDIS_PORT: Final = 6379
MYSQL_PORT: Final = 3306
REDIS_STORAGE: Final = "1Gi"
DATA_VOLUME: Final = "data"

# Keys of the generated mysql Secret. The password is also MariaDB's root password: the server is
# dedicated to this one app, so a second secret would protect nothing the app cannot already reach.
SECRET_PASSWORD_KEY: Final = "password"
SECRET_USER_KEY: Final = "user"
SECRET_DATABASE_KEY: Final = "database"

# Both official images run their server as uid/gid 999 and support starting as that user directly,
# which lets the pods pass the "restricted" Pod Security Standard.
_IMAGE_UID: Final = 999

# A StatefulSet's pods carry `controller-revision-hash: <name>-<10 chars>`, a label value (<= 63),
# so StatefulSet names over 52 characters create pods that the apiserver rejects.
MAX_DEPENDENCY_NAME: Final = 52
MAX_MYSQL_USER: Final = 32  # MySQL's limit; MariaDB allows 80, clients written for MySQL may not.
_LABEL_VALUE_MAX: Final = 63
_HASH_LENGTH: Final = 8
_DNS_1035_RE: Final = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

PASSWORD_BYTES: Final = 24


@dataclass(frozen=True)
class DependencyObjects:
    """What one provisioned dependency consists of; `secret` is None unless the operator owns the
    password (mysql without `passwordSecret`)."""

    statefulset: dict[str, Any]
    service: dict[str, Any]
    secret: dict[str, Any] | None = None

    def all(self) -> list[dict[str, Any]]:
        """In creation order: the Secret the pod reads, the Service it is named by, then the pod."""
        return [o for o in (self.secret, self.service, self.statefulset) if o is not None]


# --- names and labels ---------------------------------------------------------------------------


def dependency_object_name(app_name: str, dep_name: str) -> str:
    """`<app>-<dep>` as a DNS-1035 label of at most MAX_DEPENDENCY_NAME characters.

    Service names must start with a letter and cannot contain dots, app names may do both. When the
    plain join does not fit, the name is rewritten and gets a hash of (app, dep) so two apps whose
    rewritten names coincide ("a.b" and "a-b") still get different objects. A plain join can still
    collide ("a-b" + "c" vs "a" + "b-c"); the operator must check LABEL_APP/LABEL_DEPENDENCY on an
    existing object before taking it over.
    """
    plain = f"{app_name}-{dep_name}"
    if len(plain) <= MAX_DEPENDENCY_NAME and _DNS_1035_RE.match(plain):
        return plain
    digest = hashlib.sha256(f"{app_name}/{dep_name}".encode()).hexdigest()[:_HASH_LENGTH]
    stem = plain.replace(".", "-")
    if not stem[0].isalpha():
        stem = f"x{stem}"
    stem = stem[: MAX_DEPENDENCY_NAME - _HASH_LENGTH - 1].rstrip("-")
    return f"{stem}-{digest}"


def generated_secret_name(app: WasmApp, dep: Dependency) -> str | None:
    """Name of the Secret the operator generates for `dep`, or None when it generates none.

    A password is generated once and never rotated, because the data directory keeps the one it was
    initialized with: the reconciler either passes this Secret's existing password back to
    render_dependency, or creates the Secret only if absent (a fresh password is then discarded).
    """
    if dep.mysql is None or dep.service_ref is not None or dep.mysql.password_secret is not None:
        return None
    return dependency_object_name(_app_name(app), dep.name)


def mysql_user(app_name: str) -> str:
    """The MySQL user an app connects as: its name, bounded to MySQL's 32 characters."""
    return _bounded(app_name, limit=MAX_MYSQL_USER)


def dependency_labels(app_name: str, dep_name: str) -> dict[str, str]:
    """Selector labels of a dependency's pods (label values are bounded to 63 characters)."""
    return {LABEL_APP: _bounded(app_name, limit=_LABEL_VALUE_MAX), LABEL_DEPENDENCY: dep_name}


def dependency_pod_selector(app_name: str, dep_name: str) -> str:
    """Label selector of a dependency's pods, e.g. for "prefer near dependencies" scoring."""
    return ",".join(f"{k}={v}" for k, v in dependency_labels(app_name, dep_name).items())


def provisioned_dependencies(app: WasmApp) -> list[Dependency]:
    """The dependencies the operator runs itself (those without serviceRef)."""
    return [d for d in app.spec.dependencies if d.service_ref is None]


# --- rendering ----------------------------------------------------------------------------------


def generate_password() -> str:
    """A random URL-safe password (~190 bits), safe in env vars and connection strings."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def render_dependency(
    app: WasmApp, dep: Dependency, *, password: str | None, storage_class: str | None = None
) -> DependencyObjects:
    """The StatefulSet, Service and (mysql with a generated password) Secret of `dep`.

    `password` is required exactly when generated_secret_name() is not None: the existing Secret's
    password, or generate_password() the first time. `storage_class` sets the claims'
    storageClassName; None leaves it to the cluster's default StorageClass.

    Every object is controlled by the app, so the garbage collector removes it with the app, except
    the generated Secret of a `retain: true` dependency: the retained claim's data directory only
    opens with the password it was initialized with, so deleting the Secret would leave the kept
    data unusable. A recreated app of the same name finds and reuses that Secret (and the claim).
    """
    if dep.service_ref is not None:
        raise ValueError(f"dependency {dep.name} has a serviceRef: there is nothing to provision")
    app_name = _app_name(app)
    secret_name = generated_secret_name(app, dep)
    if secret_name is not None and not password:
        raise ValueError(f"dependency {dep.name}: a password is needed for its generated Secret")
    name = dependency_object_name(app_name, dep.name)
    kind = "redis" if dep.redis is not None else "mariadb"
    labels = {
        LABEL_MANAGED_BY: MANAGED_BY_VALUE,
        LABEL_NAME: kind,
        **dependency_labels(app_name, dep.name),
    }
    owner = owner_ref(app)
    namespace = app.metadata.namespace

    def metadata(*, owned: bool = True) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
        if namespace:
            meta["namespace"] = namespace
        if owned:
            meta["ownerReferences"] = [owner]
        return meta

    port = REDIS_PORT if dep.redis is not None else MYSQL_PORT
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(),
        "spec": {
            # ClusterIP rather than headless: a stable address survives pod restarts, so agents'
            # pooled connections reconnect to the same IP instead of re-resolving DNS.
            "type": "ClusterIP",
            "selector": dependency_labels(app_name, dep.name),
            "ports": [{"name": kind, "port": port, "targetPort": kind, "protocol": "TCP"}],
        },
    }
    if dep.redis is not None:
        container = _redis_container()
        storage = REDIS_STORAGE
    else:
        assert dep.mysql is not None
        password_ref = dep.mysql.password_secret or KeySelector(name=name, key=SECRET_PASSWORD_KEY)
        container = _mariadb_container(
            database=dep.mysql.database, user=mysql_user(app_name), password=password_ref
        )
        storage = dep.mysql.storage

    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage}},
    }
    if storage_class is not None:
        claim_spec["storageClassName"] = storage_class
    # whenScaled stays Retain: the StatefulSet only ever scales to 0 by hand, and that must not
    # cost the data.
    when_deleted = "Retain" if dep.retain else "Delete"
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(),
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": dependency_labels(app_name, dep.name)},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": when_deleted, "whenScaled": "Retain"},
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": _IMAGE_UID,
                        "runAsGroup": _IMAGE_UID,
                        "fsGroup": _IMAGE_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                },
            },
            "volumeClaimTemplates": [
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": DATA_VOLUME, "labels": dict(labels)},
                    "spec": claim_spec,
                }
            ],
        },
    }
    secret = None
    if secret_name is not None:
        assert dep.mysql is not None and password is not None
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata(owned=not dep.retain),
            "type": "Opaque",
            "stringData": {
                SECRET_PASSWORD_KEY: password,
                SECRET_USER_KEY: mysql_user(app_name),
                SECRET_DATABASE_KEY: dep.mysql.database,
            },
        }
    return DependencyObjects(statefulset=statefulset, service=service, secret=secret)


def _redis_container() -> dict[str, Any]:
    return {
        "name": "redis",
        "image": REDIS_IMAGE,
        # Append-only file on the claim, so a restart (or a retained claim) keeps the data.
        "args": ["redis-server", "--appendonly", "yes", "--dir", "/data"],
        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
        # PING answers -LOADING while the AOF is replayed; only PONG means ready.
        "readinessProbe": {
            "exec": {"command": ["sh", "-c", 'test "$(redis-cli -p 6379 ping)" = PONG']},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        # Requests for the scheduler; a memory limit so a runaway cache cannot take the node. No CPU
        # limit: throttling a single-threaded server hurts every client's latency.
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": _container_security(),
        "volumeMounts": [{"name": DATA_VOLUME, "mountPath": "/data"}],
    }


def _mariadb_container(*, database: str, user: str, password: KeySelector) -> dict[str, Any]:
    secret_ref = {"secretKeyRef": {"name": password.name, "key": password.key}}
    return {
        "name": "mariadb",
        "image": MARIADB_IMAGE,
        # The entrypoint only reads these when the data directory is empty; a retained claim keeps
        # the user and password it was initialized with, which is why the Secret outlives the app.
        "env": [
            {"name": "MARIADB_ROOT_PASSWORD", "valueFrom": secret_ref},
            {"name": "MARIADB_DATABASE", "value": database},
            {"name": "MARIADB_USER", "value": user},
            {"name": "MARIADB_PASSWORD", "valueFrom": secret_ref},
        ],
        "ports": [{"name": "mariadb", "containerPort": MYSQL_PORT, "protocol": "TCP"}],
        # The image's own check: TCP accepted (so initialization, which runs with networking off,
        # is over) and InnoDB recovered, as its generated healthcheck user. Init can take a while.
        "readinessProbe": {
            "exec": {"command": ["healthcheck.sh", "--connect", "--innodb_initialized"]},
            "initialDelaySeconds": 5,
            "periodSeconds": 5,
            "timeoutSeconds": 5,
            "failureThreshold": 6,
        },
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": _container_security(),
        "volumeMounts": [{"name": DATA_VOLUME, "mountPath": "/var/lib/mysql"}],
    }


def _container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


# --- endpoints ----------------------------------------------------------------------------------


def dependency_endpoints(app: WasmApp, *, namespace: str) -> list[DependencyEndpoint]:
    """Where each dependency of `app` (in `namespace`) is reached, and with which credentials.

    Provisioned dependencies resolve to the Service rendered above; serviceRef ones to the referenced
    Service (its namespace defaults to the app's). Passwords stay Secret references.
    """
    app_name = _app_name(app)
    endpoints = []
    for dep in app.spec.dependencies:
        ref = dep.service_ref
        if ref is not None:
            service = ServiceEndpoint(name=ref.name, namespace=ref.namespace or namespace, port=ref.port)
        else:
            port = REDIS_PORT if dep.redis is not None else MYSQL_PORT
            service = ServiceEndpoint(
                name=dependency_object_name(app_name, dep.name), namespace=namespace, port=port
            )
        if dep.mysql is None:
            endpoints.append(DependencyEndpoint(name=dep.name, kind="redis", service=service))
            continue
        password = dep.mysql.password_secret or KeySelector(
            name=dependency_object_name(app_name, dep.name), key=SECRET_PASSWORD_KEY
        )
        endpoints.append(
            DependencyEndpoint(
                name=dep.name,
                kind="mysql",
                service=service,
                database=dep.mysql.database,
                password_secret=password,
                # A referenced server has its own users: leave the agent's default (the app name).
                user=None if ref is not None else mysql_user(app_name),
            )
        )
    return endpoints


# --- helpers ------------------------------------------------------------------------------------


def _app_name(app: WasmApp) -> str:
    if not app.metadata.name:
        raise ValueError("the WasmApp has no metadata.name")
    return app.metadata.name
