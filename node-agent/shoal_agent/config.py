"""Agent settings from flags, falling back to the environment the DaemonSet sets (downward API).

Flags win over env so a developer can run `shoal-agent --node-name node-1 ...` by hand next to a
cluster; in a pod everything comes from env: NODE_NAME, POD_NAMESPACE, POD_IP, CPU_REQUEST (plain
millicores, resourceFieldRef divisor 1m) and MEMORY_REQUEST (plain bytes).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_NAMESPACE = "shoal-system"
DEFAULT_HTTP_PORT = 8081
DEFAULT_METRICS_PORT = 9090
DEFAULT_LEASE_SECONDS = 15
DEFAULT_GRACE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class AgentConfig:
    node_name: str
    namespace: str = DEFAULT_NAMESPACE
    """Where the heartbeat Lease lives (the chart's namespace)."""
    kubeconfig: str | None = None
    """None: in-cluster config when running in a pod, else $KUBECONFIG / ~/.kube/config."""
    http_host: str = "0.0.0.0"
    http_port: int = DEFAULT_HTTP_PORT
    """The trigger port: WAGI apps are served here."""
    advertise_host: str = "127.0.0.1"
    """Published in WasmNode.spec.endpoint.host: the pod IP in a cluster."""
    metrics_host: str = "0.0.0.0"
    metrics_port: int = DEFAULT_METRICS_PORT
    cpu_millis: int = 1000
    memory_bytes: int = 1 << 30
    cache_dir: Path = Path(".")
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    """On SIGTERM: how long in-flight invocations may take to finish."""
    cluster_domain: str = "cluster.local"
    log_level: str = "INFO"
    memory_budget_bytes: int = 1 << 30
    """Sum of the memory limits of in-flight instances the data plane admits: the pod's memory
    limit less what the agent itself needs (the chart passes MEMORY_LIMIT by the downward API)."""

    @property
    def renew_seconds(self) -> float:
        return self.lease_seconds / 3

    @property
    def oci_cache_dir(self) -> Path:
        return self.cache_dir / "oci"

    @property
    def module_cache_dir(self) -> Path:
        return self.cache_dir / "modules"

    @property
    def files_dir(self) -> Path:
        """The trees of the apps' `spec.files` (files.py)."""
        return self.cache_dir / "files"

    @property
    def scratch_dir(self) -> Path:
        """Where the per-invocation scratch directories are made (and removed)."""
        return self.cache_dir / "scratch"

    @property
    def checkpoint_path(self) -> Path:
        """What this agent serves, for its next warm start (checkpoint.py)."""
        return self.cache_dir / "serving.json"


def default_cache_dir(node: str, env: Mapping[str, str]) -> Path:
    """${SHOAL_CACHE:-~/.cache/shoal}/agent/<node>: per node, so two agents on one host do not share."""
    base = env.get("SHOAL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "shoal")
    return Path(base) / "agent" / node


AGENT_OVERHEAD_BYTES = 256 << 20
"""What the agent needs besides guest memory (Python, the data plane's pools, caches)."""


def default_memory_budget(env: Mapping[str, str]) -> int:
    """MEMORY_LIMIT (bytes, from the pod's limits) less the agent's own overhead; 1 GiB without it."""
    limit = _int_env(env, "MEMORY_LIMIT")
    if not limit:
        return 1 << 30
    return max(limit - AGENT_OVERHEAD_BYTES, 64 << 20)


def _int_env(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not an integer (use resourceFieldRef divisor 1m / 1)") from None


def parse_args(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> AgentConfig:
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(prog="shoal-agent", description="Shoal node agent: runs Wasm placements.")
    p.add_argument("--node-name", default=env.get("NODE_NAME"), help="this node (env NODE_NAME)")
    p.add_argument(
        "--namespace", default=env.get("POD_NAMESPACE") or DEFAULT_NAMESPACE, help="Lease namespace"
    )
    p.add_argument("--kubeconfig", default=env.get("KUBECONFIG") or None)
    p.add_argument("--http-host", default="0.0.0.0", help="trigger port bind address")
    p.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT)
    p.add_argument(
        "--advertise-host",
        default=env.get("POD_IP") or None,
        help="host published in WasmNode.spec.endpoint (env POD_IP; default: --http-host or 127.0.0.1)",
    )
    p.add_argument("--metrics-host", default="0.0.0.0")
    p.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT)
    p.add_argument("--cpu-millis", type=int, default=_int_env(env, "CPU_REQUEST") or 1000)
    p.add_argument("--memory-bytes", type=int, default=_int_env(env, "MEMORY_REQUEST") or (1 << 30))
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--lease-seconds", type=int, default=DEFAULT_LEASE_SECONDS)
    p.add_argument("--grace-seconds", type=float, default=DEFAULT_GRACE_SECONDS)
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--log-level", default=env.get("LOG_LEVEL") or "INFO")
    p.add_argument(
        "--memory-budget",
        type=int,
        default=None,
        help="bytes of guest memory (sum of in-flight instances' limits) the agent admits "
        "(default: env MEMORY_LIMIT less 256 MiB, else 1 GiB)",
    )
    a = p.parse_args(argv)
    if not a.node_name:
        p.error("--node-name (or NODE_NAME) is required")
    if a.lease_seconds < 3:
        p.error("--lease-seconds must be at least 3")
    advertise = a.advertise_host or (a.http_host if a.http_host not in ("0.0.0.0", "::", "") else "127.0.0.1")
    return AgentConfig(
        node_name=a.node_name,
        namespace=a.namespace,
        kubeconfig=a.kubeconfig,
        http_host=a.http_host,
        http_port=a.http_port,
        advertise_host=advertise,
        metrics_host=a.metrics_host,
        metrics_port=a.metrics_port,
        cpu_millis=a.cpu_millis,
        memory_bytes=a.memory_bytes,
        cache_dir=a.cache_dir or default_cache_dir(a.node_name, env),
        lease_seconds=a.lease_seconds,
        grace_seconds=a.grace_seconds,
        cluster_domain=a.cluster_domain,
        log_level=a.log_level,
        memory_budget_bytes=a.memory_budget if a.memory_budget is not None else default_memory_budget(env),
    )
