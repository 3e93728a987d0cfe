"""Resolve a tag to the manifest digest a registry serves for it: one attempt, no retries (a CLI should
fail fast and say why, where the agent would keep retrying)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from shoal_cli.errors import CliError
from shoal_oci import InvalidReference, OciError, RegistryUnavailable, Resolver, RetryPolicy

T = TypeVar("T")


def _resolver(plain_http: bool | None, timeout: float) -> Resolver:
    resolver = Resolver(retry=RetryPolicy(attempts=1), request_timeout=timeout)
    if plain_http is not None:  # else loopback registries (and SHOAL_INSECURE_REGISTRIES) use plain http
        resolver.plain_http = resolver.plain_http_loopback = plain_http
        resolver.insecure_registries = ()
    return resolver


def resolve(ref: str, *, plain_http: bool | None = None, timeout: float = 15.0) -> str:
    """The digest `ref` names now (no network if it already carries one)."""
    return _ask(ref, lambda r: r.resolve(ref), plain_http, timeout)


def component_exports(ref: str, *, plain_http: bool | None = None, timeout: float = 15.0) -> list[str] | None:
    """The exports the artifact's CNCF Wasm config lists for its component; None for a core module
    or another packaging (nothing says what it exports)."""
    config = _ask(ref, lambda r: r.wasm_config(ref), plain_http, timeout)
    component = (config or {}).get("component")
    exports = component.get("exports") if isinstance(component, dict) else None
    return [str(e) for e in exports] if isinstance(exports, list) else None


def _ask(
    ref: str, question: Callable[[Resolver], Coroutine[Any, Any, T]], plain_http: bool | None, timeout: float
) -> T:
    resolver = _resolver(plain_http, timeout)
    try:
        return asyncio.run(question(resolver))
    except InvalidReference as e:
        raise CliError(f"invalid reference {ref!r}: {e}") from None
    except RegistryUnavailable as e:
        raise CliError(f"registry unreachable for {ref}: {e}") from None
    except OciError as e:
        raise CliError(f"cannot resolve {ref}: {e}") from None
