"""The operator's writes to the Kubernetes API: a thin, typed shell over kubernetes_asyncio.

Reads come from watches (the cache); this module only writes, and a handful of point reads
(Secrets) that are not worth watching cluster-wide.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from shoal_api import GROUP, VERSION, WASMAPP_PLURAL, WASMPLACEMENT_PLURAL

logger = logging.getLogger(__name__)

JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
FIELD_MANAGER = "shoal-operator"
COMPONENT = "shoal-operator"


class Kube:
    """Writes for one API client; every method is safe to retry."""

    def __init__(self, api: client.ApiClient, *, identity: str) -> None:
        self.api = api
        # The generated clients' stubs do not know `_content_type` and want model objects where
        # the API takes plain dicts just as well; this shell is where that looseness stays.
        self.custom: Any = client.CustomObjectsApi(api)
        self.core: Any = client.CoreV1Api(api)
        self.apps: Any = client.AppsV1Api(api)
        self.discovery: Any = client.DiscoveryV1Api(api)
        self.identity = identity

    # --- WasmPlacements -------------------------------------------------------------------------

    async def create_placement(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, WASMPLACEMENT_PLURAL, dict(body)
        )
        return created

    async def replace_placement_spec(self, namespace: str, name: str, spec: Mapping[str, Any]) -> None:
        await self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            WASMPLACEMENT_PLURAL,
            name,
            [{"op": "replace", "path": "/spec", "value": dict(spec)}],
            _content_type=JSON_PATCH,
        )

    async def delete_placement(self, namespace: str, name: str) -> None:
        try:
            await self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, WASMPLACEMENT_PLURAL, name
            )
        except ApiException as e:
            if e.status != 404:
                raise

    # --- WasmApp status -------------------------------------------------------------------------

    async def write_app_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> str | None:
        """Replace the status; returns the app's new resourceVersion (None if it is gone)."""
        try:
            response = await self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                WASMAPP_PLURAL,
                name,
                [{"op": "add", "path": "/status", "value": dict(status)}],
                _content_type=JSON_PATCH,
                _preload_content=False,
            )
        except ApiException as e:
            if e.status != 404:  # deleted meanwhile: nothing to report on
                raise
            return None
        try:
            body = await response.read()
            if response.status == 404:
                return None
            if not 200 <= response.status <= 299:
                raise api_exception(response, body)
        finally:
            response.release()
        version: str | None = json.loads(body).get("metadata", {}).get("resourceVersion")
        return version

    # --- Events -----------------------------------------------------------------------------------

    async def event(
        self, obj: Mapping[str, Any], *, type_: str, reason: str, message: str, count: int = 1
    ) -> None:
        """A core/v1 Event on `obj` (apiVersion, kind and metadata name, namespace, uid suffice),
        which `kubectl describe` shows; `count` for the same Event seen several times. Failures are
        logged, never raised: an event is never worth failing a reconcile for."""
        meta = obj["metadata"]
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:12]}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.identity,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": count,
        }
        try:
            await send_unparsed(self.core.create_namespaced_event, meta["namespace"], body)
        except ApiException as e:
            logger.warning(
                "could not post event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], e.reason
            )

    # --- Secrets and dependency objects -----------------------------------------------------------

    async def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        try:
            secret = await self.core.read_namespaced_secret(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    async def config_map_exists(self, namespace: str, name: str) -> bool:
        try:
            await self.core.read_namespaced_config_map(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    async def read_pull_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        data = await self.read_secret(namespace, name)
        if data is None or ".dockerconfigjson" not in data:
            return None
        parsed: dict[str, Any] = json.loads(data[".dockerconfigjson"])
        return parsed

    async def create_if_absent(self, body: Mapping[str, Any]) -> bool:
        """Create a core or apps object unless it exists; True when created."""
        kind, namespace = body["kind"], body["metadata"]["namespace"]
        create = {
            "StatefulSet": self.apps.create_namespaced_stateful_set,
            "Service": self.core.create_namespaced_service,
            "Secret": self.core.create_namespaced_secret,
            "PersistentVolumeClaim": self.core.create_namespaced_persistent_volume_claim,
        }[kind]
        try:
            await create(namespace, dict(body))
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        return True

    async def apply(self, body: Mapping[str, Any]) -> None:
        """Server-side apply of a Service or EndpointSlice we own (field manager shoal-operator)."""
        kind, meta = body["kind"], body["metadata"]
        patch = {
            "Service": self.core.patch_namespaced_service,
            "EndpointSlice": self.discovery.patch_namespaced_endpoint_slice,
        }[kind]
        await send_unparsed(
            patch,
            meta["name"],
            meta["namespace"],
            dict(body),
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY_PATCH,
        )

    async def create_or_apply(self, body: Mapping[str, Any]) -> None:
        """A Service or EndpointSlice we believe does not exist yet: a plain create costs the
        apiserver less than an apply (no merge with a live object), and one app in a thousand
        created at once is where that counts. If it does exist after all, apply. Later applies by
        the same manager own the same fields; none we write is ever dropped other than inside an
        atomic list (a slice's endpoints), so the create's Update entry never keeps a stale field."""
        kind, meta = body["kind"], body["metadata"]
        create = {
            "Service": self.core.create_namespaced_service,
            "EndpointSlice": self.discovery.create_namespaced_endpoint_slice,
        }[kind]
        try:
            await send_unparsed(create, meta["namespace"], dict(body), field_manager=FIELD_MANAGER)
        except ApiException as e:
            if e.status != 409:
                raise
            await self.apply(body)

    async def prune_endpoint_slices(self, namespace: str, service: str, *, keep: set[str]) -> None:
        """Delete our slices of `service` that are no longer wanted (an agent port went away)."""
        listing = await self.discovery.list_namespaced_endpoint_slice(
            namespace,
            label_selector=f"kubernetes.io/service-name={service},endpointslice.kubernetes.io/managed-by=operator.shoal.dev",
        )
        for item in listing.items:
            if item.metadata.name not in keep:
                await self.delete_endpoint_slice(namespace, item.metadata.name)

    async def delete_endpoint_slice(self, namespace: str, name: str) -> None:
        try:
            await self.discovery.delete_namespaced_endpoint_slice(name, namespace)
        except ApiException as e:
            if e.status != 404:
                raise


def look_up_proxy_once(api: client.ApiClient, host: str | None) -> None:
    """kubernetes_asyncio's session trusts the environment, so aiohttp looks for an HTTPS_PROXY that
    applies on every request, in a thread: about 1 ms of CPU per request, half of what a write costs
    the operator when a thousand apps arrive. The environment does not change while we run: when no
    proxy applies to the apiserver, stop looking (one that does apply keeps being honoured)."""
    url = urllib.parse.urlsplit(host or "")
    if url.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(url.hostname or ""):
        return
    session = api.rest_client.pool_manager
    if hasattr(session, "_trust_env"):  # aiohttp offers no setter; absent, nothing changes
        session._trust_env = False


async def send_unparsed(call: Any, *args: Any, **kwargs: Any) -> None:
    """Make an API call whose answer we do not need, without decoding it into client models (costly
    at scale). The generated client only checks the status when it decodes, so check it here."""
    response = await call(*args, _preload_content=False, **kwargs)
    try:
        if not 200 <= response.status <= 299:
            raise api_exception(response, await response.read())
    finally:
        response.release()


def api_exception(response: Any, body: bytes) -> ApiException:
    error = ApiException(status=response.status, reason=response.reason)
    error.body = body
    error.headers = response.headers
    return error


def api_message(error: ApiException) -> str:
    """The apiserver's own explanation (a Status body), which says far more than the HTTP reason."""
    try:
        return str(json.loads(error.body or b"{}").get("message", ""))
    except (TypeError, ValueError):
        return str(error.body or "")[:500]
