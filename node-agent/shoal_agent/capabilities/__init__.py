"""Capability host functions (`shoal:redis`, `shoal:sql`) and their per-app wiring (host ABI v1)."""

from .abi import ABI_VERSION, Err
from .agent import AgentCapabilities
from .bindings import AppBinding
from .endpointslices import EndpointSliceResolver
from .namespacing import KeySpace, channel_name
from .pools import ClusterDnsResolver, EndpointResolver, HostPort, PoolSettings, StaticResolver
from .registry import CapabilityHost, DependencyError, PasswordReader, capabilities_for

__all__ = [
    "ABI_VERSION",
    "AgentCapabilities",
    "AppBinding",
    "CapabilityHost",
    "ClusterDnsResolver",
    "DependencyError",
    "EndpointResolver",
    "EndpointSliceResolver",
    "Err",
    "HostPort",
    "KeySpace",
    "PasswordReader",
    "PoolSettings",
    "StaticResolver",
    "capabilities_for",
    "channel_name",
]
