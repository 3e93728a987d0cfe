"""Turn pydantic JSON Schema into a Kubernetes *structural* OpenAPI v3 schema.

The apiserver rejects CRDs whose schemas are not structural: every node needs a type, there is
no $ref, nullable unions are spelled differently, and `properties` excludes `additionalProperties`.
Pydantic speaks JSON Schema 2020-12, so this module rewrites its output node by node and refuses
(raises) anything it does not know how to translate, rather than emitting a CRD that fails later.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

JsonDict = dict[str, Any]

# Keywords passed through unchanged (OpenAPI v3.0 subset that structural schemas allow).
_PASSTHROUGH = frozenset(
    {
        "type",
        "description",
        "default",
        "enum",
        "format",
        "pattern",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "uniqueItems",
        "required",
        "x-kubernetes-validations",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-int-or-string",
        "x-kubernetes-embedded-resource",
    }
)
_DROPPED = frozenset({"title", "examples", "$schema"})


class StructuralSchemaError(ValueError):
    """The pydantic schema uses a construct with no structural equivalent."""


def model_schema(model: type[BaseModel]) -> JsonDict:
    """Structural OpenAPI v3 schema of a pydantic model (validation mode, camelCase names)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return to_structural(raw, defs=defs, path=model.__name__)


def to_structural(node: JsonDict, *, defs: JsonDict, path: str) -> JsonDict:
    """Rewrite one schema node (recursively) into its structural form."""
    node = _resolve_ref(node, defs=defs, path=path)
    node = _resolve_ref(_collapse_union(node, path=path), defs=defs, path=path)
    out: JsonDict = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "default":
            if value is not None:
                out["default"] = copy.deepcopy(value)
        elif key == "exclusiveMinimum" or key == "exclusiveMaximum":
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "properties":
            out["properties"] = {
                name: to_structural(sub, defs=defs, path=f"{path}.{name}") for name, sub in value.items()
            }
        elif key == "items":
            out["items"] = to_structural(value, defs=defs, path=f"{path}[]")
        elif key == "additionalProperties":
            if value is False:
                continue  # pydantic's extra="forbid"; the apiserver prunes unknown fields anyway
            if value is True or not isinstance(value, dict):
                raise StructuralSchemaError(f"{path}: additionalProperties must be a schema")
            out["additionalProperties"] = to_structural(value, defs=defs, path=f"{path}{{}}")
        elif key in _PASSTHROUGH:
            out[key] = copy.deepcopy(value)
        else:
            raise StructuralSchemaError(f"{path}: unsupported JSON Schema keyword {key!r}")
    if out.get("type") == "object" and "properties" in out and "additionalProperties" in out:
        raise StructuralSchemaError(f"{path}: properties and additionalProperties are exclusive")
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["properties"] = {}
    if "required" in out and not out["required"]:
        del out["required"]
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        raise StructuralSchemaError(f"{path}: schema has no type")
    return out


def _resolve_ref(node: JsonDict, *, defs: JsonDict, path: str) -> JsonDict:
    """Inline `$ref`; keywords next to the ref (description, default) override the target's."""
    while "$ref" in node:
        ref = node["$ref"]
        prefix = "#/$defs/"
        if not isinstance(ref, str) or not ref.startswith(prefix) or ref[len(prefix) :] not in defs:
            raise StructuralSchemaError(f"{path}: unresolvable $ref {ref!r}")
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        node = {**defs[ref[len(prefix) :]], **siblings}
    return node


def _collapse_union(node: JsonDict, *, path: str) -> JsonDict:
    """`X | None` becomes X (optional = not required); `int | str` becomes int-or-string."""
    for keyword in ("anyOf", "oneOf"):
        if keyword not in node:
            continue
        options = [o for o in node[keyword] if o != {"type": "null"}]
        rest = {k: v for k, v in node.items() if k != keyword}
        if len(options) == 1:
            return {**options[0], **rest}
        types = sorted(o.get("type", "") for o in options)
        if types == ["integer", "string"] and all(set(o) <= {"type", "pattern"} for o in options):
            return {"x-kubernetes-int-or-string": True, **rest}
        raise StructuralSchemaError(f"{path}: cannot express union {node[keyword]!r} structurally")
    if "allOf" in node:
        if len(node["allOf"]) != 1:
            raise StructuralSchemaError(f"{path}: allOf with several schemas")
        rest = {k: v for k, v in node.items() if k != "allOf"}
        return {**node["allOf"][0], **rest}
    return node


def structural_problems(schema: JsonDict, *, path: str = "") -> list[str]:
    """Everything that would make the apiserver call `schema` non-structural (empty when fine).

    Used by the tests on the generated CRDs; independent of the converter on purpose.
    """
    problems: list[str] = []
    for bad in ("$ref", "$defs", "title", "anyOf", "oneOf", "allOf", "const", "nullable", "definitions"):
        if bad in schema:
            problems.append(f"{path or '/'}: has {bad}")
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path or '/'}: preserves unknown fields")
    int_or_string = bool(schema.get("x-kubernetes-int-or-string"))
    if "type" not in schema and not int_or_string:
        problems.append(f"{path or '/'}: no type")
    if int_or_string and "type" in schema:
        problems.append(f"{path or '/'}: int-or-string must not have a type")
    kind = schema.get("type")
    if kind == "object":
        if "properties" in schema and "additionalProperties" in schema:
            problems.append(f"{path or '/'}: both properties and additionalProperties")
        if "additionalProperties" in schema and not isinstance(schema["additionalProperties"], dict):
            problems.append(f"{path or '/'}: additionalProperties is not a schema")
        for name in schema.get("required", []):
            if name not in schema.get("properties", {}):
                problems.append(f"{path or '/'}: required {name!r} is not a property")
    elif kind == "array":
        if "items" not in schema:
            problems.append(f"{path or '/'}: array without items")
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "map":
            item = schema.get("items", {})
            for key in schema.get("x-kubernetes-list-map-keys", []):
                if key not in item.get("required", []) and "default" not in item.get("properties", {}).get(
                    key, {}
                ):
                    problems.append(f"{path or '/'}: list-map key {key!r} is neither required nor defaulted")
    elif "properties" in schema or "additionalProperties" in schema:
        problems.append(f"{path or '/'}: properties on a non-object")
    for name, sub in schema.get("properties", {}).items():
        problems.extend(structural_problems(sub, path=f"{path}.{name}"))
    if isinstance(schema.get("additionalProperties"), dict):
        problems.extend(structural_problems(schema["additionalProperties"], path=f"{path}{{}}"))
    if "items" in schema:
        problems.extend(structural_problems(schema["items"], path=f"{path}[]"))
    return problems
