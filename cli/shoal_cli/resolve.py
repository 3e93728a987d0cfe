"""Resolve a tag to the manifest digest a registry serves for it: one attempt, no retries (a CLI should
fail fast and say why, where the agent would keep retrying)."""

from __future__ import annotations

import asyncio

from shoal_cli.errors import CliError
from shoal_oci import InvalidReference, OciError, RegistryUnavailable, Resolver, RetryPolicy


def resolve(ref: str, *, plain_http: bool | None = None, timeout: float = 15.0) -> str:
    """The digest `ref` names now (no network if it already carries one)."""
    resolver = Resolver(retry=RetryPolicy(attempts=1), request_timeout=timeout)
    if plain_http is not None:  # else loopback registries (and SHOAL_INSECURE_REGISTRIES) use plain http
        resolver.plain_http = resolver.plain_http_loopback = plain_http
        resolver.insecure_registries = ()
    try:
        return asyncio.run(resolver.resolve(ref))
    except InvalidReference as e:
        raise CliError(f"invalid reference {ref!r}: {e}") from None
    except RegistryUnavailable as e:
        raise CliError(f"registry unreachable for {ref}: {e}") from None
    except OciError as e:
        raise CliError(f"cannot resolve {ref}: {e}") from None
