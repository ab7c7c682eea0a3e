"""Which schema changes would break a consumer on either side of a rolling upgrade.

While two versions share the bus (README "Upgrades"), an older consumer reads what a newer
producer wrote (forward) and a newer consumer what an older producer wrote, still in the log or
sent back by `bloop events redrive` (backward). Within one version of a type, the data either
side writes must be valid for the other, and mean the same. So an event may only gain optional
fields where consumers ignore fields they do not know (pydantic's default), and its annotations
may change; anything else needs a new type (`.v2`).

Keyword by keyword, for those the committed schemas use (and the others pydantic writes):
- `$ref`, `$defs`: a reference is compared as the definition it names.
- `type`, `anyOf`: the same JSON types, `null` included (a field made nullable is refused by
  older consumers, one no longer nullable by newer ones; `integer` counts as a `number`). The
  options of an `anyOf` are compared type by type.
- `enum`, `const`: the same values (a value added is refused by older consumers, one removed by
  newer ones); a field that gains or loses an enum changes too.
- `properties`: none removed (older consumers read it); one added only where older consumers
  ignore unknown fields (not under `additionalProperties: false`); each compared with its
  counterpart.
- `required`: the same among the fields both have: a field newly required may be missing from
  what older producers wrote, one no longer required from what newer producers write.
- `additionalProperties`: absent with `properties` (unknown fields ignored, none sent), `false`
  (unknown fields refused) or the schema of the values of other keys (a dict's: `true` is any
  value). Closing an object breaks, and so does opening a closed one to other keys; value
  schemas are compared as fields are; values no longer read break.
- `items`: compared as fields are (absent is any value).
- `minLength`, `maxLength`, `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`,
  `minItems`, `maxItems`, `minProperties`, `maxProperties`: the same (a tighter bound refuses
  what older producers wrote, a looser one admits what older consumers refuse).
- `pattern`, `format`, `multipleOf`, `uniqueItems`: the same (expressions and formats are not
  compared for inclusion, and consumers validate formats such as `date-time` and `uuid`).
- `title`, `description`, `default`, `examples`, `$id`, `$schema`, `$comment`, `deprecated`,
  `readOnly`, `writeOnly`: annotations, free to change.
- Any other keyword (`oneOf`, `allOf`, `not`, `prefixItems`, `patternProperties`,
  `discriminator`, ...): unchanged, compared as written.
"""

from __future__ import annotations

import json
from typing import Any

Schema = dict[str, Any]

ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$id", "$schema",
                         "$comment", "deprecated", "readOnly", "writeOnly", "$defs"})
UPPER_BOUNDS = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
LOWER_BOUNDS = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")
EXACT = ("pattern", "format", "multipleOf", "uniqueItems")
COMPARED = frozenset({"type", "anyOf", "enum", "const", "properties", "required",
                      "additionalProperties", "items", "$ref",
                      *UPPER_BOUNDS, *LOWER_BOUNDS, *EXACT})
