"""Which agents may hold placements (a live Lease) and which of them serve (their `/livez` link).

Checked on every tick and before each batch, since a Lease expires and a link drops with no watch
event to say so. The two sets differ on purpose: an agent restarting within its Lease keeps its
placements (no new decision) while its addresses leave the EndpointSlices until it is ready again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from shoal_operator.cache import ClusterCache
from shoal_operator.liveness import AgentLinks

logger = logging.getLogger(__name__)


@dataclass
class AgentView:
    cache: ClusterCache
    links: AgentLinks | None = None
    """The agents' `/livez` streams (liveness.py); None: Leases alone decide readiness."""
    serving: frozenset[str] = frozenset()
    """Fresh agents whose link is not down or starting: whose placements count as ready."""

    @property
    def fresh(self) -> frozenset[str]:
        """Agents with a live Lease: where placements may stay."""
        return self.cache.live_agents

    def check(self, now: datetime) -> frozenset[str]:
        """Bring both sets up to `now`; returns the nodes whose agent changed in either."""
        before = self.cache.live_agents
        changed = self.cache.refresh_agents(now)
        if lost := before - self.cache.live_agents:
            logger.info("agent heartbeat expired on %s: rescheduling their placements", sorted(lost))
        withdrawn = frozenset[str]()
        if self.links is not None:
            self.links.sync(self.cache.link_targets())
            withdrawn = self.links.withdrawn()
        serving = self.fresh - withdrawn
        if serving != self.serving:
            # Readiness only: no new scheduling decision (the topology epoch stays), so an agent
            # restarting within its Lease keeps its placements and serves them from its caches.
            changed |= serving ^ self.serving
            if newly := (self.serving - serving) & withdrawn:
                logger.info("agent link down or starting on %s: withdrawing its addresses", sorted(newly))
            self.serving = serving
        return changed
