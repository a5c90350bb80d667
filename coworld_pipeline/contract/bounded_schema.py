"""JSON Schema checking and validation that always ends, quickly, with problems instead of exceptions.

A manifest's `config_schema` and `results_schema` are written by game authors and evaluated against
configs and results: the stock jsonschema validator would follow a `$ref` loop until Python's
recursion limit, fetch a remote `$ref` over the network, let `^(a+)+$` backtrack for hours, compare
`uniqueItems` pairwise and explore nested `anyOf`/`oneOf` fan-outs exponentially. Here:

- a schema is checked statically first (`schema_problems`): against the 2020-12 meta-schema, every
  `$ref`/`$dynamicRef` resolved (only inside the document and the published meta-schemas, never over
  the network), loops that apply a schema to the same value again (`{"$ref": "#"}`) refused, chains
  of such in-place references bounded, and every `pattern` compiled by RE2;
- validation (`bounded_validator`) matches `pattern`/`patternProperties` with RE2 (linear time), checks
  `uniqueItems` by hashing, and spends a step budget shared by one document's checks (the meta-schema
  checks included), so a schema that is merely expensive or huge ends with a problem, not a hang.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

import re2
import referencing
import referencing.exceptions
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from jsonschema_specifications import REGISTRY as SPECIFICATIONS
from referencing.jsonschema import DRAFT202012

from coworld_pipeline.contract.problems import Problem, json_path, jsonschema_problems

MAX_STEPS = 100_000  # keyword evaluations per document (a real manifest needs a few thousand)
# CPU time (not wall-clock, so a busy machine does not fail a valid manifest), checked every 256 steps.
MAX_SECONDS = 1.0
MAX_IN_PLACE_CHAIN = 32  # schemas applied to one value through $ref/allOf/anyOf/... in a row
MAX_PATTERN_CHARS = 4096
MAX_FORMAT_CHARS = 64 * 1024  # longer values are not handed to format checkers
MAX_SCHEMA_PROBLEMS = 10

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # errors are reported as problems, not logged to stderr


class BudgetExceeded(Exception):
    """Validation spent its step or time budget."""


class _Budget:
    def __init__(self, steps: int, seconds: float):
        self.left = steps
        self.deadline = time.process_time() + seconds

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0 or (self.left % 256 == 0 and time.process_time() > self.deadline):
            raise BudgetExceeded


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("schema_budget", default=None)


@contextlib.contextmanager
def validation_budget(steps: int = MAX_STEPS, seconds: float = MAX_SECONDS) -> Iterator[None]:
    """Share one budget among every validation in this block (one document's checks)."""
    if _BUDGET.get() is not None:  # an enclosing document's budget already applies
        yield
        return
    token = _BUDGET.set(_Budget(steps, seconds))
    try:
        yield
    finally:
        _BUDGET.reset(token)


# ---- RE2 patterns -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    """The RE2 program for a pattern, or the error text when RE2 cannot compile it."""
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"the pattern is {len(pattern)} characters long; at most {MAX_PATTERN_CHARS}"
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as err:
        detail = err.args[0] if err.args else "invalid"
        detail = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        return (
            f"RE2 cannot compile it ({detail}); patterns are matched in linear time, so backreferences "
            "and lookaround are not supported"
        )
    except Exception as err:  # surrogates or other text RE2's wrapper cannot encode
        return f"RE2 cannot compile it ({err})"


def pattern_error(pattern: str) -> str | None:
    compiled = _compiled(pattern)
    return compiled if isinstance(compiled, str) else None


def _search(pattern: str, text: str) -> bool:
    compiled = _compiled(pattern)
    if isinstance(compiled, str):
        raise ValueError(compiled)
    try:
        return compiled.search(text) is not None
    except UnicodeEncodeError:  # an unpaired surrogate: no pattern matches text that is not Unicode
        return False


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- keyword implementations that replace jsonschema's -----------------------------------------


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    try:
        matched = _search(pattern, instance)
    except ValueError as err:
        yield ValidationError(f"pattern {_short(pattern)} cannot be evaluated: {err}")
        return
    if not matched:
        yield ValidationError(f"{_short(instance)} does not match {_short(pattern)}")


def _matching_patterns(schema: dict[str, Any], key: str) -> list[str]:
    return [p for p in (schema.get("patternProperties") or {}) if _compiled_matches(p, key)]


def _compiled_matches(pattern: str, key: str) -> bool:
    try:
        return _search(pattern, key)
    except ValueError:
        return False


def _pattern_properties(
    validator: Any, patterns: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        if pattern_error(pattern):
            yield ValidationError(f"pattern {_short(pattern)} cannot be evaluated: {pattern_error(pattern)}")
            continue
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional(instance: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    declared = schema.get("properties") or {}
    return [k for k in instance if k not in declared and not _matching_patterns(schema, k)]


def _additional_properties(validator: Any, ap: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    extras = _additional(instance, schema)
    if validator.is_type(ap, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], ap, path=extra)
    elif ap is False and extras:
        shown = ", ".join(_short(e, 40) for e in sorted(extras)[:10])
        more = f" and {len(extras) - 10} more" if len(extras) > 10 else ""
        yield ValidationError(f"additional properties are not allowed ({shown}{more} unexpected)")


def _evaluated_keys(validator: Any, instance: dict[str, Any], schema: Any, depth: int = 0) -> set[str]:
    """Keys of `instance` that `schema` evaluates (the annotations unevaluatedProperties reads)."""
    if not isinstance(schema, dict) or depth > 64:
        return set()
    keys: set[str] = set()
    # additionalProperties evaluates every key; so does a nested schema's own unevaluatedProperties
    # (the schema being checked does not count its own, depth 0).
    if "additionalProperties" in schema or (depth and "unevaluatedProperties" in schema):
        return set(instance)
    keys |= {k for k in (schema.get("properties") or {}) if k in instance}
    keys |= {k for k in instance if _matching_patterns(schema, k)}
    for ref_key in ("$ref", "$dynamicRef"):
        if ref_key in schema:
            with contextlib.suppress(referencing.exceptions.Unresolvable):
                resolved = validator._resolver.lookup(schema[ref_key])
                sub = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
                keys |= _evaluated_keys(sub, instance, resolved.contents, depth + 1)
    for dependent, sub in (schema.get("dependentSchemas") or {}).items():
        if dependent in instance:
            keys |= _evaluated_keys(validator, instance, sub, depth + 1)
    for sub in schema.get("allOf") or []:
        keys |= _evaluated_keys(validator, instance, sub, depth + 1)
    for keyword in ("anyOf", "oneOf"):
        for sub in schema.get(keyword) or []:
            if validator.evolve(schema=sub).is_valid(instance):
                keys |= _evaluated_keys(validator, instance, sub, depth + 1)
    if "if" in schema:
        holds = validator.evolve(schema=schema["if"]).is_valid(instance)
        branch = "then" if holds else "else"
        if holds:  # a failed `if` contributes no annotations
            keys |= _evaluated_keys(validator, instance, schema["if"], depth + 1)
        keys |= _evaluated_keys(validator, instance, schema.get(branch), depth + 1)
    return keys


def _unevaluated_properties(validator: Any, up: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    failing = [
        k
        for k in instance
        if k not in evaluated and any(True for _ in validator.descend(instance[k], up, path=k))
    ]
    if failing:
        shown = ", ".join(_short(k, 40) for k in sorted(failing)[:10])
        yield ValidationError(f"unevaluated properties are not allowed ({shown} unexpected)")


def _canonical(value: Any) -> str:
    """One text per JSON value, equal for values JSON Schema calls equal (1 == 1.0, true != 1)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) and not value.is_integer() else str(int(value))
    if isinstance(value, list):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k) + ":" + _canonical(v) for k, v in sorted(value.items())) + "}"
    return repr(value)


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[str] = set()
    for i, item in enumerate(instance):
        key = _canonical(item)
        if key in seen:
            yield ValidationError(f"items must be unique: item {i} repeats an earlier one")
            return
        seen.add(key)


def _spending(fn: Any) -> Any:
    """A keyword function that first spends one step of the current budget."""

    def keyword(validator: Any, value: Any, instance: Any, schema: Any) -> Iterable[ValidationError]:
        budget = _BUDGET.get()
        if budget is not None:
            budget.spend()
        return fn(validator, value, instance, schema) or ()

    return keyword


_REPLACED = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "unevaluatedProperties": _unevaluated_properties,
    "uniqueItems": _unique_items,
}

BoundedValidator = validators.extend(
    Draft202012Validator,
    validators={k: _spending(v) for k, v in {**Draft202012Validator.VALIDATORS, **_REPLACED}.items()},
)


def _format_checker() -> FormatChecker:
    checker = FormatChecker()

    def capped(func: Any) -> Any:
        def check(instance: Any) -> bool:
            if isinstance(instance, str) and len(instance) > MAX_FORMAT_CHARS:
                return False  # too long to be a date, an address or a pointer anyway
            return func(instance)

        return check

    for name, (func, raises) in list(checker.checkers.items()):
        checker.checkers[name] = (capped(func), raises)
    checker.checkers["regex"] = (
        lambda instance: not isinstance(instance, str) or not pattern_error(instance),
        (),
    )
    return checker


FORMAT_CHECKER = _format_checker()
# Only the published meta-schemas resolve besides the document itself: no remote retrieval.
_OFFLINE = referencing.Registry()


def bounded_validator(schema: Any) -> Any:
    return BoundedValidator(schema, format_checker=FORMAT_CHECKER, registry=_OFFLINE)


def validation_problems(schema: Any, instance: Any, root: str, where: str | None = None) -> list[Problem]:
    """Problems of `instance` under `schema`, within the current budget (one of its own if none)."""
    with validation_budget():
        try:
            errors = list(bounded_validator(schema).iter_errors(instance))
        except BudgetExceeded:
            return [
                Problem(
                    root,
                    f"checking this value against {where or 'its schema'} exceeded the validation budget "
                    f"({MAX_STEPS} steps or {MAX_SECONDS:g} s of CPU): simplify nested anyOf/oneOf/$ref",
                )
            ]
        except RecursionError:
            return [Problem(root, f"{where or 'the schema'} nests too deeply to check this value")]
        except referencing.exceptions.Unresolvable as err:
            return [Problem(root, f"{where or 'the schema'} has a $ref that does not resolve: {err}")]
    return jsonschema_problems(errors, root)


# ---- static checks of a schema ------------------------------------------------------------------

_ONE = ("additionalProperties", "propertyNames", "items", "contains", "not", "if", "then", "else",
        "unevaluatedItems", "unevaluatedProperties", "contentSchema")  # fmt: skip
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems")
_NAMED = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
# Keywords that apply their subschemas to the same value: a cycle through these never ends.
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_MANY = ("allOf", "anyOf", "oneOf")


def _subschemas(node: dict[str, Any]) -> Iterator[tuple[list[Any], Any, bool]]:
    """(relative path, subschema, applies in place) for each subschema keyword of a schema object."""
    for key in _ONE:
        if key in node:
            yield [key], node[key], key in _IN_PLACE_ONE
    for key in _MANY:
        if isinstance(node.get(key), list):
            for i, sub in enumerate(node[key]):
                yield [key, i], sub, key in _IN_PLACE_MANY
    for key in _NAMED:
        if isinstance(node.get(key), dict):
            for name, sub in node[key].items():
                yield [key, name], sub, key == "dependentSchemas"


_VOCABULARIES = (
    *("core", "applicator", "unevaluated", "validation", "meta-data", "format-annotation", "content"),
)


def _flat_meta_schema() -> dict[str, Any]:
    """The 2020-12 meta-schema as one document: its vocabularies merged, `$dynamicRef: #meta` as `$ref: #`.

    Schemas here never extend the meta-schema (no `$dynamicAnchor: meta` of their own), so the
    dynamic reference always lands on the meta-schema root; resolved statically, checking a schema is
    several times faster than through the dynamic scope, which matters at thousands of checks.
    """
    base = "https://json-schema.org/draft/2020-12/"
    top = SPECIFICATIONS.contents(base + "schema")
    properties: dict[str, Any] = dict(top["properties"])
    defs: dict[str, Any] = {}
    for name in _VOCABULARIES:
        vocabulary = SPECIFICATIONS.contents(f"{base}meta/{name}")
        properties.update(vocabulary.get("properties", {}))
        defs.update(vocabulary.get("$defs", {}))
    flat = {"type": ["object", "boolean"], "properties": properties, "$defs": defs}
    text = json.dumps(flat).replace('"$dynamicRef": "#meta"', '"$ref": "#"')
    text = re2.sub(r'"\$ref": "meta/[a-z-]+#/\$defs/', '"$ref": "#/$defs/', text)
    return json.loads(text)


_FLAT_META_SCHEMA = _flat_meta_schema()


# Meta-schema answers by schema digest (the same manifest is read again for every episode it plays).
_META_CACHE: OrderedDict[tuple[str, str], tuple[Problem, ...]] = OrderedDict()
_META_CACHE_SIZE = 256
_META_LOCK = threading.Lock()


def _meta_problems(schema: Any, path: str) -> list[Problem]:
    """Meta-schema problems; a schema seen before is answered from a small cache keyed by digest."""
    try:
        text = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError):  # not JSON data (built in-process): check it uncached
        return _meta_problems_uncached(schema, path)[0]
    key = (hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(), path)
    with _META_LOCK:
        if key in _META_CACHE:
            _META_CACHE.move_to_end(key)
            return list(_META_CACHE[key])
    problems, complete = _meta_problems_uncached(schema, path)
    if complete:  # a spent budget depends on what else the document asked for: not cached
        with _META_LOCK:
            _META_CACHE[key] = tuple(problems)
            if len(_META_CACHE) > _META_CACHE_SIZE:
                _META_CACHE.popitem(last=False)
    return problems


# The meta-schema check spends the document's budget too: a huge schema costs steps in proportion.
_MetaValidator = validators.extend(
    Draft202012Validator,
    validators={k: _spending(v) for k, v in Draft202012Validator.VALIDATORS.items()},
)


def _meta_problems_uncached(schema: Any, path: str) -> tuple[list[Problem], bool]:
    """(problems, whether the check ran to the end)."""
    validator = _MetaValidator(_FLAT_META_SCHEMA, registry=_OFFLINE)
    with validation_budget():
        try:
            errors = []
            for err in validator.iter_errors(schema):
                errors.append(err)
                if len(errors) >= MAX_SCHEMA_PROBLEMS:
                    break
        except (BudgetExceeded, RecursionError):
            message = (
                f"too large to check against the JSON Schema meta-schema within the validation budget "
                f"({MAX_STEPS} steps or {MAX_SECONDS:g} s of CPU for the whole document)"
            )
            return [Problem(path, message)], False
    problems = [
        Problem(p.path, f"not a valid JSON Schema: {p.message}") for p in jsonschema_problems(errors, path)
    ]
    return problems, True


def schema_problems(schema: Any, path: str) -> list[Problem]:
    """Every reason `schema` cannot be evaluated safely, each at its JSON path under `path`."""
    problems = _meta_problems(schema, path)
    if problems or not isinstance(schema, dict):
        return problems
    resource = DRAFT202012.create_resource(schema)
    root_resolver = SPECIFICATIONS.combine(_OFFLINE).resolver_with_root(resource)
    inside = _containers(schema)
    where: dict[int, str] = {}  # id(schema object) -> its JSON path, for the document's own objects
    edges: dict[int, list[tuple[int, str]]] = {}  # in-place edges: target id, path of the keyword
    todo: list[tuple[Any, list[Any], Any]] = [(schema, [], root_resolver)]
    while todo and len(problems) < MAX_SCHEMA_PROBLEMS:
        node, parts, resolver = todo.pop()
        if not isinstance(node, dict) or id(node) in where:
            continue
        here = json_path(parts, path)
        where[id(node)] = here
        out = edges.setdefault(id(node), [])
        if isinstance(node.get("$id"), str) and parts:
            resolver = resolver.in_subresource(DRAFT202012.create_resource(node))
        for key in ("pattern",):
            if isinstance(node.get(key), str) and pattern_error(node[key]):
                problems.append(
                    Problem(json_path([*parts, key], path), f"pattern {pattern_error(node[key])}")
                )
        for name in node.get("patternProperties") or {}:
            if pattern_error(name):
                name_path = json_path([*parts, "patternProperties", name], path)
                problems.append(Problem(name_path, f"pattern {pattern_error(name)}"))
        for ref_key in ("$ref", "$dynamicRef"):
            ref = node.get(ref_key)
            if not isinstance(ref, str):
                continue
            try:
                resolved = resolver.lookup(ref)
            except referencing.exceptions.Unresolvable as err:
                problems.append(Problem(json_path([*parts, ref_key], path), _unresolvable(ref, err)))
                continue
            target = resolved.contents
            if isinstance(target, dict) and id(target) in inside:  # the meta-schemas are trusted
                out.append((id(target), json_path([*parts, ref_key], path)))
                todo.append((target, inside[id(target)], resolved.resolver))
        for rel, sub, in_place in _subschemas(node):
            if isinstance(sub, dict):
                if in_place:
                    out.append((id(sub), json_path([*parts, *rel], path)))
                todo.append((sub, [*parts, *rel], resolver))
    if problems:
        return problems
    return _loop_problems(edges, where)


def _unresolvable(ref: str, err: Exception) -> str:
    if isinstance(err, referencing.exceptions.PointerToNowhere):
        return f"$ref {_short(ref)} points to nothing in this schema"
    if isinstance(err, referencing.exceptions.NoSuchAnchor):
        return f"$ref {_short(ref)} names an anchor this schema does not define"
    if not ref.startswith("#"):
        return (
            f"$ref {_short(ref)} refers to another document: only references within this schema or to "
            "the published JSON Schema meta-schemas resolve (nothing is fetched)"
        )
    return f"$ref {_short(ref)} does not resolve: {_short(str(err), 200)}"


def _containers(schema: Any) -> dict[int, list[Any]]:
    """id -> path parts of every object and array in the document (targets of JSON pointers)."""
    found: dict[int, list[Any]] = {}
    todo: list[tuple[Any, list[Any]]] = [(schema, [])]
    while todo:
        node, parts = todo.pop()
        found[id(node)] = parts
        if isinstance(node, dict):
            todo += [(v, [*parts, k]) for k, v in node.items() if isinstance(v, dict | list)]
        elif isinstance(node, list):
            todo += [(v, [*parts, i]) for i, v in enumerate(node) if isinstance(v, dict | list)]
    return found


def _loop_problems(edges: dict[int, list[tuple[int, str]]], where: dict[int, str]) -> list[Problem]:
    """A cycle of in-place applications never ends; a long chain of them exhausts the stack."""
    longest: dict[int, int] = {}
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if state.get(start):
            continue
        stack: list[tuple[int, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            node, i = stack[-1]
            out = edges.get(node, [])
            if i < len(out):
                stack[-1] = (node, i + 1)
                target, keyword_path = out[i]
                if state.get(target) == 1:
                    return [
                        Problem(
                            keyword_path,
                            f"loops back to {where.get(target, 'an enclosing schema')} without descending "
                            "into the value: validation would never end",
                        )
                    ]
                if not state.get(target):
                    state[target] = 1
                    stack.append((target, 0))
                continue
            stack.pop()
            state[node] = 2
            longest[node] = 1 + max((longest.get(t, 0) for t, _ in out), default=0)
            if longest[node] > MAX_IN_PLACE_CHAIN:
                return [
                    Problem(
                        where.get(node, "$"),
                        f"applies more than {MAX_IN_PLACE_CHAIN} schemas in a row to one value "
                        "(through $ref, allOf, anyOf, oneOf, not, if/then/else): too deep to evaluate",
                    )
                ]
    return []
