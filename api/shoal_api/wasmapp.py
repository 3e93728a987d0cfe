"""WasmApp: what a user declares: a module, a trigger, resources, dependencies, placement.

Everything the apiserver can check without looking at other objects is checked in the CRD
(patterns, bounds, CEL); the same checks run in the pydantic validators.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from shoal_api.cel import list_map, list_set, object_default, rules
from shoal_api.constants import WASMAPP_KIND, WASMAPP_PLURAL
from shoal_api.egress import ALLOWED_HOST_PATTERN, parse_allowed_host
from shoal_api.meta import (
    DNS_LABEL_MAX,
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_MAX,
    DNS_SUBDOMAIN_PATTERN,
    Condition,
    KeySelector,
    KubeModel,
    KubeObject,
    KubeTime,
    LocalObjectReference,
)
from shoal_api.quantity import (
    DURATION_PATTERN,
    QUANTITY_PATTERN,
    parse_cpu_millicores,
    parse_duration_ms,
    parse_memory_bytes,
)
from shoal_api.schedule import (
    CRON_PATTERN,
    MAX_RUN_OUTPUT,
    MAX_RUNS,
    TIME_ZONE_PATTERN,
    ConcurrencyPolicy,
)

MAX_REPLICAS = 1000
MIN_MEMORY_LIMIT = "1Mi"
MAX_MEMORY_LIMIT = "4Gi"
MAX_TIMEOUT = "1h"
MAX_ENV = 64
MAX_DEPENDENCIES = 16
DEFAULT_ENTRYPOINT = "_start"
MAX_OUTBOUND_HOSTS = 32

Quantity = Annotated[str, Field(max_length=64, pattern=QUANTITY_PATTERN)]
Duration = Annotated[str, Field(max_length=64, pattern=DURATION_PATTERN)]
AllowedHostPattern = Annotated[str, Field(min_length=1, max_length=300, pattern=ALLOWED_HOST_PATTERN)]
DnsLabel = Annotated[str, Field(min_length=1, max_length=DNS_LABEL_MAX, pattern=DNS_LABEL_PATTERN)]
DnsSubdomain = Annotated[
    str, Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX, pattern=DNS_SUBDOMAIN_PATTERN)
]


# --- module -------------------------------------------------------------------------------------


class ModuleRef(KubeModel):
    """The OCI artifact holding the Wasm module; the operator resolves the tag to a digest."""

    image: str = Field(min_length=1, max_length=512, pattern=r"^[^\s]+$")
    """OCI reference, e.g. registry.example:5000/demo/tally:v1 or ...@sha256:<digest>."""
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, max_length=16, json_schema_extra=list_map("name")
    )
    """Secrets of type kubernetes.io/dockerconfigjson used to pull the module."""


# --- triggers -----------------------------------------------------------------------------------


class WithArgs(KubeModel):
    """The argv a trigger passes to its module."""

    args: list[Annotated[str, Field(max_length=1024)]] = Field(default_factory=list, max_length=64)
    """Arguments passed as argv[1:] (argv[0] is the app's name). For HTTP, a WAGI request's
    query args (a query without '=', split on '+') follow them."""


class HttpTrigger(WithArgs):
    """Invoke the module for HTTP requests under a path prefix on the node agent."""

    path: str = Field(min_length=1, max_length=256, pattern=r"^/[^\s]*$")
    """URL path prefix, starting with '/'."""


class RedisTrigger(WithArgs):
    """Invoke the module for each message published on a Redis channel."""

    dependency: DnsLabel
    """Name of a redis dependency declared in spec.dependencies."""
    channel: str = Field(min_length=1, max_length=256)
    """Channel (pub/sub) to subscribe to."""


class JobTrigger(WithArgs):
    """Run the module's entry point once per replica until it exits 0, like a Job."""

    backoff_limit: int = Field(default=3, ge=0, le=100)
    """Retries before the placement is marked Failed."""


class ScheduleTrigger(WithArgs):
    """Run the module's entry point on a cron schedule, a fresh instance per run, like a CronJob.
    Each replica runs every scheduled time (replicas is a CronJob's parallelism; 0 suspends it)."""

    cron: str = Field(min_length=1, max_length=128, pattern=CRON_PATTERN)
    """When to run: five fields (minute hour day-of-month month day-of-week) as a CronJob's
    `schedule`, or @yearly, @monthly, @weekly, @daily, @midnight, @hourly. A sixth field in front
    gives the seconds (`*/10 * * * * *`: every 10 s), as Quartz and Spring read it. Ranges, steps,
    lists, month and day names, `?`, `L`, `W` and `#` as croniter reads them; the operator reports
    an expression it cannot read (condition Scheduled=False, reason InvalidSchedule, and an Event)."""
    time_zone: str | None = Field(default=None, max_length=64, pattern=TIME_ZONE_PATTERN)
    """IANA time zone the fields are read in (e.g. Europe/Berlin), as a CronJob's `timeZone`;
    UTC when unset. Daylight-saving changes are croniter's: a skipped hour does not run."""
    concurrency_policy: ConcurrencyPolicy = "Allow"
    """Allow: a run starts at its time even if the previous one is still running (up to
    resources.maxConcurrency runs at once on a replica). Forbid: that time is skipped while a run
    is on (the placement's message says so). CronJob's Replace is not offered: a running guest can
    only be stopped by its timeout."""


class ScheduledRun(KubeModel):
    """One run of a scheduled app, as its agent recorded it."""

    node: str = Field(max_length=DNS_SUBDOMAIN_MAX)
    """Node whose agent ran it."""
    schedule_time: KubeTime
    """The time the schedule named for this run."""
    start_time: KubeTime
    """When the instance started."""
    completion_time: KubeTime
    """When it ended."""
    outcome: str = Field(max_length=32)
    """ok, exit (non-zero exit code), trap, timeout, out_of_memory, stdout_limit, busy or error."""
    exit_code: int | None = None
    """The guest's exit code; unset when it did not exit (a trap, a timeout)."""
    output: str = Field(default="", max_length=MAX_RUN_OUTPUT)
    """The last bytes of its stdout and stderr."""

    @property
    def succeeded(self) -> bool:
        return self.outcome == "ok"


TriggerKind = Literal["http", "redis", "job", "schedule"]


class Trigger(KubeModel):
    """Exactly one of http, redis, job or schedule."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                "(has(self.http) ? 1 : 0) + (has(self.redis) ? 1 : 0) + (has(self.job) ? 1 : 0)"
                " + (has(self.schedule) ? 1 : 0) == 1",
                "exactly one trigger kind must be set: http, redis, job or schedule",
            )
        )
    )

    http: HttpTrigger | None = None
    redis: RedisTrigger | None = None
    job: JobTrigger | None = None
    schedule: ScheduleTrigger | None = None
    entrypoint: str = Field(default=DEFAULT_ENTRYPOINT, min_length=1, max_length=256, pattern=r"^[^\s]+$")
    """The exported function a core module runs (no parameters, no results), as WAGI's
    `entrypoint`: one module may hold several handlers. Components run the world they export and
    take only the default."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        if sum(t is not None for t in (self.http, self.redis, self.job, self.schedule)) != 1:
            raise ValueError("exactly one trigger kind must be set: http, redis, job or schedule")
        return self

    @property
    def args(self) -> list[str]:
        """The argv[1:] of the set trigger kind."""
        chosen: WithArgs | None = self.http or self.redis or self.job or self.schedule
        return list(chosen.args) if chosen is not None else []

    @property
    def kind(self) -> TriggerKind:
        """Which trigger is set."""
        if self.http is not None:
            return "http"
        if self.redis is not None:
            return "redis"
        if self.schedule is not None:
            return "schedule"
        return "job"

    def summary(self) -> str:
        """Short text for the TRIGGER printer column, e.g. "http /tally", "redis cache/clicks"."""
        if self.http is not None:
            return f"http {self.http.path}"
        if self.redis is not None:
            return f"redis {self.redis.dependency}/{self.redis.channel}"
        if self.schedule is not None:
            zone = f" {self.schedule.time_zone}" if self.schedule.time_zone else ""
            return f"schedule {' '.join(self.schedule.cron.split())}{zone}"[:300]
        return "job"


# --- resources ----------------------------------------------------------------------------------


class ResourceRequests(KubeModel):
    """What the scheduler reserves on a node for one replica."""

    cpu: Quantity = "10m"
    """CPU reserved per replica on its node (Kubernetes quantity, e.g. 50m)."""
    memory: Quantity = "32Mi"
    """Memory reserved per replica on its node (Kubernetes quantity, e.g. 64Mi)."""

    @property
    def cpu_millis(self) -> int:
        return parse_cpu_millicores(self.cpu)

    @property
    def memory_bytes(self) -> int:
        return parse_memory_bytes(self.memory)


class Resources(KubeModel):
    """Per-instance limits enforced by the agent's wasmtime store, plus scheduling requests."""

    memory: Quantity = Field(
        default="32Mi",
        json_schema_extra=rules(
            (
                f"isQuantity(self) && quantity(self).compareTo(quantity('{MIN_MEMORY_LIMIT}')) >= 0"
                f" && quantity(self).compareTo(quantity('{MAX_MEMORY_LIMIT}')) <= 0",
                f"memory must be between {MIN_MEMORY_LIMIT} and {MAX_MEMORY_LIMIT}",
            )
        ),
    )
    """Linear memory limit of one instance."""
    timeout: Duration = Field(
        default="30s",
        json_schema_extra=rules(
            (
                f"!self.matches('{DURATION_PATTERN}') || duration(self) <= duration('{MAX_TIMEOUT}')",
                f"timeout must be at most {MAX_TIMEOUT}",
            )
        ),
    )
    """Wall-clock limit of one invocation (e.g. 500ms, 2s, 1m)."""
    max_concurrency: int = Field(default=64, ge=1, le=10_000)
    """Concurrent invocations per replica."""
    requests: ResourceRequests = Field(default_factory=ResourceRequests, json_schema_extra=object_default())

    @model_validator(mode="after")
    def _bounds(self) -> Resources:
        if (
            not parse_memory_bytes(MIN_MEMORY_LIMIT)
            <= self.memory_bytes
            <= parse_memory_bytes(MAX_MEMORY_LIMIT)
        ):
            raise ValueError(f"memory must be between {MIN_MEMORY_LIMIT} and {MAX_MEMORY_LIMIT}")
        if self.timeout_ms > parse_duration_ms(MAX_TIMEOUT):
            raise ValueError(f"timeout must be at most {MAX_TIMEOUT}")
        return self

    @property
    def memory_bytes(self) -> int:
        return parse_memory_bytes(self.memory)

    @property
    def timeout_ms(self) -> int:
        return parse_duration_ms(self.timeout)


# --- env ----------------------------------------------------------------------------------------


class EnvVarSource(KubeModel):
    """Exactly one of secretKeyRef or configMapKeyRef; the agent reads the value itself."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                "has(self.secretKeyRef) != has(self.configMapKeyRef)",
                "exactly one of secretKeyRef or configMapKeyRef must be set",
            )
        )
    )

    secret_key_ref: KeySelector | None = None
    config_map_key_ref: KeySelector | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvVarSource:
        if (self.secret_key_ref is None) == (self.config_map_key_ref is None):
            raise ValueError("exactly one of secretKeyRef or configMapKeyRef must be set")
        return self


class EnvVar(KubeModel):
    """An environment variable visible to the module through WASI."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            ("has(self.value) != has(self.valueFrom)", "exactly one of value or valueFrom must be set")
        )
    )

    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Variable name the module reads from its WASI environment."""
    value: str | None = Field(default=None, max_length=32768)
    """Literal value, stored in the object as is; use valueFrom for secrets."""
    value_from: EnvVarSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvVar:
        if (self.value is None) == (self.value_from is None):
            raise ValueError(f"env {self.name}: exactly one of value or valueFrom must be set")
        return self


class Variable(EnvVar):
    """A Spin application variable (`fermyon:spin/variables`): a literal or a Secret/ConfigMap key."""

    name: str = Field(min_length=1, max_length=256, pattern=r"^[a-z][a-z0-9_]*$")
    """Variable name as the app asks for it (Spin's rule: lower-case letters, digits, `_`)."""


# --- dependencies -------------------------------------------------------------------------------


class RedisDependency(KubeModel):
    """A Redis the app talks to; provisioned by the operator unless serviceRef is set."""


class MysqlDependency(KubeModel):
    """A MySQL database; provisioned by the operator unless serviceRef is set."""

    database: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    """Database the app uses (created when the operator provisions the server)."""
    storage: Quantity = "1Gi"
    """Size of the PersistentVolumeClaim when the operator provisions the server."""
    password_secret: KeySelector | None = None
    """Secret key holding the password; required with serviceRef, generated otherwise."""


class ServiceRef(KubeModel):
    """An existing Service to use instead of provisioning the dependency."""

    name: DnsLabel
    """Name of the Service."""
    port: int = Field(ge=1, le=65535)
    """Service port the app connects to."""
    namespace: DnsLabel | None = None
    """Defaults to the app's namespace."""


class Dependency(KubeModel):
    """A backing service the app needs, exposed to the module by name."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            ("has(self.redis) != has(self.mysql)", "exactly one dependency kind must be set: redis or mysql"),
            (
                "!has(self.serviceRef) || !has(self.mysql) || has(self.mysql.passwordSecret)",
                "a mysql dependency with serviceRef needs mysql.passwordSecret",
            ),
        )
    )

    name: DnsLabel
    """How the module names this dependency in host calls (and in a redis trigger)."""
    redis: RedisDependency | None = None
    mysql: MysqlDependency | None = None
    service_ref: ServiceRef | None = None
    retain: bool = False
    """Keep the provisioned data (PVC) when the app is deleted."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Dependency:
        if (self.redis is None) == (self.mysql is None):
            raise ValueError(
                f"dependency {self.name}: exactly one dependency kind must be set: redis or mysql"
            )
        if self.service_ref is not None and self.mysql is not None and self.mysql.password_secret is None:
            raise ValueError(
                f"dependency {self.name}: a mysql dependency with serviceRef needs mysql.passwordSecret"
            )
        return self

    @property
    def kind(self) -> Literal["redis", "mysql"]:
        return "redis" if self.redis is not None else "mysql"


# --- placement ----------------------------------------------------------------------------------


class Toleration(KubeModel):
    """core/v1 Toleration (same semantics as for pods)."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                "self.operator != 'Exists' || !has(self.value) || self.value == ''",
                "value must be empty when operator is Exists",
            ),
            (
                "has(self.key) && self.key != '' || self.operator == 'Exists'",
                "an empty key requires operator Exists",
            ),
        )
    )

    key: str | None = Field(default=None, max_length=316)
    """Taint key to match; empty (with operator Exists) matches every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Exists matches any value of the key; Equal requires the taint's value to equal value."""
    value: str | None = Field(default=None, max_length=63)
    """Taint value to match with operator Equal; must be empty with Exists."""
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Empty matches all effects."""
    toleration_seconds: int | None = None
    """For NoExecute taints: seconds the placement stays after the taint appears, then it moves;
    unset tolerates for ever, 0 or less not at all (as Kubernetes' taint eviction does)."""


class Spread(KubeModel):
    """Spread replicas over topology domains, like a pod topologySpreadConstraint."""

    max_skew: int = Field(default=1, ge=1, le=1000)
    """Largest allowed difference in replicas between two topology domains."""
    topology_key: str = Field(default="topology.kubernetes.io/zone", min_length=1, max_length=316)
    """Node label whose values are the topology domains."""


class Placement(KubeModel):
    """Where replicas may run and which nodes they prefer."""

    node_selector: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=dict, json_schema_extra={"maxProperties": 64}
    )
    """Node labels a node must have to run a replica."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    """Taints the replicas tolerate (core/v1 semantics)."""
    spread: Spread | None = None
    prefer_near_dependencies: bool = True
    """Prefer nodes running (or in the same zone as) the app's dependency pods."""


class Rollout(KubeModel):
    """How template changes roll over existing placements."""

    max_unavailable: int | str = Field(
        default=1,
        json_schema_extra=rules(
            (
                "type(self) == int ? self >= 1 : self.matches('^(100|[1-9][0-9]?)%$')",
                "maxUnavailable must be an integer >= 1 or a percentage between 1% and 100%",
            )
        ),
    )
    """Ready replicas that may be updated at once: an integer or a percentage of replicas."""

    @model_validator(mode="after")
    def _valid(self) -> Rollout:
        value = self.max_unavailable
        if isinstance(value, int) and value < 1:
            raise ValueError("maxUnavailable must be an integer >= 1 or a percentage between 1% and 100%")
        if isinstance(value, str) and not _is_percent(value):
            raise ValueError("maxUnavailable must be an integer >= 1 or a percentage between 1% and 100%")
        return self

    def resolve_max_unavailable(self, *, replicas: int) -> int:
        """Absolute count: percentages round down, but never below 1 so a rollout can progress."""
        value = self.max_unavailable
        if isinstance(value, str):
            value = replicas * int(value.rstrip("%")) // 100
        return max(1, value)


def _is_percent(value: str) -> bool:
    digits = value.removesuffix("%")
    return value.endswith("%") and digits.isdigit() and 1 <= int(digits) <= 100 and digits[0] != "0"


class Capabilities(KubeModel):
    """Opt-in widening of the default isolation between apps."""

    share_keys_with: list[DnsSubdomain] = Field(
        default_factory=list, max_length=16, json_schema_extra=list_set()
    )
    """Apps (same namespace) that may read this app's Redis keys."""
    allowed_outbound_hosts: list[AllowedHostPattern] = Field(
        default_factory=list, max_length=MAX_OUTBOUND_HOSTS, json_schema_extra=list_set()
    )
    """Where a component may send outbound HTTP (`wasi:http/outgoing-handler`); nowhere when empty.
    Spin's patterns: `https://api.example.com`, `http://*.svc.cluster.local:8080`, `*://*:*`; the
    port defaults to the scheme's. Checked against the address the agent resolves (never the Host
    header); loopback, link-local and the cloud metadata address (169.254.169.254) are reachable only
    through a pattern that names that address as an IP literal (`http://127.0.0.1:8080`). Refused
    calls fail in the guest (`HTTP-request-denied` or `destination-IP-prohibited`) and are counted in
    `shoal_outbound_http_denied_total`."""

    @field_validator("allowed_outbound_hosts")
    @classmethod
    def _parse_hosts(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            parse_allowed_host(pattern)
        return patterns


# --- files --------------------------------------------------------------------------------------

MAX_FILE_MOUNTS = 16
MAX_SCRATCH_SIZE = "1Gi"
GUEST_PATH_MAX = 256
# Absolute, no empty, `.` or `..` segment, no trailing slash (the root itself excepted).
GUEST_PATH_PATTERN = r"^/$|^(/(\.?[^./][^/]*|\.\.[^/]+|\.[^./]))+$"

GuestPath = Annotated[str, Field(min_length=1, max_length=GUEST_PATH_MAX, pattern=GUEST_PATH_PATTERN)]


def guest_paths_clash(a: str, b: str) -> bool:
    """Two guest directories clash when they are the same or one holds the other."""
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


class ArtifactFiles(KubeModel):
    """Files packaged in the module's own artifact: a Spin app's files (its
    `application/vnd.wasm.content.layer.v1+data` layers, placed where the locked app's component
    says), or a Docker+Wasm image's filesystem (its tar layers, whiteouts honoured). A CNCF Wasm
    artifact holds no files."""

    path: GuestPath = "/"
    """The folder of the artifact's files to show (its root by default)."""


class ConfigMapFiles(KubeModel):
    """A ConfigMap in the app's namespace: each key (data and binaryData) becomes a file."""

    name: DnsSubdomain
    """Name of the ConfigMap; a missing one keeps the app from loading (retried until it exists)."""


class FileMount(KubeModel):
    """A read-only directory the guest sees at `path`, filled from exactly one source."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            ("has(self.artifact) != has(self.configMap)", "exactly one of artifact or configMap must be set")
        )
    )

    path: GuestPath
    """Where the guest sees the directory (absolute, e.g. /static)."""
    artifact: ArtifactFiles | None = None
    config_map: ConfigMapFiles | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> FileMount:
        if (self.artifact is None) == (self.config_map is None):
            raise ValueError(f"files {self.path}: exactly one of artifact or configMap must be set")
        return self


class ScratchDir(KubeModel):
    """A writable directory, empty at the start of every invocation and deleted after it."""

    path: GuestPath
    """Where the guest sees it (absolute, e.g. /tmp)."""
    size: Quantity = Field(
        default="16Mi",
        json_schema_extra=rules(
            (
                f"isQuantity(self) && quantity(self).compareTo(quantity('{MAX_SCRATCH_SIZE}')) <= 0",
                f"scratch size must be at most {MAX_SCRATCH_SIZE}",
            )
        ),
    )
    """Bytes the files in it may hold together; an invocation that writes more traps."""

    @property
    def size_bytes(self) -> int:
        return parse_memory_bytes(self.size)

    @model_validator(mode="after")
    def _bound(self) -> ScratchDir:
        if self.size_bytes > parse_memory_bytes(MAX_SCRATCH_SIZE):
            raise ValueError(f"scratch size must be at most {MAX_SCRATCH_SIZE}")
        return self


def _as_folder(path: str) -> str:
    """CEL: a guest path with one trailing slash, so that prefixes compare whole segments."""
    return f"({path} == '/' ? '/' : {path} + '/')"


class Files(KubeModel):
    """Directories the guest sees; nothing else of the node is visible to it."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                "!has(self.mounts) || self.mounts.all(a, self.mounts.all(b, a.path == b.path"
                f" || !{_as_folder('a.path')}.startsWith({_as_folder('b.path')})))",
                "files: two mount paths clash (one inside the other)",
            ),
            (
                "!has(self.scratch) || !has(self.mounts) || self.mounts.all(m,"
                f" !{_as_folder('m.path')}.startsWith({_as_folder('self.scratch.path')})"
                f" && !{_as_folder('self.scratch.path')}.startsWith({_as_folder('m.path')}))",
                "files: the scratch path clashes with a mount path (the same, or one inside the other)",
            ),
        )
    )

    mounts: list[FileMount] = Field(
        default_factory=list, max_length=MAX_FILE_MOUNTS, json_schema_extra=list_map("path")
    )
    """Read-only directories (WASI preopens for modules, wasi:filesystem for components)."""
    scratch: ScratchDir | None = None

    @model_validator(mode="after")
    def _no_clash(self) -> Files:
        paths = [m.path for m in self.mounts] + ([self.scratch.path] if self.scratch else [])
        for i, a in enumerate(paths):
            for b in paths[i + 1 :]:
                if guest_paths_clash(a, b):
                    raise ValueError(f"files: paths {a} and {b} clash (the same, or one inside the other)")
        return self


# --- spec & status ------------------------------------------------------------------------------


class WasmAppSpec(KubeModel):
    """Desired state of a WasmApp."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                "!has(self.trigger.redis) || (has(self.dependencies) && self.dependencies.exists(d,"
                " d.name == self.trigger.redis.dependency && has(d.redis)))",
                "trigger.redis.dependency must name a redis dependency declared in spec.dependencies",
            ),
        )
    )

    module: ModuleRef
    replicas: int = Field(default=1, ge=0, le=MAX_REPLICAS)
    """Nodes to run the module on (one replica per node); `kubectl scale` sets it."""
    trigger: Trigger
    resources: Resources = Field(default_factory=Resources, json_schema_extra=object_default())
    env: list[EnvVar] = Field(default_factory=list, max_length=MAX_ENV, json_schema_extra=list_map("name"))
    """Environment variables of every instance (WASI env); values or Secret/ConfigMap keys."""
    variables: list[Variable] = Field(
        default_factory=list, max_length=MAX_ENV, json_schema_extra=list_map("name")
    )
    """Spin app variables (`fermyon:spin/variables@2.0.0`), read by Spin apps with
    `spin_sdk.variables.get(name)`; literal values or Secret/ConfigMap keys."""
    dependencies: list[Dependency] = Field(
        default_factory=list, max_length=MAX_DEPENDENCIES, json_schema_extra=list_map("name")
    )
    """Redis and MySQL the app uses: provisioned as StatefulSets, or an existing Service (serviceRef)."""
    placement: Placement = Field(default_factory=Placement, json_schema_extra=object_default())
    rollout: Rollout = Field(default_factory=Rollout, json_schema_extra=object_default())
    capabilities: Capabilities | None = None
    files: Files | None = None
    """Read-only directories from the artifact or ConfigMaps, and a per-invocation scratch directory."""

    @model_validator(mode="after")
    def _cross_field(self) -> WasmAppSpec:
        names = [d.name for d in self.dependencies]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate dependency names: {', '.join(duplicates)}")
        for what, entries in (("env", self.env), ("variable", self.variables)):
            entry_names = [e.name for e in entries]
            duplicates = sorted({n for n in entry_names if entry_names.count(n) > 1})
            if duplicates:
                raise ValueError(f"duplicate {what} names: {', '.join(duplicates)}")
        redis = self.trigger.redis
        if redis is not None:
            dep = self.dependency(redis.dependency)
            if dep is None or dep.redis is None:
                raise ValueError(
                    "trigger.redis.dependency must name a redis dependency declared in spec.dependencies"
                )
        return self

    def dependency(self, name: str) -> Dependency | None:
        """The declared dependency called `name`, if any."""
        return next((d for d in self.dependencies if d.name == name), None)


PlacementState = Literal["Pending", "Pulling", "Compiling", "Ready", "Succeeded", "Failed", "Draining"]


class PlacementSummary(KubeModel):
    """One line per placement in WasmApp.status, so `kubectl get -o yaml` shows where it runs."""

    node: str = Field(max_length=DNS_SUBDOMAIN_MAX)
    """Node the replica is placed on (the placement's spec.nodeName)."""
    state: PlacementState | None = None
    """The placement's status.state; Pending until its agent has reported one."""
    ready: bool = False
    """Counted as ready: the agent reports it ready on the current template and still heartbeats."""


class WasmAppStatus(KubeModel):
    """Observed state, written by the operator."""

    observed_generation: int | None = None
    """metadata.generation this status describes."""
    replicas: int = 0
    """Placements that exist (the /scale subresource reads this)."""
    ready_replicas: int = 0
    """Placements whose agent reports them ready and heartbeats."""
    ready_summary: str | None = Field(default=None, max_length=32)
    """"ready/desired", for the READY printer column."""
    trigger_summary: str | None = Field(default=None, max_length=300)
    """Short trigger description, for the TRIGGER printer column."""
    selector: str | None = Field(default=None, max_length=1024)
    """Label selector of the placements, for the /scale subresource."""
    resolved_digest: str | None = Field(default=None, max_length=128)
    """sha256 digest the module tag resolved to."""
    placements: list[PlacementSummary] = Field(
        default_factory=list, max_length=MAX_REPLICAS, json_schema_extra=list_map("node")
    )
    """Where each replica runs and its state."""
    conditions: list[Condition] = Field(
        default_factory=list, max_length=16, json_schema_extra=list_map("type")
    )
    """Scheduled, DependenciesReady, Degraded and Ready, kept current by the operator."""
    last_schedule_time: KubeTime | None = None
    """Schedules only: the scheduled time of the latest run started (a CronJob's lastScheduleTime)."""
    last_successful_time: KubeTime | None = None
    """Schedules only: when the latest successful run (exit code 0) completed."""
    active_runs: int | None = Field(default=None, ge=0)
    """Schedules only: runs in progress over all replicas."""
    runs: list[ScheduledRun] | None = Field(default=None, max_length=MAX_RUNS)
    """Schedules only: the latest runs over all replicas, oldest first (kept across agent
    restarts and moves)."""

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


class WasmApp(KubeObject):
    """A WebAssembly workload (namespaced, short name `wasm`)."""

    KIND: ClassVar[str] = WASMAPP_KIND
    PLURAL: ClassVar[str] = WASMAPP_PLURAL

    spec: WasmAppSpec
    status: WasmAppStatus | None = None

    @property
    def key(self) -> str:
        """ "namespace/name", the app's identity in the scheduler."""
        return f"{self.metadata.namespace or ''}/{self.metadata.name or ''}"
