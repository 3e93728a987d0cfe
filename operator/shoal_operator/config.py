"""Operator settings, from flags or the environment (the chart sets them as env)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    agent_namespace: str = "shoal-system"
    """Where agents keep their heartbeat Leases (the chart's namespace)."""
    lease_namespace: str = "shoal-system"
    """Where the operator replicas elect their leader."""
    leader_election: bool = True
    identity: str = "shoal-operator"
    metrics_port: int = 8080
    metrics_host: str = "0.0.0.0"
    resync_seconds: float = 30.0
    """Every app is reconciled at least this often, whatever the watches said."""
    tick_seconds: float = 1.0
    """How often agent heartbeats are checked for expiry (a Lease expires silently: no event)."""
    dependency_wait_seconds: float = 30.0
    """How long a new app with preferNearDependencies waits for its dependency pods to be bound
    before it is placed anyway: the operator creates them in the same reconcile, so without the
    wait the first placement could never be near them."""
    write_concurrency: int = 32
    """API writes in flight at once while applying a batch of decisions."""
    publish_concurrency: int = 16
    """Apps whose Service and EndpointSlices are written at once, in the background (publish.py)."""
