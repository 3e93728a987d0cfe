"""Resolve a tag to the manifest digest a registry serves for it: one request, no retries (a CLI should
fail fast and say why, where the agent would keep retrying)."""

from __future__ import annotations

from shoal_agent.oci import InvalidReference, OciError, RegistryUnavailable
from shoal_agent.oci.digests import of_bytes
from shoal_agent.oci.reference import Reference
from shoal_agent.oci.registry_client import RegistryClient
from shoal_cli.errors import CliError

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


def resolve(ref: str, *, plain_http: bool | None = None, timeout: float = 15.0) -> str:
    """The digest `ref` names now (no network if it already carries one)."""
    try:
        parsed = Reference.parse(ref)
    except InvalidReference as e:
        raise CliError(f"invalid reference {ref!r}: {e}") from None
    if parsed.digest:
        return parsed.digest
    client = RegistryClient(
        parsed, plain_http=parsed.is_loopback if plain_http is None else plain_http, timeout=timeout
    )
    tag = parsed.tag or "latest"
    try:
        digest = client.head_manifest(tag)
        if digest is None:  # the registry did not say: hash the manifest bytes ourselves
            body, _ = client.get_manifest(tag, MAX_MANIFEST_BYTES)
            digest = of_bytes(body)
    except RegistryUnavailable as e:
        raise CliError(f"registry unreachable for {ref}: {e}") from None
    except OciError as e:
        raise CliError(f"cannot resolve {ref}: {e}") from None
    return digest
