"""The example guests as users would ship them: built by hack/examples/build.sh, pushed to the registry
in the three OCI formats, and deployed from the YAML under examples/ with ${REGISTRY} substituted."""

from __future__ import annotations

import string
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .controlplane import ControlPlane
from .tools import HACK_DIR, cache_dir

REPO = HACK_DIR.parent
EXAMPLES_DIR = REPO / "examples"
BUILD = HACK_DIR / "examples" / "build.sh"
BUILD_COMPONENTS = HACK_DIR / "examples" / "build-components.sh"
API = "/apis/shoal.dev/v1alpha1"


@dataclass(frozen=True)
class Guest:
    name: str  # hack/examples/<name>, <out>/<name>.wasm, image <registry>/examples/<name>:v1
    format: str  # shoal_oci.WasmFormat member name
    options: dict[str, Any] = field(default_factory=dict)


HELLOS = (
    Guest("hello-c", "WASM_ARTIFACT"),
    Guest("hello-go", "SPIN"),
    Guest("hello-wat", "DOCKER_IMAGE", {"docker_media_types": True, "as_index": True}),
)
JOB = Guest("job-c", "WASM_ARTIFACT")
WHISKERS = (  # examples/finicky-whiskers.yaml; scoreboard is Go (needs the go toolchain)
    Guest("tally", "WASM_ARTIFACT"),
    Guest("scoreboard", "WASM_ARTIFACT"),
    Guest("leaderboard", "WASM_ARTIFACT"),
)
COMPONENTS = (  # examples/components.yaml; built by build-components.sh
    Guest("hello-c-component", "WASM_ARTIFACT"),
    Guest("spin-counter-py", "SPIN", {"app_name": "spin-counter"}),
)
UNREACHABLE = Guest("unreachable", "WASM_ARTIFACT")  # traps on every call: the error panels' data


def build(out: Path | None = None, *, components: Iterable[Guest] = ()) -> Path:
    """Run build.sh (incremental); returns the folder of .wasm files. With `components`, run
    build-components.sh for those (it runs build.sh first; componentize-py needs network once)."""
    names = [g.name for g in components]
    script = BUILD_COMPONENTS if names else BUILD
    if names and out is None:
        out = cache_dir() / "examples"  # both scripts' default; NAMEs need it spelled out
    argv = [str(script), *([str(out)] if out else []), *names]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} failed:\n{done.stdout}\n{done.stderr}")
    last = done.stdout.strip().splitlines()[-1]  # "done   <out>"
    return Path(last.split(maxsplit=1)[1])


def image(registry: str, guest: Guest) -> str:
    return f"{registry}/examples/{guest.name}:v1"


def push(registry: str, wasm_dir: Path, guests: Iterable[Guest]) -> dict[str, str]:
    """Push each guest that was built; name -> manifest digest."""
    from shoal_oci import WasmFormat, push_wasm

    pushed: dict[str, str] = {}
    for guest in guests:
        wasm = wasm_dir / f"{guest.name}.wasm"
        if wasm.exists():
            pushed[guest.name] = push_wasm(
                image(registry, guest), wasm, WasmFormat[guest.format], **guest.options
            )
    return pushed


def manifests(path: Path, registry: str, *, only: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The YAML documents of `path` with ${REGISTRY} set; `only`: WasmApps by name (Namespaces kept)."""
    text = string.Template(path.read_text()).substitute(REGISTRY=registry)
    docs = [d for d in yaml.safe_load_all(text) if d]
    if only is not None:
        keep = set(only)
        docs = [d for d in docs if d["kind"] != "WasmApp" or d["metadata"]["name"] in keep]
    return docs


def apply(plane: ControlPlane, docs: list[dict[str, Any]]) -> str:
    return plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs, sort_keys=False))


def wasmapp(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = plane.get_json(f"{API}/namespaces/{namespace}/wasmapps/{name}")
    return obj


def placements(plane: ControlPlane, namespace: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = plane.get_json(
        f"{API}/namespaces/{namespace}/wasmplacements?labelSelector=shoal.dev%2Fapp%3D{app}"
    )["items"]
    return items


def wait_ready(plane: ControlPlane, namespace: str, names: Iterable[str], *, timeout: float = 120) -> None:
    """Until each WasmApp has all its replicas ready; raises with their status otherwise."""
    pending = set(names)
    deadline = time.monotonic() + timeout
    while pending:
        for name in sorted(pending):
            obj = wasmapp(plane, namespace, name)
            status = obj.get("status") or {}
            if status.get("readyReplicas", 0) >= obj["spec"].get("replicas", 1):
                pending.discard(name)
        if not pending:
            return
        if time.monotonic() > deadline:
            states = {n: wasmapp(plane, namespace, n).get("status") for n in sorted(pending)}
            raise TimeoutError(f"WasmApps not ready after {timeout:.0f}s: {states}")
        time.sleep(0.5)


def send(urls: Iterable[tuple[str, str | None]], *, times: int, workers: int = 8) -> dict[int, int]:
    """GET each (url, Host header or None) `times` times, concurrently; status code -> count."""
    import concurrent.futures
    import urllib.error
    import urllib.request

    def one(target: tuple[str, str | None]) -> int:
        url, host = target
        req = urllib.request.Request(url, headers={"Host": host} if host else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
                return int(resp.status)
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return 0

    codes: dict[int, int] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for code in pool.map(one, [t for t in urls for _ in range(times)]):
            codes[code] = codes.get(code, 0) + 1
    return codes
