"""OCI artifacts for the node agent: pull Wasm modules (three packagings) into a verified cache; push.

The agent uses `ArtifactPuller.pull(ref, pull_secrets)`; build scripts and tests use `push_wasm`.
"""

from .credentials import Credentials, credentials_for, parse_docker_config
from .errors import (
    ArtifactNotFound,
    ArtifactTooLarge,
    DigestMismatch,
    InvalidReference,
    NotWasm,
    OciError,
    RegistryUnavailable,
    Unauthorized,
)
from .formats import WasmFormat
from .puller import DEFAULT_MAX_ARTIFACT_BYTES, ArtifactPuller, PullResult, PullStats
from .push import build, push, push_wasm
from .retry import RetryPolicy

__all__ = [
    "DEFAULT_MAX_ARTIFACT_BYTES",
    "ArtifactNotFound",
    "ArtifactPuller",
    "ArtifactTooLarge",
    "Credentials",
    "DigestMismatch",
    "InvalidReference",
    "NotWasm",
    "OciError",
    "PullResult",
    "PullStats",
    "RegistryUnavailable",
    "RetryPolicy",
    "Unauthorized",
    "WasmFormat",
    "build",
    "credentials_for",
    "parse_docker_config",
    "push",
    "push_wasm",
]
