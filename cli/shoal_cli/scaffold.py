"""`shoal scaffold`: a WasmApp manifest for a pushed module, built and validated with the API models, so
what it prints is what the apiserver (and the operator) will accept."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import yaml
from pydantic import ValidationError

from shoal_api import WasmApp
from shoal_api.meta import DNS_LABEL_MAX, DNS_LABEL_PATTERN
from shoal_cli.component import HTTP_EXPORT, RUN_EXPORT, trigger_for
from shoal_cli.errors import CliError

SOURCE_ANNOTATION = "shoal.dev/source-reference"


@dataclass(frozen=True)
class AppOptions:
    name: str
    namespace: str | None = None
    replicas: int = 1
    http_path: str | None = None  # default trigger: http on /<name>
    job: bool = False
    memory: str | None = None
    timeout: str | None = None


def is_job(exports: Sequence[str] | None) -> bool:
    """Whether an app runs as a job when no flag says: as the component's exports (from its CNCF
    config) say. A core module, or an artifact whose config does not say, serves HTTP (WAGI)."""
    if exports is None:
        return False
    kind = trigger_for(exports)
    if kind is None:
        listed = ", ".join(exports) or "nothing"
        raise CliError(
            f"the component exports neither {HTTP_EXPORT}.x nor {RUN_EXPORT}.x (it exports {listed}): "
            "no Shoal trigger runs it"
        )
    return kind == "job"


def build_app(image: str, opts: AppOptions, *, source: str | None = None) -> WasmApp:
    """The WasmApp for `image`; `source` (the tag it was resolved from) is kept as an annotation."""
    # The models leave metadata to the apiserver; the app's name also names its Service, so a DNS label.
    if len(opts.name) > DNS_LABEL_MAX or not re.fullmatch(DNS_LABEL_PATTERN, opts.name):
        raise CliError(f"invalid name {opts.name!r}: use lower-case letters, digits and '-' (at most 63)")
    trigger: dict[str, object] = (
        {"job": {}} if opts.job else {"http": {"path": opts.http_path or f"/{opts.name}"}}
    )
    resources: dict[str, str] = {}
    if opts.memory:
        resources["memory"] = opts.memory
    if opts.timeout:
        resources["timeout"] = opts.timeout
    metadata: dict[str, object] = {"name": opts.name}
    if opts.namespace:
        metadata["namespace"] = opts.namespace
    if source and source != image:
        metadata["annotations"] = {SOURCE_ANNOTATION: source}
    body = {
        "metadata": metadata,
        "spec": {
            "module": {"image": image},
            "replicas": opts.replicas,
            "trigger": trigger,
            **({"resources": resources} if resources else {}),
        },
    }
    try:
        return WasmApp.model_validate(body)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CliError(f"invalid WasmApp: {where}: {first['msg']}") from None


def render(app: WasmApp, *, comment: str = "") -> str:
    """YAML a user can pipe to `kubectl apply -f -` (defaults left out: the CRD fills them in)."""
    body = app.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
    body = {"apiVersion": app.api_version, "kind": app.kind, **body}
    # A required field that equals its default (replicas: 1) would vanish: spell out the essentials.
    body["spec"] = {**body.get("spec", {}), "replicas": app.spec.replicas}
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    return header + yaml.safe_dump(body, sort_keys=False)
