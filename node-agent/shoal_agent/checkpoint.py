"""The serving checkpoint: which HTTP app versions this agent serves, kept on its own disk so that a
restarted agent serves them again before it talks to the apiserver (warmstart.py says why and how).

Per mounted app version: its `AppSpec`, its module's digest, the local file it was loaded from (the
OCI cache's blob) and its route. `Serving` rewrites the file (atomic rename) on every mount and
unmount. Never in it: apps with env values from Secrets (no Secret value is written to disk) and apps
with dependencies (their host functions need bindings only the apiserver can give), and apps with
files (their trees are kept only while a placement uses them).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .runtime import AppLimits, AppSpec, LoadedApp
from .triggers.http import DEFAULT_MAX_BODY

log = logging.getLogger(__name__)

FORMAT = 1


@dataclass(frozen=True)
class Entry:
    """One mounted HTTP app version, as the checkpoint keeps it."""

    spec: AppSpec
    digest: str
    source: str
    """The local file the module was loaded from."""
    path: str
    app_env: Mapping[str, str] = field(default_factory=dict)
    max_body_bytes: int = DEFAULT_MAX_BODY

    def to_json(self) -> dict[str, Any]:
        s = self.spec
        return {
            "namespace": s.namespace,
            "name": s.name,
            "env": dict(s.env),
            "args": list(s.args),
            "entrypoint": s.entrypoint,
            "limits": asdict(s.limits),
            "digest": self.digest,
            "source": self.source,
            "path": self.path,
            "appEnv": dict(self.app_env),
            "maxBodyBytes": self.max_body_bytes,
        }

    @staticmethod
    def from_json(obj: Mapping[str, Any]) -> Entry:
        """Raises KeyError, TypeError or ValueError on anything malformed."""
        spec = AppSpec(
            namespace=str(obj["namespace"]),
            name=str(obj["name"]),
            env={str(k): str(v) for k, v in dict(obj["env"]).items()},
            args=tuple(str(a) for a in obj["args"]),
            entrypoint=str(obj["entrypoint"]),
            limits=AppLimits(**dict(obj["limits"])),
        )
        return Entry(
            spec=spec,
            digest=str(obj["digest"]),
            source=str(obj["source"]),
            path=str(obj["path"]),
            app_env={str(k): str(v) for k, v in dict(obj["appEnv"]).items()},
            max_body_bytes=int(obj["maxBodyBytes"]),
        )


def checkpointable(spec: AppSpec, source: Path | None) -> bool:
    """Only apps that need nothing but their module: no dependencies to bind, no Secret values (the
    caller passes no source for those)."""
    return source is not None and not spec.capabilities and not spec.mounts and spec.scratch is None


def encode(entries: Mapping[tuple[str, str], Entry]) -> str:
    return json.dumps({"format": FORMAT, "apps": [e.to_json() for e in entries.values()]}, indent=1)


def decode(text: str) -> tuple[list[Entry], list[str]]:
    """(entries, problems): a malformed entry is skipped, never fatal (the agent then starts cold)."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        return [], [f"not JSON: {e}"]
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("apps"), list):
        return [], [f"not a format-{FORMAT} checkpoint"]
    entries: list[Entry] = []
    problems: list[str] = []
    for i, obj in enumerate(doc["apps"]):
        try:
            entries.append(Entry.from_json(obj))
        except (KeyError, TypeError, ValueError) as e:
            problems.append(f"app {i}: {type(e).__name__}: {e}")
    return entries, problems


class Checkpoint:
    """The file; `Serving` calls `put`/`drop` as routes change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[tuple[str, str], Entry] = {}

    def put(self, entry: Entry) -> None:
        self.entries[entry.spec.key] = entry
        self._write()

    def drop(self, key: tuple[str, str]) -> None:
        if self.entries.pop(key, None) is not None:
            self._write()

    def _write(self) -> None:
        # Small and rare (a route change): written in place of the event loop's other work. The
        # rename makes a crash leave the old or the new file, never half of one.
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(encode(self.entries))
            os.replace(tmp, self.path)
        except OSError as e:  # a full disk costs the next warm start, not this agent's serving
            log.warning("could not write the serving checkpoint %s: %s", self.path, e)

    def read(self) -> list[Entry]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        except OSError as e:
            log.warning("could not read the serving checkpoint %s: %s", self.path, e)
            return []
        entries, problems = decode(text)
        for problem in problems:
            log.warning("serving checkpoint %s: %s", self.path, problem)
        return entries


@dataclass
class WarmApp:
    loaded: LoadedApp
    entry: Entry
