"""Seed the cache with one LIST of everything before the first decision.

kopf delivers initial listings as events, but in no particular order across resources; deciding
before the placements and heartbeats are known would move replicas that are fine where they are.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from shoal_api import GROUP, VERSION, WASMAPP_PLURAL, WASMNODE_PLURAL, WASMPLACEMENT_PLURAL
from shoal_api.backoff import Backoff, Retry
from shoal_operator.cache import ClusterCache

logger = logging.getLogger(__name__)


async def warm_cache_with_retries(
    api: client.ApiClient, cache: ClusterCache, *, agent_namespace: str, max_delay: float = 30.0
) -> None:
    """Retry until the API answers every list: right after a CRD is installed the apiserver answers
    429 "storage is (re)initializing", and a missing CRD is a 404 until the chart installs it."""
    retry = Retry(Backoff(first=0.5, cap=max_delay))
    while True:
        try:
            await warm_cache(api, cache, agent_namespace=agent_namespace)
            return
        except ApiException as e:
            if e.status not in (404, 429, 500, 502, 503, 504):
                raise
            hint = " (are the shoal.dev CRDs installed?)" if e.status == 404 else ""
            logger.warning(
                "listing the cluster failed: %s %s%s; retrying in %.1fs",
                e.status,
                e.reason,
                hint,
                retry.upcoming,
            )
        except (aiohttp.ClientError, TimeoutError) as e:
            logger.warning("cannot reach the apiserver: %s; retrying in %.1fs", e, retry.upcoming)
        await retry.failed()


async def warm_cache(api: client.ApiClient, cache: ClusterCache, *, agent_namespace: str) -> None:
    core, custom, coord = client.CoreV1Api(api), client.CustomObjectsApi(api), client.CoordinationV1Api(api)

    def items(listing: Any) -> list[dict[str, Any]]:
        if isinstance(listing, dict):
            return list(listing.get("items") or [])
        return [api.sanitize_for_serialization(i) for i in listing.items]

    for body in items(await core.list_node()):
        cache.apply_node("ADDED", body)
    for body in items(await core.list_pod_for_all_namespaces()):
        cache.apply_pod("ADDED", body)
    for body in items(await coord.list_namespaced_lease(agent_namespace)):
        cache.apply_lease("ADDED", body)
    for plural, apply in ((WASMNODE_PLURAL, cache.apply_wasmnode),):
        for body in items(await custom.list_cluster_custom_object(GROUP, VERSION, plural)):
            apply("ADDED", body)
    for body in items(await custom.list_cluster_custom_object(GROUP, VERSION, WASMPLACEMENT_PLURAL)):
        cache.apply_placement("ADDED", body)
    for body in items(await custom.list_cluster_custom_object(GROUP, VERSION, WASMAPP_PLURAL)):
        cache.apply_app("ADDED", body)
