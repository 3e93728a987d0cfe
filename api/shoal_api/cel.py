"""Helpers for attaching CEL rules and list semantics to pydantic fields and models.

The rules end up in the CRD as `x-kubernetes-validations`, so the apiserver rejects bad objects
before the operator ever sees them; the models repeat the checks in Python for unit tests and for
objects built in code.
"""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]

VALIDATIONS_KEY = "x-kubernetes-validations"


def rules(*pairs: tuple[str, str]) -> JsonDict:
    """`json_schema_extra` carrying CEL rules as (rule, message) pairs."""
    return {VALIDATIONS_KEY: [{"rule": rule, "message": message} for rule, message in pairs]}


def list_map(*keys: str) -> JsonDict:
    """`json_schema_extra` making a list a map keyed by `keys`: the apiserver rejects duplicates
    and server-side apply merges entries by key instead of replacing the whole list."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


def list_set() -> JsonDict:
    """`json_schema_extra` making a list of scalars a set (no duplicates)."""
    return {"x-kubernetes-list-type": "set"}


def object_default() -> JsonDict:
    """`json_schema_extra` giving an optional sub-object the default `{}` so the apiserver fills
    in the defaults of its fields when the user leaves the whole object out."""
    return {"default": {}}
