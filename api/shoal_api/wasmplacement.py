"""WasmPlacement: one replica of one app on one node, the contract between operator and agent.

The operator writes the spec with everything already resolved (digest, limits in integers,
dependency endpoints) so the agent never reads the WasmApp. Secret values are never copied in:
env and dependency passwords stay references that the agent resolves with its own RBAC.
"""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar, Literal

from pydantic import Field

from shoal_api.cel import list_map
from shoal_api.constants import WASMPLACEMENT_KIND, WASMPLACEMENT_PLURAL
from shoal_api.meta import (
    DNS_SUBDOMAIN_MAX,
    Condition,
    KeySelector,
    KubeModel,
    KubeObject,
    KubeTime,
    LocalObjectReference,
)
from shoal_api.schedule import MAX_RUNS
from shoal_api.wasmapp import (
    MAX_DEPENDENCIES,
    MAX_ENV,
    Capabilities,
    EnvVar,
    Files,
    PlacementState,
    ScheduledRun,
    Trigger,
    Variable,
)

MAX_JOB_OUTPUT = 4096
"""Bytes of job stdout/stderr tail kept in status: etcd objects must stay small."""


class ResolvedModule(KubeModel):
    """The module pinned to a digest, so every replica runs the same bytes."""

    image: str = Field(min_length=1, max_length=512)
    """The WasmApp's image as declared; the agent pulls repository@digest once digest is set."""
    digest: str = Field(max_length=128, pattern=r"^(sha256:[a-f0-9]{64})?$")
    """sha256:<hex>; empty only while the operator has not resolved the tag yet."""
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, max_length=16, json_schema_extra=list_map("name")
    )
    """The WasmApp's pull Secrets; the agent reads them with its own RBAC to pull the module."""

    @property
    def reference(self) -> str:
        """repository@digest when resolved (tag dropped), else the image as declared."""
        if not self.digest:
            return self.image
        repository = self.image.split("@", 1)[0]
        colon = repository.rfind(":")
        if colon > repository.rfind("/"):  # a tag, not a registry port
            repository = repository[:colon]
        return f"{repository}@{self.digest}"


class Limits(KubeModel):
    """Per-instance limits in integers: the agent does no quantity parsing."""

    memory_bytes: int = Field(ge=0)
    """Linear memory limit of one instance, in bytes (the app's resources.memory)."""
    timeout_ms: int = Field(ge=0)
    """Wall-clock limit of one invocation, in milliseconds (the app's resources.timeout)."""
    max_concurrency: int = Field(ge=1)
    """Concurrent invocations on this replica; more wait briefly, then are refused as busy."""


class Requests(KubeModel):
    """Scheduling requests of this replica; the scheduler sums them per node."""

    cpu_millis: int = Field(default=0, ge=0)
    """CPU reserved on the node, in millicores (the app's resources.requests.cpu)."""
    memory_bytes: int = Field(default=0, ge=0)
    """Memory reserved on the node, in bytes (the app's resources.requests.memory)."""


class ServiceEndpoint(KubeModel):
    """A Service the agent connects to: <name>.<namespace>.svc:<port>."""

    name: str = Field(min_length=1, max_length=63)
    """Service name: the one the operator provisioned, or the dependency's serviceRef."""
    namespace: str = Field(min_length=1, max_length=63)
    """Namespace of the Service; the app's unless a serviceRef names another."""
    port: int = Field(ge=1, le=65535)
    """Service port the agent connects to."""

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}.svc"


class DependencyEndpoint(KubeModel):
    """A resolved dependency: where it is and how to authenticate (by reference)."""

    name: str = Field(min_length=1, max_length=63)
    """The dependency's name in the WasmApp, by which the module's host calls refer to it."""
    kind: Literal["redis", "mysql"]
    """Which host capability the module may import for it: redis, or sql for mysql."""
    service: ServiceEndpoint
    database: str | None = Field(default=None, max_length=64)
    """MySQL only: database name."""
    password_secret: KeySelector | None = None
    """MySQL only: Secret key holding the password (in the placement's namespace)."""
    user: str | None = Field(default=None, max_length=64)
    """MySQL only: user name; defaults to the app name when unset."""


