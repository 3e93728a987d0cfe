"""Base classes and Kubernetes metadata types shared by every Shoal kind.

One pydantic base fixes the wire conventions (camelCase aliases, unknown fields ignored because
the apiserver may add fields we do not know, RFC 3339 timestamps) so that no model repeats them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator
from pydantic.alias_generators import to_camel

from shoal_api.constants import API_VERSION

# DNS-1123 label: dependency names become Service names and env-var prefixes.
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_LABEL_MAX = 63
# DNS-1123 subdomain: object names (Secrets, ConfigMaps, nodes, apps).
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_SUBDOMAIN_MAX = 253
# Kubernetes condition reasons are CamelCase identifiers.
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


def _format_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


KubeTime = Annotated[datetime, PlainSerializer(_format_time, return_type=str, when_used="json")]
"""A metav1.Time: serialized as RFC 3339 in UTC with second precision, like the apiserver does."""


class KubeModel(BaseModel):
    """Base for every API struct: camelCase on the wire, snake_case in Python, unknown keys ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        use_attribute_docstrings=True,
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with camelCase keys and unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class LocalObjectReference(KubeModel):
    """Reference to an object by name in the same namespace."""

    name: str = Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX, pattern=DNS_SUBDOMAIN_PATTERN)
    """Name of the object, looked up in the namespace of the object that refers to it."""


class KeySelector(KubeModel):
    """A key in a Secret or ConfigMap of the same namespace."""

    name: str = Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX, pattern=DNS_SUBDOMAIN_PATTERN)
    """Name of the Secret or ConfigMap."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """Key within its data."""


class OwnerReference(KubeModel):
    """metav1.OwnerReference, so placements are garbage-collected with their app."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(KubeModel):
    """The subset of metav1.ObjectMeta the operator and agents read or write."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[OwnerReference] | None = None
    finalizers: list[str] | None = None
    creation_timestamp: KubeTime | None = None
    deletion_timestamp: KubeTime | None = None


class Condition(KubeModel):
    """metav1.Condition: the standard shape so kubectl wait and generic tooling understand it."""

    type: str = Field(min_length=1, max_length=316)
    """What the condition reports on, in CamelCase (e.g. Ready); at most one condition per type."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition currently holds (Unknown when that cannot be determined)."""
    reason: str = Field(min_length=1, max_length=1024, pattern=CONDITION_REASON_PATTERN)
    """Machine-readable CamelCase cause of the current status, e.g. Unschedulable."""
    message: str = Field(default="", max_length=32768)
    """Human-readable details of the current status; may be empty."""
    last_transition_time: KubeTime
    """When status last changed; a new reason or message alone does not move it."""
    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation the condition was computed from; unset when the writer does not track it."""


def set_condition(
    conditions: Sequence[Condition],
    *,
    type: str,
    status: Literal["True", "False", "Unknown"],
    reason: str,
    message: str = "",
    now: datetime,
    observed_generation: int | None = None,
) -> list[Condition]:
    """New condition list with `type` set; lastTransitionTime only moves when status changes,
    which is what makes `kubectl wait` and "since" timestamps meaningful."""
    previous = next((c for c in conditions if c.type == type), None)
    transition = previous.last_transition_time if previous and previous.status == status else now
    updated = Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=observed_generation,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if c.type == type else c for c in conditions]


class KubeObject(KubeModel):
    """A top-level object: apiVersion, kind, metadata. Subclasses add spec and status."""

    KIND: ClassVar[str]
    PLURAL: ClassVar[str]
    NAMESPACED: ClassVar[bool] = True

    api_version: str = API_VERSION
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @model_validator(mode="after")
    def _kind_matches(self) -> Self:
        if not self.kind:
            self.kind = self.KIND
        elif self.kind != self.KIND:
            raise ValueError(f"kind is {self.kind!r}, expected {self.KIND!r}")
        return self

    def to_k8s(self) -> dict[str, Any]:
        """Body for the Kubernetes API: apiVersion and kind included, None fields dropped."""
        return self.to_dict()

    @classmethod
    def from_k8s(cls, body: Any) -> Self:
        """Parse an object as the apiserver sends it (listed or watched); unknown fields ignored."""
        return cls.model_validate(dict(body))


def owner_ref(owner: KubeObject | Mapping[str, Any], *, controller: bool = True) -> dict[str, Any]:
    """metav1.OwnerReference to `owner` (a model or a raw body), the one way Shoal builds them.

    A controller reference (the default) also blocks a foreground deletion of the owner until the
    garbage collector removed the dependent; a plain one (an agent's WasmNode on its Node) only
    ties the dependent's life to the owner's. An owner not read from the apiserver has no uid: refused.
    """
    fields: tuple[Any, Any, Any, Any]
    if isinstance(owner, KubeObject):
        fields = (owner.api_version, owner.kind, owner.metadata.name, owner.metadata.uid)
    else:
        meta = owner.get("metadata") or {}
        fields = (owner.get("apiVersion"), owner.get("kind"), meta.get("name"), meta.get("uid"))
    api_version, kind, name, uid = fields
    if not name or not uid:
        raise ValueError(
            f"{kind} {name or '?'} has no metadata.name or metadata.uid (not read from the apiserver?)"
        )
    ref: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid}
    if controller:
        ref |= {"controller": True, "blockOwnerDeletion": True}
    return ref
