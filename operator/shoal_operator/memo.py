"""What the operator remembers about each app between batches, in one place.

Every stage keeps its per-app state in the app's `AppMemo`, so forgetting a deleted app is one `pop`
(`Memos.forget`), and a new field cannot be forgotten there by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shoal_api.wasmplacement import DependencyEndpoint
from shoal_operator.scheduling import AppDecision


@dataclass(slots=True)
class Prepared:
    """What an app needs before it can be scheduled, worked out once per generation (prepare.py)."""

    generation: int
    digest: str | None = None
    endpoints: list[DependencyEndpoint] = field(default_factory=list)
    problem: tuple[str, str] | None = None
    """(reason, message) when the spec cannot be acted on."""
    stale: bool = False
    """The digest is the one the placements run, kept because the registry could not be asked."""


@dataclass(frozen=True, slots=True)
class Decided:
    """An app's last scheduling decision and what it was made from (decide.py)."""

    generation: int
    epoch: int
    """The cache's topology epoch at the time: a later epoch means nodes or agents changed."""
    decision: AppDecision
    until: datetime | None = None
    """When one of its tolerationSeconds runs out: the decision is not reused from then on."""


@dataclass(slots=True)
class AppMemo:
    prepared: Prepared | None = None
    seen: tuple[int, datetime] | None = None
    """A generation seen in a watch event and when, until it is fully scheduled (latency metric)."""
    decided: Decided | None = None
    dependency_wait_since: datetime | None = None
    """When the app started waiting for its dependency pods to be bound."""
    # The last message of each kind of Warning posted, so a repeat is not posted again.
    scheduling_message: str | None = None
    problem_message: str | None = None
    stale_message: str | None = None
    published: dict[str, str] = field(default_factory=dict)
    """kind/name -> the Service or EndpointSlice last written (publish.py), so unchanged ones (the
    Service, whenever only readiness changes) are not rewritten."""
    published_slices: set[str] | None = None
    """Names of the EndpointSlices written since start; None: not known (list and prune first)."""


class Memos:
    """App key -> its memo, made on first use."""

    def __init__(self) -> None:
        self._by_app: dict[str, AppMemo] = {}

    def __getitem__(self, key: str) -> AppMemo:
        memo = self._by_app.get(key)
        if memo is None:
            memo = self._by_app[key] = AppMemo()
        return memo

    def __contains__(self, key: str) -> bool:
        return key in self._by_app

    def __len__(self) -> int:
        return len(self._by_app)

    def forget(self, key: str) -> None:
        self._by_app.pop(key, None)
