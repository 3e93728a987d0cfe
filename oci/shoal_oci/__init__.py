"""OCI artifacts for Shoal: resolve a tag to a digest, pull Wasm modules (three packagings) into a
verified content-addressed store, package and push them.

The operator and the CLI resolve with `Resolver` (manifests only, no store); the agent pulls with
`ArtifactPuller`; build scripts, tests and `shoal push` use `push_wasm`. Everything a caller needs is
exported here: the modules under this package are its own business.
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
    UnsupportedSpinApp,
)
from .formats import WasmFormat, check_wasm_bytes, is_component
from .puller import DEFAULT_MAX_ARTIFACT_BYTES, ArtifactPuller, PullResult
from .push import build, push, push_wasm
from .resolver import RegistryStats, Resolver, insecure_from_env
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
    "RegistryStats",
    "RegistryUnavailable",
    "Resolver",
    "RetryPolicy",
    "Unauthorized",
    "UnsupportedSpinApp",
    "WasmFormat",
    "build",
    "check_wasm_bytes",
    "credentials_for",
    "insecure_from_env",
    "is_component",
    "parse_docker_config",
    "push",
    "push_wasm",
]
