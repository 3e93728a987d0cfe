"""Image references (`host[:port]/repo[:tag][@sha256:...]`) parsed with oras-py's own grammar."""

from __future__ import annotations

from dataclasses import dataclass

import oras.container

from . import digests
from .errors import InvalidReference

DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DOCKER_HUB_API = "registry-1.docker.io"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


@dataclass(frozen=True)
class Reference:
    """A parsed reference; `host` is where the API lives (Docker Hub names are rewritten to its API host)."""

    host: str
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, ref: str) -> Reference:
        try:
            c = oras.container.Container(ref)
        except ValueError as err:
            raise InvalidReference(str(err)) from err
        repository = f"{c.namespace}/{c.repository}" if c.namespace else str(c.repository)
        host = str(c.registry)
        if host in DOCKER_HUB_ALIASES:
            host = DOCKER_HUB_API
            if "/" not in repository:
                repository = f"library/{repository}"
        digest = digests.validate(str(c.digest)) if c.digest else None
        # oras-py fills in "latest" even when a digest is given; a digest alone pins the content.
        explicit_tag = ":" in ref.rsplit("/", 1)[-1].split("@", 1)[0]
        tag = str(c.tag) if explicit_tag or digest is None else None
        return cls(host=host, repository=repository, tag=tag, digest=digest)

    @property
    def hostname(self) -> str:
        """The host without its port."""
        if self.host.startswith("["):
            return self.host.split("]", 1)[0] + "]"
        return self.host.rsplit(":", 1)[0] if ":" in self.host else self.host

    @property
    def is_loopback(self) -> bool:
        return self.hostname in LOOPBACK_HOSTS

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.host, self.repository, None, digests.validate(digest))

    def __str__(self) -> str:
        out = f"{self.host}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def oras_name(self) -> str:
        """The form oras-py's Container wants for API URLs (host explicit, digest preferred)."""
        return f"{self.host}/{self.repository}@{self.digest}" if self.digest else f"{self}"
