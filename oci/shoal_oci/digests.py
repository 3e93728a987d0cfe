"""sha256 digests: parse, compute, and check bytes against the digest that named them."""

from __future__ import annotations

import hashlib
import re

from .errors import DigestMismatch, InvalidReference

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def validate(digest: str) -> str:
    """Return the digest if it is a well-formed sha256 digest; we accept no other algorithm."""
    if not _DIGEST.match(digest):
        raise InvalidReference(f"unsupported or malformed digest {digest!r} (want sha256:<64 hex>)")
    return digest


def hex_of(digest: str) -> str:
    return validate(digest).split(":", 1)[1]


def of_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check(data: bytes, expected: str, what: str) -> None:
    actual = of_bytes(data)
    if actual != expected:
        raise DigestMismatch(f"{what}: expected {expected}, got {actual}")
