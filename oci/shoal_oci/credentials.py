"""imagePullSecrets (`.dockerconfigjson` / legacy `.dockercfg` contents) to per-registry basic credentials."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .errors import Unauthorized
from .reference import DOCKER_HUB_ALIASES, DOCKER_HUB_API

DockerConfig = Mapping[str, Any]


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic_token(self) -> str:
        """base64(user:password), the value after `Basic ` and what oras-py's auth backends hold."""
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def normalize_host(key: str) -> str:
    """`https://index.docker.io/v1/`, `docker.io` and `host:port` all become the host the API lives on."""
    key = key.strip()
    host = urlsplit(key).netloc if "://" in key else key.split("/", 1)[0]
    host = host.lower()
    if host in DOCKER_HUB_ALIASES:
        return DOCKER_HUB_API
    return host


def _loopback_aliases(host: str) -> set[str]:
    """localhost and 127.0.0.1 name the same registry; a secret written for one serves the other."""
    out = {host}
    for a, b in (("localhost", "127.0.0.1"), ("127.0.0.1", "localhost")):
        if host == a or host.startswith(a + ":"):
            out.add(b + host[len(a) :])
    return out


def _entry_credentials(host: str, entry: Any) -> Credentials:
    if not isinstance(entry, Mapping):
        raise Unauthorized(f"imagePullSecret entry for {host} is not an object")
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username:
        return Credentials(username, password)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as err:
            raise Unauthorized(f"imagePullSecret for {host}: `auth` is not base64 of user:password") from err
        user, sep, pw = decoded.partition(":")
        if not sep or not user:
            raise Unauthorized(f"imagePullSecret for {host}: `auth` is not base64 of user:password")
        return Credentials(user, pw)
    raise Unauthorized(f"imagePullSecret for {host} has neither auth nor username/password")


def parse_docker_config(config: DockerConfig) -> dict[str, Credentials]:
    """host -> credentials from one secret's JSON; accepts `{"auths": {...}}` and the legacy flat form."""
    auths = config.get("auths", config)
    if not isinstance(auths, Mapping):
        raise Unauthorized("imagePullSecret has no `auths` object")
    out: dict[str, Credentials] = {}
    for key, entry in auths.items():
        host = normalize_host(str(key))
        out.setdefault(host, _entry_credentials(host, entry))
    return out


def credentials_for(host: str, pull_secrets: Iterable[DockerConfig]) -> Credentials | None:
    """The first secret (in the Pod's order, as the kubelet does) that has an entry for `host`."""
    wanted = _loopback_aliases(normalize_host(host))
    for secret in pull_secrets:
        parsed = parse_docker_config(secret)
        for name in wanted:
            if name in parsed:
                return parsed[name]
    return None
