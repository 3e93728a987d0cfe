"""Spin's locked application (the JSON `spin registry push` stores beside the app's Wasm layers) as far
as Shoal runs it: one component behind HTTP triggers (pure logic).

A WasmApp is one component, so a Spin app of several components, one with a non-HTTP trigger (redis,
cron, ...), or one whose component still has component dependencies to compose is refused with
`UnsupportedSpinApp`, naming why. The route of the app's HTTP trigger (`/...`, `/api/...`) is read
but not used for routing: where the app is served is the WasmApp's `trigger.http.path`, as for every
other packaging.

Field names follow Spin's locked app: `components[].id`, `components[].source` (`content_type` and
the content reference flattened into it: `digest`, `inline`, `source`), `components[].dependencies`,
`triggers[].trigger_type` and `triggers[].trigger_config` (`component`, `route`), and, in older
locked apps, the application-wide `metadata.trigger.type`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import NotWasm, UnsupportedSpinApp


@dataclass(frozen=True)
class SpinComponent:
    app: str
    id: str
    digest: str
    """Of the Wasm layer that holds the component."""
    route: str | None
    """The Spin HTTP route that names it (not used: see the module's doc)."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: Any) -> Sequence[Any]:
    return value if isinstance(value, Sequence) and not isinstance(value, str) else ()


def _source_digest(source: Mapping[str, Any]) -> str | None:
    """`source.digest`, as Spin writes it; `source.content.digest`, as Shoal's own builder once did."""
    digest = source.get("digest", _mapping(source.get("content")).get("digest"))
    return digest if isinstance(digest, str) else None


def spin_component(locked: Mapping[str, Any]) -> SpinComponent:
    """The one component of a single-component HTTP Spin app, or why the app is not one."""
    metadata = _mapping(locked.get("metadata"))
    app = str(metadata.get("name") or "unnamed")
    components = [_mapping(c) for c in _sequence(locked.get("components"))]
    if not components:
        raise NotWasm(f"Spin app {app!r} lists no components")
    if len(components) > 1:
        ids = ", ".join(str(c.get("id")) for c in components)
        raise UnsupportedSpinApp(
            f"Spin app {app!r} has {len(components)} components ({ids}); Shoal runs a Spin app of one "
            "component as a WasmApp: push each component as its own app"
        )
    (component,) = components
    triggers = [_mapping(t) for t in _sequence(locked.get("triggers"))]
    kinds = {str(t.get("trigger_type")) for t in triggers}
    app_trigger = _mapping(metadata.get("trigger")).get("type")
    if isinstance(app_trigger, str):
        kinds.add(app_trigger)
    others = sorted(kinds - {"http"})
    if others:
        raise UnsupportedSpinApp(
            f"Spin app {app!r} has a {', '.join(others)} trigger; Shoal runs Spin HTTP apps only "
            "(a WasmApp with trigger.http)"
        )
    cid = str(component.get("id") or "")
    dependencies = sorted(_mapping(component.get("dependencies")))
    if dependencies:
        raise UnsupportedSpinApp(
            f"Spin component {cid!r} has component dependencies ({', '.join(dependencies)}) that are not "
            "composed into it; push it with `spin registry push` composing them (its default)"
        )
    digest = _source_digest(_mapping(component.get("source")))
    if digest is None:
        raise NotWasm(f"Spin component {cid!r} names no Wasm layer (no source digest)")
    routes = [
        _mapping(t.get("trigger_config")).get("route")
        for t in triggers
        if _mapping(t.get("trigger_config")).get("component") == cid
    ]
    route = next((r for r in routes if isinstance(r, str)), None)
    return SpinComponent(app=app, id=cid, digest=digest, route=route)
