"""Turn a scheduling decision into create / update / delete actions on WasmPlacements.

Pure and idempotent: called on every reconcile with what exists now, it returns only the next
safe step of a rolling update. Creating never costs availability; updating or deleting a ready
placement does, and those share one budget so that at least `replicas - maxUnavailable`
placements stay ready. Not-ready placements are updated (or deleted) first since that is free.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ActualPlacement:
    """A WasmPlacement as it exists now."""

    name: str
    node: str
    template_hash: str
    ready: bool
    terminating: bool = False
    """deletionTimestamp set: already going, neither counted as ready nor acted on."""


@dataclass(frozen=True, slots=True)
class PlacementActions:
    create: tuple[str, ...]
    """Nodes to create a placement on."""
    update: tuple[ActualPlacement, ...]
    """Placements whose spec must be rewritten to the new template."""
    delete: tuple[ActualPlacement, ...]
    held_back: int
    """Updates/deletes of ready placements deferred by maxUnavailable (0 when rollout is done)."""
    waiting_for_termination: tuple[str, ...] = ()
    """Desired nodes whose old placement is still terminating (create it once gone)."""

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def diff_placements(
    *,
    desired_nodes: Collection[str],
    template_hash: str,
    actual: Iterable[ActualPlacement],
    replicas: int,
    max_unavailable: int,
) -> PlacementActions:
    """Next actions to move `actual` towards one placement per desired node with `template_hash`."""
    desired = set(desired_nodes)
    live = sorted((p for p in actual if not p.terminating), key=lambda p: (p.node, p.name))
    terminating_nodes = {p.node for p in actual if p.terminating}

    current: dict[str, ActualPlacement] = {}
    unwanted: list[ActualPlacement] = []
    for placement in live:
        if placement.node not in desired:
            unwanted.append(placement)
            continue
        existing = current.get(placement.node)
        if existing is None:
            current[placement.node] = placement
        else:  # duplicate for a node: keep the better one (ready, up to date)
            keep, drop = sorted((existing, placement), key=lambda p: _preference(p, template_hash))
            current[placement.node] = keep
            unwanted.append(drop)

    create = tuple(sorted(n for n in desired if n not in current and n not in terminating_nodes))
    waiting = tuple(sorted(n for n in desired if n not in current and n in terminating_nodes))
    stale = [p for p in current.values() if p.template_hash != template_hash]

    update: list[ActualPlacement] = [p for p in stale if not p.ready]
    delete: list[ActualPlacement] = [p for p in unwanted if not p.ready]

    ready_now = sum(p.ready for p in live)
    budget = ready_now - max(0, replicas - max(0, max_unavailable))
    held_back = 0
    for placement in sorted((p for p in unwanted if p.ready), key=lambda p: (p.node, p.name)):
        if budget > 0:
            delete.append(placement)
            budget -= 1
        else:
            held_back += 1
    for placement in sorted((p for p in stale if p.ready), key=lambda p: (p.node, p.name)):
        if budget > 0:
            update.append(placement)
            budget -= 1
        else:
            held_back += 1
    return PlacementActions(
        create=create,
        update=tuple(sorted(update, key=lambda p: (p.node, p.name))),
        delete=tuple(sorted(delete, key=lambda p: (p.node, p.name))),
        held_back=held_back,
        waiting_for_termination=waiting,
    )


def _preference(placement: ActualPlacement, template_hash: str) -> tuple[bool, bool, str]:
    return (not placement.ready, placement.template_hash != template_hash, placement.name)
