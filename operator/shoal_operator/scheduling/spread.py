"""Topology spread: counting replicas per domain and keeping max skew within bounds.

Unlike kube-scheduler, which places pods one at a time and may paint itself into a corner, the
scheduler knows how many replicas are still to place, so before each pick it checks that the
remaining replicas can still be placed with skew <= maxSkew (`can_complete`). When even the start
is hopeless, it falls back to water-filling (least-populated domain first), which minimises skew.
"""

from __future__ import annotations

from collections.abc import Mapping

SPREAD_WEIGHT = 2.0


def skew(counts: Mapping[str, int]) -> int:
    """max - min replicas over domains (0 with no domains)."""
    if not counts:
        return 0
    return max(counts.values()) - min(counts.values())


def can_complete(
    *, counts: Mapping[str, int], room: Mapping[str, int], remaining: int, max_skew: int
) -> bool:
    """Can `remaining` more replicas go into domains (at most room[d] more in d) keeping skew <= max_skew?

    A final assignment y exists iff for some floor m every domain fits in [max(x, m), min(x+room, m+skew)]
    and the target total lies between the sums of those bounds.
    """
    if not counts:
        return remaining == 0
    target = sum(counts.values()) + remaining
    lowest_m = max(0, max(counts.values()) - max_skew)
    highest_m = min(min(counts[d] + room.get(d, 0) for d in counts), target // len(counts))
    for m in range(lowest_m, highest_m + 1):
        low = high = 0
        for d, x in counts.items():
            lo = x if x > m else m
            hi = min(x + room.get(d, 0), m + max_skew)
            if hi < lo:
                break
            low += lo
            high += hi
        else:
            if low <= target <= high:
                return True
    return False


def spread_score(count: int, min_count: int, max_skew: int) -> float:
    """100 in the least-populated domain, falling linearly to 0 at the skew limit."""
    over = count - min_count
    return max(0.0, 100.0 * (1 - over / (max_skew + 1)))