class WasmPlacementSpec(KubeModel):
    """Desired state of one replica, written by the operator."""

    app: str = Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX)
    """Name of the owning WasmApp (same namespace)."""
    node_name: str = Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX)
    """Node chosen by the scheduler; only that node's agent runs the replica, and it never moves."""
    module: ResolvedModule
    limits: Limits
    requests: Requests = Field(default_factory=Requests, json_schema_extra={"default": {}})
    trigger: Trigger
    env: list[EnvVar] = Field(default_factory=list, max_length=MAX_ENV, json_schema_extra=list_map("name"))
    """The WasmApp's env as declared; the agent resolves valueFrom references when it loads the module."""
    variables: list[Variable] = Field(
        default_factory=list, max_length=MAX_ENV, json_schema_extra=list_map("name")
    )
    """The WasmApp's Spin variables as declared; resolved by the agent like env."""
    dependencies: list[DependencyEndpoint] = Field(
        default_factory=list, max_length=MAX_DEPENDENCIES, json_schema_extra=list_map("name")
    )
    """One entry per WasmApp dependency, resolved to its Service and credentials."""
    capabilities: Capabilities | None = None
    files: Files | None = None
    """The WasmApp's files as declared; the agent fills them from the artifact and ConfigMaps."""
    app_generation: int = Field(default=0, ge=0)
    """metadata.generation of the WasmApp this template was rendered from."""
    template_hash: str = Field(default="", max_length=64)
    """Hash of everything except nodeName; a change means the replica must be updated."""

    def compute_template_hash(self) -> str:
        """Stable hash of the template (node, generation and hash itself excluded)."""
        body = self.model_dump(
            mode="json",
            by_alias=True,
            exclude_none=True,
            exclude={"node_name", "app_generation", "template_hash"},
        )
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def with_template_hash(self) -> WasmPlacementSpec:
        """Copy with template_hash filled in."""
        return self.model_copy(update={"template_hash": self.compute_template_hash()})


class WasmPlacementStatus(KubeModel):
    """Observed state of the replica, written by the agent on its node."""

    state: PlacementState = "Pending"
    """Phase on the node: Pending, Pulling, Compiling, then Ready; Failed (see message) or Draining. A job
    is Ready while it runs and ends Succeeded or Failed."""
    ready: bool = False
    """True while the replica serves its trigger (for a job: while it runs and once it succeeded)."""
    message: str = Field(default="", max_length=4096)
    """Human-readable detail of the state, e.g. the reference being pulled or why it failed."""
    last_transition_time: KubeTime | None = None
    """When state last changed."""
    observed_template_hash: str | None = Field(default=None, max_length=64)
    """Template the agent is running; differs from spec.templateHash while updating."""
    conditions: list[Condition] = Field(
        default_factory=list, max_length=16, json_schema_extra=list_map("type")
    )
    """Ready (follows ready) and, for jobs, Complete once the job succeeded or ran out of retries."""
    exit_code: int | None = None
    """Jobs only: exit code of the last attempt."""
    attempts: int | None = Field(default=None, ge=0)
    """Jobs only: attempts so far."""
    output: str | None = Field(default=None, max_length=MAX_JOB_OUTPUT)
    """Jobs only: the last characters of the guest's stdout and stderr (the bound is in validation)."""
    last_schedule_time: KubeTime | None = None
    """Schedules only: the scheduled time of the latest run started on this node."""
    active_runs: int | None = Field(default=None, ge=0)
    """Schedules only: runs in progress on this node."""
    runs: list[ScheduledRun] | None = Field(default=None, max_length=MAX_RUNS)
    """Schedules only: the latest runs on this node, oldest first."""

    @staticmethod
    def bound_output(text: str) -> str:
        """Keep the tail of `text`, which is where errors usually are."""
        return text[-MAX_JOB_OUTPUT:]


class WasmPlacement(KubeObject):
    """One app replica on one node (namespaced, short name `wp`)."""

    KIND: ClassVar[str] = WASMPLACEMENT_KIND
    PLURAL: ClassVar[str] = WASMPLACEMENT_PLURAL

    spec: WasmPlacementSpec
    status: WasmPlacementStatus | None = None
