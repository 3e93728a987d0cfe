"""The scenarios `make chaos` runs, in this order (later ones reuse what earlier ones deployed:
the soak clicks the Finicky Whiskers that `dependencies_down` deployed)."""

from __future__ import annotations

from collections.abc import Callable

from chaos.cluster import Cluster
from chaos.dependencies import dependencies_down
from chaos.drain import node_drain
from chaos.figures import Result
from chaos.scenarios import (
    Profile,
    agent_crash,
    apiserver_restart,
    hostile_modules,
    operator_kills,
    registry_down,
    rolling_update,
)
from chaos.soak import soak

SCENARIOS: dict[str, Callable[[Cluster, Profile], Result]] = {
    "agent_crash": agent_crash,
    "rolling_update": rolling_update,
    "node_drain": node_drain,
    "operator_kills": operator_kills,
    "apiserver_restart": apiserver_restart,
    "registry_down": registry_down,
    "dependencies_down": dependencies_down,
    "hostile_modules": hostile_modules,
    "soak": soak,
}
