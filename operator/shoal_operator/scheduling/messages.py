"""The kube-scheduler style "0/3 nodes are available: ..." summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping


def unschedulable_message(
    *, available: int, total: int, reasons: Mapping[str, str], unplaced: int, replicas: int
) -> str:
    """Count every filtered node under its reason; sorted, so the text is deterministic.

    e.g. "1/3 nodes are available: 1 Insufficient agent memory, 1 node(s) had untolerated taint
    {dedicated: gpu}. 2/3 replicas could not be placed."
    """
    histogram = Counter(reasons.values())
    parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
    head = f"{available}/{total} nodes are available"
    if parts:
        head += ": " + ", ".join(parts)
    return f"{head}. {unplaced}/{replicas} replicas could not be placed (at most one per node)."
