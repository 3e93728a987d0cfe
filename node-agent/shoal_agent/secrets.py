"""Resolve a placement's references with the agent's own RBAC: env values and imagePullSecrets.

The operator never copies secret values into a WasmPlacement; the agent reads the Secret/ConfigMap in
the placement's namespace when it loads the app. A missing object or key is a `MissingReference`
whose message names it, which becomes the placement's Failed message.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from shoal_api.meta import KeySelector, LocalObjectReference
from shoal_api.wasmapp import EnvVar

DOCKER_CONFIG_JSON = ".dockerconfigjson"
DOCKER_CFG = ".dockercfg"


class MissingReference(Exception):
    """A Secret, ConfigMap or key that a placement refers to does not exist (yet)."""


class SecretReader:
    def __init__(self, api: client.ApiClient) -> None:
        self._core: Any = client.CoreV1Api(api)

    async def _secret_data(self, namespace: str, name: str, what: str) -> dict[str, str]:
        try:
            secret = await self._core.read_namespaced_secret(name, namespace)
        except ApiException as e:
            if e.status == 404:
                raise MissingReference(f"{what}: Secret {namespace}/{name} not found") from None
            raise
        return dict(secret.data or {})

    async def read(self, *, namespace: str, selector: KeySelector) -> str:
        """One key of a Secret as text (the capabilities' `PasswordReader`: database passwords)."""
        return await self._secret_key(namespace, selector, "dependency password")

    async def _secret_key(self, namespace: str, ref: KeySelector, what: str) -> str:
        data = await self._secret_data(namespace, ref.name, what)
        if ref.key not in data:
            raise MissingReference(f"{what}: Secret {namespace}/{ref.name} has no key {ref.key!r}")
        try:
            return base64.b64decode(data[ref.key]).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise MissingReference(
                f"{what}: Secret {namespace}/{ref.name} key {ref.key!r} is not UTF-8 text"
            ) from None

    async def config_map(
        self, namespace: str, name: str, what: str
    ) -> tuple[dict[str, str], dict[str, bytes]]:
        """A ConfigMap's data and (decoded) binaryData."""
        try:
            cm = await self._core.read_namespaced_config_map(name, namespace)
        except ApiException as e:
            if e.status == 404:
                raise MissingReference(f"{what}: ConfigMap {namespace}/{name} not found") from None
            raise
        try:
            binary = {k: base64.b64decode(v) for k, v in (cm.binary_data or {}).items()}
        except binascii.Error:
            raise MissingReference(f"{what}: ConfigMap {namespace}/{name} has invalid binaryData") from None
        return dict(cm.data or {}), binary

    async def _config_map_key(self, namespace: str, ref: KeySelector, what: str) -> str:
        data, _binary = await self.config_map(namespace, ref.name, what)
        if ref.key not in data:
            raise MissingReference(f"{what}: ConfigMap {namespace}/{ref.name} has no key {ref.key!r}")
        return data[ref.key]

    async def resolve_env(self, namespace: str, env: Sequence[EnvVar]) -> dict[str, str]:
        """name -> value for every env entry, reading each referenced object."""
        out: dict[str, str] = {}
        for var in env:
            what = f"env {var.name}"
            if var.value is not None:
                out[var.name] = var.value
            elif var.value_from is not None and var.value_from.secret_key_ref is not None:
                out[var.name] = await self._secret_key(namespace, var.value_from.secret_key_ref, what)
            elif var.value_from is not None and var.value_from.config_map_key_ref is not None:
                out[var.name] = await self._config_map_key(namespace, var.value_from.config_map_key_ref, what)
        return out

    async def pull_secrets(
        self, namespace: str, refs: Sequence[LocalObjectReference]
    ) -> list[dict[str, Any]]:
        """The docker config JSON of each imagePullSecret, in order (the puller picks per registry)."""
        configs: list[dict[str, Any]] = []
        for ref in refs:
            what = f"imagePullSecret {ref.name}"
            data = await self._secret_data(namespace, ref.name, what)
            raw = data.get(DOCKER_CONFIG_JSON) or data.get(DOCKER_CFG)
            if raw is None:
                raise MissingReference(
                    f"{what}: Secret {namespace}/{ref.name} has neither {DOCKER_CONFIG_JSON} nor {DOCKER_CFG}"
                )
            try:
                doc = json.loads(base64.b64decode(raw))
            except (binascii.Error, ValueError):
                raise MissingReference(
                    f"{what}: Secret {namespace}/{ref.name} is not docker config JSON"
                ) from None
            if isinstance(doc, dict):
                configs.append(doc)
        return configs
