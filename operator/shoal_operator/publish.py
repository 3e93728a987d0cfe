"""Stage 4 of a batch: publish an HTTP app's `<app>` Service and EndpointSlices, pointing at the
agents that host its live placements (ready only where the agent serves).

Only what changed since the last write is written: when only readiness moves, the slice is
rewritten and the Service is not.

The writes leave the batch (`submit`) and go out from background senders (`run`), the way
kube-scheduler binds a pod and lets other controllers write what follows from it. Why: a ClusterIP
Service is by far the dearest write of an app (kube-apiserver allocates its address by creating an
IPAddress object, one at a time: 2.7 s a Service against 0.4 s a placement, measured over 1,000
new apps under load), and inside the batch it held a write slot that the next app's placements and
status waited for. An app's newest wanted state replaces one not yet sent; one app is never written
by two senders at once; a failed write hands the app back to the reconciler (`on_failure`), whose
retry renders it again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from shoal_api import WasmApp, WasmPlacement
from shoal_operator import adapt, endpoints
from shoal_operator.cache import ClusterCache
from shoal_operator.kube import Kube, api_message
from shoal_operator.memo import Memos

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Wanted:
    """An app's Service and slices as they should be: bodies, and each one's JSON by kind/name."""

    namespace: str
    name: str
    bodies: list[dict[str, Any]]
    rendered: dict[str, str]


@dataclass
class Publish:
    cache: ClusterCache
    kube: Kube
    memos: Memos
    existing_at_start: frozenset[str] = frozenset()
    """Apps that existed when this replica started (from the warm-up listing): only their slices
    may have been written by an earlier leader and need a listing to prune."""
    concurrency: int = 16
    """Apps written at once by the background senders."""
    on_failure: Callable[[str], None] = lambda key: None
    """An app whose write failed (the reconciler retries it with its backoff)."""
    _pending: dict[str, _Wanted] = field(default_factory=dict)
    """Insertion-ordered: the oldest wanted state first."""
    _busy: set[str] = field(default_factory=set)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def submit(self, app: WasmApp, placements: list[WasmPlacement], *, serving: frozenset[str]) -> None:
        """Queue what the app's Service and slices should be, unless that is what was written."""
        wanted = self._render(app, placements, serving)
        if wanted.rendered == self.memos[app.key].published:
            self._pending.pop(app.key, None)  # back to what is written: an older wish is moot
            return
        self._pending[app.key] = wanted
        self._wake.set()

    async def __call__(
        self, app: WasmApp, placements: list[WasmPlacement], *, serving: frozenset[str]
    ) -> None:
        """Write now, without the queue."""
        await self._write(app.key, self._render(app, placements, serving))

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        """Send queued writes forever, `concurrency` apps at a time."""
        await asyncio.gather(*(self._sender() for _ in range(self.concurrency)))

    async def drain(self) -> None:
        """Send everything queued now and wait for it (tests; a sender must not run meanwhile)."""
        while self._pending:
            key, wanted = next(iter(self._pending.items()))
            del self._pending[key]
            await self._send(key, wanted)

    async def _sender(self) -> None:
        while True:
            key = next((k for k in self._pending if k not in self._busy), None)
            if key is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            wanted = self._pending.pop(key)
            self._busy.add(key)
            try:
                await self._send(key, wanted)
            finally:
                self._busy.discard(key)
                if self._pending:
                    self._wake.set()  # an app skipped while it was busy here

    async def _send(self, key: str, wanted: _Wanted) -> None:
        try:
            await self._write(key, wanted)
        except ApiException as e:
            logger.warning(
                "publishing %s failed: %s %s: %s; retrying", key, e.status, e.reason, api_message(e)
            )
            self.on_failure(key)
        except Exception:  # keep sending: a bug on one app must not stop the others' Services
            logger.exception("publishing %s failed; retrying", key)
            self.on_failure(key)

    def _render(self, app: WasmApp, placements: list[WasmPlacement], serving: frozenset[str]) -> _Wanted:
        members = []
        for p in placements:
            agent = self.cache.agents.get(p.spec.node_name)
            if p.metadata.deletion_timestamp is not None or agent is None or agent.endpoint is None:
                continue
            ready = adapt.is_ready(p) and p.spec.node_name in serving
            members.append(
                endpoints.AgentEndpoint(p.spec.node_name, agent.endpoint[0], agent.endpoint[1], ready)
            )
        bodies = [endpoints.render_service(app), *endpoints.render_slices(app, members)]
        rendered = {f"{b['kind']}/{b['metadata']['name']}": json.dumps(b, sort_keys=True) for b in bodies}
        return _Wanted(app.metadata.namespace or "", app.metadata.name or "", bodies, rendered)

    async def _write(self, key: str, wanted: _Wanted) -> None:
        memo = self.memos[key]
        written = memo.published
        if wanted.rendered == written:
            return
        known = memo.published_slices
        if known is None and key not in self.existing_at_start:
            known = set()  # a new app: no earlier run can have published slices for it
        for body in wanted.bodies:
            name = f"{body['kind']}/{body['metadata']['name']}"
            if written.get(name) == wanted.rendered[name]:
                continue
            if known is not None and name not in written:
                await self.kube.create_or_apply(body)  # nobody can have written it: create
            else:
                await self.kube.apply(body)
        keep = endpoints.slice_names(wanted.bodies[1:])
        if known is None:  # first time since start: whatever an earlier run left behind
            await self.kube.prune_endpoint_slices(wanted.namespace, wanted.name, keep=keep)
        else:
            for stale in known - keep:
                await self.kube.delete_endpoint_slice(wanted.namespace, stale)
        if key in self.memos and self.memos[key] is memo:  # not forgotten (deleted) meanwhile
            memo.published = wanted.rendered
            memo.published_slices = keep