IGNORED, CLOSED = "ignored", "closed"  # unknown fields ignored, or refused
OLDER_CONSUMERS = "older consumers refuse what it now admits"
NEWER_CONSUMERS = "it refuses what older producers wrote"


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Every way in which data valid under `old` might be invalid or mean otherwise under `new`
    (for newer consumers), or data valid under `new` invalid under `old` (for older ones)."""
    return _Diff(old, new).compare(old, new, "data", frozenset())


def _others_changed(old: Schema, new: Schema, path: str) -> list[str]:
    """The keywords not compared by meaning (`pattern`, `format`, `const`, ...), as written."""
    return [f"{path}: {kw} changed (compared as written)"
            for kw in sorted((set(old) | set(new)) - COMPARED - ANNOTATIONS)
            if _canon(old.get(kw)) != _canon(new.get(kw))]


def _canon(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    for py, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                     (list, "array"), (dict, "object")):
        if isinstance(value, py):
            return name
    return "any"


def _enum(schema: Schema) -> list[Any] | None:
    if "enum" in schema:
        return list(schema["enum"])
    return [schema["const"]] if "const" in schema else None


def _kind(option: Schema) -> str:
    t = option.get("type")
    if isinstance(t, str):
        return t
    values = _enum(option)
    kinds = {_json_type(v) for v in values} if values is not None else set()
    return kinds.pop() if len(kinds) == 1 else "any"


def _covers(kinds: set[str], kind: str) -> bool:
    return "any" in kinds or kind in kinds or (kind == "integer" and "number" in kinds)


def _type_change(old: set[str], new: set[str], path: str) -> list[str]:
    gained = sorted(k for k in new if not _covers(old, k))
    lost = sorted(k for k in old if not _covers(new, k))
    if not gained and not lost:
        return []
    why = ([f"older consumers refuse {', '.join(gained)}"] if gained else []) + (
        [f"newer consumers refuse {', '.join(lost)}"] if lost else [])
    return [f"{path}: type changed from {sorted(old)} to {sorted(new)} ({'; '.join(why)})"]


def _extra(schema: Schema) -> Schema | str:
    """What an object does with keys beyond its properties: IGNORED, CLOSED or their schema."""
    extra = schema.get("additionalProperties")
    if extra is False:
        return CLOSED
    if extra is None:
        return IGNORED if "properties" in schema else {}
    return {} if extra is True else extra


def _bounds(old: Schema, new: Schema, path: str) -> list[str]:
    problems: list[str] = []
    for kw in (*UPPER_BOUNDS, *LOWER_BOUNDS):
        was, now = old.get(kw), new.get(kw)
        if was == now:
            continue
        if now is None:
            problems.append(f"{path}: {kw} {was} dropped ({OLDER_CONSUMERS})")
        elif was is None or (now < was if kw in UPPER_BOUNDS else now > was):
            problems.append(f"{path}: {kw} narrowed to {now} ({NEWER_CONSUMERS})")
        else:
            problems.append(f"{path}: {kw} widened to {now} ({OLDER_CONSUMERS})")
    for kw in EXACT:
        was, now = old.get(kw), new.get(kw)
        if was != now:
            why = (NEWER_CONSUMERS if was is None else OLDER_CONSUMERS if now is None
                   else "each refuses what the other admits")
            problems.append(f"{path}: {kw} changed from {was!r} to {now!r} ({why})")
    return problems


def _enum_change(old: Schema, new: Schema, path: str) -> list[str]:
    was, now = _enum(old), _enum(new)
    if was is None and now is None:
        return []
    if was is None:
        return [f"{path}: now restricted to {now} ({NEWER_CONSUMERS})"]
    if now is None:
        return [f"{path}: no longer restricted to {was} ({OLDER_CONSUMERS})"]
    was_keys, now_keys = {_canon(v) for v in was}, {_canon(v) for v in now}
    gained = sorted((v for v in now if _canon(v) not in was_keys), key=str)
    lost = sorted((v for v in was if _canon(v) not in now_keys), key=str)
    return ([f"{path}: enum gained {gained} (older consumers refuse it)"] if gained else []) + (
        [f"{path}: enum lost {lost} ({NEWER_CONSUMERS})"] if lost else [])


class _Diff:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root, self.new_root = old_root, new_root

    def options(self, schema: Schema, root: Schema) -> list[Schema]:
        """The schema's alternatives, each of one type, references resolved."""
        schema = _resolve(schema, root)
        if "anyOf" in schema:
            return [o for option in schema["anyOf"] for o in self.options(option, root)]
        t = schema.get("type")
        if isinstance(t, list):
            return [{**schema, "type": one} for one in t]
        return [schema]

    def compare(self, old: Schema, new: Schema, path: str,
                seen: frozenset[tuple[int, int]]) -> list[str]:
        old_options, new_options = self.options(old, self.old_root), self.options(new, self.new_root)
        if len(old_options) == 1 and len(new_options) == 1:
            return self.compare_one(old_options[0], new_options[0], path, seen)
        old_by: dict[str, list[Schema]] = {}
        new_by: dict[str, list[Schema]] = {}
        for options, by in ((old_options, old_by), (new_options, new_by)):
            for option in options:
                by.setdefault(_kind(option), []).append(option)
        problems = _type_change(set(old_by), set(new_by), path)
        for kind in sorted(set(old_by) & set(new_by)):
            was, now = old_by[kind], new_by[kind]
            if len(was) == len(now) == 1:
                problems += self.compare_one(was[0], now[0], path, seen)
            elif _canon(was) != _canon(now):
                problems.append(f"{path}: its {kind} options changed (compared as written)")
        old, new = _resolve(old, self.old_root), _resolve(new, self.new_root)
        return problems + _others_changed(old, new, path)

    def compare_one(self, old: Schema, new: Schema, path: str,
                    seen: frozenset[tuple[int, int]]) -> list[str]:
        if (id(old), id(new)) in seen:  # a recursive model, already being compared
            return []
        seen |= {(id(old), id(new))}
        old_kind, new_kind = _kind(old), _kind(new)
        problems = _type_change({old_kind}, {new_kind}, path)
        if problems and not (_covers({old_kind}, new_kind) or _covers({new_kind}, old_kind)):
            return problems
        problems += _enum_change(old, new, path)
        problems += _bounds(old, new, path)
        if any(_is_object(s) for s in (old, new)):
            problems += self.compare_objects(old, new, path, seen)
        if "items" in old or "items" in new:
            problems += self.compare(old.get("items", {}), new.get("items", {}), f"{path}[]", seen)
        return problems + _others_changed(old, new, path)

    def compare_objects(self, old: Schema, new: Schema, path: str,
                        seen: frozenset[tuple[int, int]]) -> list[str]:
        problems: list[str] = []
        old_props: Schema = old.get("properties", {})
        new_props: Schema = new.get("properties", {})
        old_extra, new_extra = _extra(old), _extra(new)
        for name, prop in old_props.items():
            if name not in new_props:
                problems.append(f"{path}.{name}: removed (older consumers read it)")
            else:
                problems += self.compare(prop, new_props[name], f"{path}.{name}", seen)
        for name, prop in new_props.items():
            if name in old_props:
                continue
            if old_extra == CLOSED:
                problems.append(f"{path}.{name}: added where older consumers refuse unknown fields")
            elif isinstance(old_extra, dict):
                problems += self.compare(old_extra, prop, f"{path}.{name}", seen)
        was_required, now_required = set(old.get("required", [])), set(new.get("required", []))
        for name in sorted(now_required - was_required):
            problems.append(f"{path}.{name}: became required (older producers may omit it)")
        for name in sorted((was_required - now_required) & set(new_props)):
            problems.append(f"{path}.{name}: no longer required (older consumers require it)")
        if old_extra != CLOSED and new_extra == CLOSED:
            problems.append(f"{path}: no longer accepts additional properties")
        elif old_extra == CLOSED and isinstance(new_extra, dict):
            problems.append(f"{path}: now carries other keys ({OLDER_CONSUMERS})")
        elif isinstance(old_extra, dict) and new_extra == IGNORED:
            problems.append(f"{path}: its other keys are no longer read")
        elif isinstance(old_extra, dict) and isinstance(new_extra, dict):
            problems += self.compare(old_extra, new_extra, f"{path}.*", seen)
        return problems


def _is_object(schema: Schema) -> bool:
    return schema.get("type") == "object" or "properties" in schema or "additionalProperties" in schema


def _resolve(schema: Schema, root: Schema) -> Schema:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _resolve(root["$defs"][ref.removeprefix("#/$defs/")], root)
    return schema
