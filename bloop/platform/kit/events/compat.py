"""Which schema changes would break a consumer written against the older schema.

Within one version an event may only grow: new optional fields, wider enums. Removing a field,
changing its type, making it required, or narrowing what it accepts needs a new version (`.v2`).
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _resolve(schema: Schema, root: Schema) -> Schema:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _resolve(root["$defs"][ref.removeprefix("#/$defs/")], root)
    if "const" in schema and "enum" not in schema:
        return {**schema, "enum": [schema["const"]]}
    return schema


def _types(schema: Schema, root: Schema) -> set[str]:
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        out: set[str] = set()
        for option in schema["anyOf"]:
            out |= _types(option, root)
        return out
    t = schema.get("type")
    if isinstance(t, list):
        return set(t)
    if isinstance(t, str):
        return {t}
    if "enum" in schema or "const" in schema:
        return {"enum"}
    return {"any"}


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Every way in which data valid under `old` might be invalid or mean otherwise under `new`,
    or in which `new` data drops what an `old` consumer reads."""
    return _compare(old, new, old, new, "data")


def _compare(old: Schema, new: Schema, old_root: Schema, new_root: Schema, path: str) -> list[str]:
    old, new = _resolve(old, old_root), _resolve(new, new_root)
    problems: list[str] = []
    old_types, new_types = _types(old, old_root), _types(new, new_root)
    if "any" not in new_types and not old_types <= new_types | {"enum"}:
        problems.append(f"{path}: type changed from {sorted(old_types)} to {sorted(new_types)}")
    if "enum" in old and "enum" in new and not set(old["enum"]) <= set(new["enum"]):
        problems.append(f"{path}: enum lost {sorted(set(old['enum']) - set(new['enum']), key=str)}")
    if "enum" not in old and "enum" in new:
        problems.append(f"{path}: now restricted to {new['enum']}")
    old_props: Schema = old.get("properties", {})
    new_props: Schema = new.get("properties", {})
    for name in old_props:
        if name not in new_props:
            problems.append(f"{path}.{name}: removed (older consumers read it)")
        else:
            problems += _compare(old_props[name], new_props[name], old_root, new_root,
                                 f"{path}.{name}")
    newly_required = set(new.get("required", [])) - set(old.get("required", []))
    for name in sorted(newly_required):
        problems.append(f"{path}.{name}: became required (older producers omit it)")
    if old.get("additionalProperties", True) is not False and new.get("additionalProperties") is False:
        problems.append(f"{path}: no longer accepts additional properties")
    if "items" in old and "items" in new:
        problems += _compare(old["items"], new["items"], old_root, new_root, f"{path}[]")
    for bound in ("maxLength", "maximum", "maxItems"):
        if bound in new and (bound not in old or new[bound] < old[bound]):
            problems.append(f"{path}: {bound} narrowed to {new[bound]}")
    for bound in ("minLength", "minimum", "minItems"):
        if bound in new and (bound not in old or new[bound] > old[bound]):
            problems.append(f"{path}: {bound} narrowed to {new[bound]}")
    return problems
