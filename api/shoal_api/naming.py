"""Deterministic object names and label selectors derived from app and node names.

Names must be valid DNS-1123 subdomains (<= 253 chars); node names can already be 253 chars long,
so anything that prefixes or joins them falls back to a truncated name plus a short hash.
"""

from __future__ import annotations

import hashlib

from shoal_api.constants import AGENT_LEASE_PREFIX, LABEL_APP, LABEL_NODE

MAX_NAME_LENGTH = 253
_HASH_LENGTH = 10


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LENGTH]


def _bounded(name: str, *, limit: int = MAX_NAME_LENGTH) -> str:
    """Return name, or a truncated prefix + hash of the full name when it is too long."""
    if len(name) <= limit:
        return name
    keep = limit - _HASH_LENGTH - 1
    return f"{name[:keep].rstrip('-.')}-{_short_hash(name)}"


def agent_lease_name(node: str) -> str:
    """Name of the coordination.k8s.io Lease an agent renews as its heartbeat."""
    return _bounded(f"{AGENT_LEASE_PREFIX}{node}")


def placement_name(*, app: str, node: str) -> str:
    """Name of the WasmPlacement of `app` on `node`: one per (app, node), so the name is the key."""
    return _bounded(f"{app}.{node}")


def placement_labels(*, app: str, node: str) -> dict[str, str]:
    """Labels every WasmPlacement carries; label values are limited to 63 characters."""
    return {LABEL_APP: _bounded(app, limit=63), LABEL_NODE: _bounded(node, limit=63)}


def node_selector(node: str) -> str:
    """Label selector an agent uses to watch only its own node's placements."""
    return f"{LABEL_NODE}={_bounded(node, limit=63)}"


def app_selector(app: str) -> str:
    """Label selector for an app's placements; also the WasmApp's status.selector for /scale."""
    return f"{LABEL_APP}={_bounded(app, limit=63)}"
