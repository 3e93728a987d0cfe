"""Where the Kubernetes binaries are: built by hack/build-tools.sh into a cache outside the clone."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

HACK_DIR = Path(__file__).resolve().parent.parent
TOOLS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "kube-proxy",
    "kwok",
    "helm",
    "oras",
)


def cache_dir() -> Path:
    return Path(os.environ.get("SHOAL_CACHE", Path.home() / ".cache" / "shoal"))


def bin_dir() -> Path:
    return cache_dir() / "bin" / "current"


def ensure_tools() -> Path:
    """Return the folder of built tools, building whatever is missing first (slow only the first time)."""
    folder = bin_dir()
    if not all((folder / t).exists() for t in TOOLS):
        subprocess.run([str(HACK_DIR / "build-tools.sh")], check=True, stdout=subprocess.DEVNULL)
    return folder


def tool(name: str) -> str:
    return str(ensure_tools() / name)
