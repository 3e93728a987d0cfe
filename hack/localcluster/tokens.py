"""ServiceAccount tokens (TokenRequest API) and kubeconfigs that authenticate as them.

Local processes (`shoal-operator`, `shoal-agent`) run with exactly the identity the chart gives their
pods: a token of the chart's ServiceAccount, optionally bound to one of the chart's pods. A pod-bound
token carries the pod's node in `userInfo.extra["authentication.kubernetes.io/node-name"]`, which is
what the chart's optional agent.nodeRestriction policy checks.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .controlplane import ControlPlane

DAY = 24 * 3600


@dataclass(frozen=True)
class BoundPod:
    """The pod a token is bound to: the token dies with it, and names its node."""

    name: str
    uid: str


def request_token(
    plane: ControlPlane,
    namespace: str,
    service_account: str,
    *,
    pod: BoundPod | None = None,
    expiration_seconds: int = DAY,
) -> str:
    """A token of `namespace/service_account` from the TokenRequest API (as the cluster admin)."""
    spec: dict[str, Any] = {"expirationSeconds": expiration_seconds}
    if pod is not None:
        spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": pod.name, "uid": pod.uid}
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
    req = urllib.request.Request(plane.server + path, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, context=plane.ssl_context(), timeout=10) as resp:
        return str(json.loads(resp.read())["status"]["token"])


def write_token_kubeconfig(path: Path, plane: ControlPlane, token: str, *, user: str) -> Path:
    """A kubeconfig with the apiserver, its CA and a bearer token: nothing else to authenticate with."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "shoal",
                "cluster": {"server": plane.server, "certificate-authority": str(plane.pki_dir / "ca.crt")},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "shoal", "context": {"cluster": "shoal", "user": user}}],
        "current-context": "shoal",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


def token_identity(plane: ControlPlane, token: str) -> dict[str, Any]:
    """Who the apiserver says the token is (SelfSubjectReview): username, groups, extra."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    req = urllib.request.Request(
        plane.server + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        data=json.dumps(body).encode(),
        method="POST",
    )
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {token}")
    ctx = ssl.create_default_context(cafile=str(plane.pki_dir / "ca.crt"))
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        info: dict[str, Any] = json.loads(resp.read())["status"]["userInfo"]
        return info
