"""What can go wrong fetching an artifact, as exceptions the agent can map to Pod conditions and retries."""

from __future__ import annotations


class OciError(Exception):
    """Base of every artifact error; `retryable` tells the caller whether a later attempt may succeed."""

    retryable = False


class InvalidReference(OciError):
    """The image reference cannot be parsed."""


class ArtifactNotFound(OciError):
    """The registry answered 404 for the tag, manifest or a blob."""


class Unauthorized(OciError):
    """The registry refused the credentials (or their absence): 401/403."""


class DigestMismatch(OciError):
    """Bytes received do not hash to the digest that named them: never retried, never cached."""


class NotWasm(OciError):
    """The artifact holds no WebAssembly module in any of the formats we understand."""


class UnsupportedSpinApp(OciError):
    """A Spin application that is not one HTTP component: more components, another trigger, or
    component dependencies left uncomposed."""


class ArtifactTooLarge(OciError):
    """The artifact exceeds the configured size bound (told by the manifest, or found while streaming)."""


class RegistryUnavailable(OciError):
    """Connection failures, timeouts, 429 and 5xx that persisted through every retry."""

    retryable = True
