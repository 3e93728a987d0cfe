"""Stage 4 of a batch: publish an HTTP app's `<app>` Service and EndpointSlices, pointing at the
agents that host its live placements (ready only where the agent serves).

Only what changed since the last write is written: when only readiness moves, the slice is
rewritten and the Service is not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from shoal_api import WasmApp, WasmPlacement
from shoal_operator import adapt, endpoints
from shoal_operator.cache import ClusterCache
from shoal_operator.kube import Kube
from shoal_operator.memo import Memos


@dataclass
class Publish:
    cache: ClusterCache
    kube: Kube
    memos: Memos
    existing_at_start: frozenset[str] = frozenset()
    """Apps that existed when this replica started (from the warm-up listing): only their slices
    may have been written by an earlier leader and need a listing to prune."""

    async def __call__(
        self, app: WasmApp, placements: list[WasmPlacement], *, serving: frozenset[str]
    ) -> None:
        ns, name = app.metadata.namespace or "", app.metadata.name or ""
        members = []
        for p in placements:
            agent = self.cache.agents.get(p.spec.node_name)
            if p.metadata.deletion_timestamp is not None or agent is None or agent.endpoint is None:
                continue
            ready = adapt.is_ready(p) and p.spec.node_name in serving
            members.append(
                endpoints.AgentEndpoint(p.spec.node_name, agent.endpoint[0], agent.endpoint[1], ready)
            )
        desired = [endpoints.render_service(app), *endpoints.render_slices(app, members)]
        memo = self.memos[app.key]
        written = memo.published
        rendered = {f"{b['kind']}/{b['metadata']['name']}": json.dumps(b, sort_keys=True) for b in desired}
        if rendered == written:
            return
        known = memo.published_slices
        if known is None and app.key not in self.existing_at_start:
            known = set()  # a new app: no earlier run can have published slices for it
        for body in desired:
            key = f"{body['kind']}/{body['metadata']['name']}"
            if written.get(key) == rendered[key]:
                continue
            if known is not None and key not in written:
                await self.kube.create_or_apply(body)  # nobody can have written it: create
            else:
                await self.kube.apply(body)
        wanted = endpoints.slice_names(desired[1:])
        if known is None:  # first time since start: whatever an earlier run left behind
            await self.kube.prune_endpoint_slices(ns, name, keep=wanted)
        else:
            for stale in known - wanted:
                await self.kube.delete_endpoint_slice(ns, stale)
        memo.published = rendered
        memo.published_slices = wanted
