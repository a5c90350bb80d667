"""Bounds on every document the contract reads, so that no input can crash, hang or exhaust a validator.

Manifests, episode requests and results come from people and games we do not trust. Python's own
limits show up as tracebacks far from the cause (`RecursionError` for deep nesting, `ValueError:
Exceeds the limit (4300 digits)` for a giant integer, pydantic's serialization depth), and a size
field such as `tokens.maxItems` turns into work in proportion to its value. So documents are
bounded before anything else looks at them: their size, their nesting depth and the integers in
them. Each breach is a `Problem` at the JSON path where it happens.

JSON text is parsed without unbounded recursion: the nesting depth is measured on the text first
(brackets outside strings), and integers are kept as text until their length is checked.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from coworld_pipeline.contract.bounded_io import FetchError, fetch_bounded, read_regular_file
from coworld_pipeline.contract.problems import ContractError, Problem, json_path

MAX_DOCUMENT_BYTES = 1024 * 1024  # a manifest or an episode request file
MAX_DEPTH = 64  # nesting of objects and arrays; real manifests stay under 15
MAX_INTEGER_DIGITS = 32  # comfortably above 128-bit values; Python refuses str() beyond 4300 digits
MAX_SLOTS = 256  # players of one episode: each is a process or container
MAX_VARIANTS = 1000
MAX_ROLE_ENTRIES = 256  # entries of one role list (player, reporter, ...)
FETCH_DEADLINE_SECONDS = 60.0  # a whole manifest or request download: 1 MiB even over a slow link

# Documents built in-process (a manifest read back from the database, a request assembled by a
# runner) are measured by an estimate of their JSON size; defaults the models add make that a bit
# larger than the uploaded text, hence the slack.
_IN_PROCESS_SIZE_SLACK = 2


def _mib(n: int) -> str:
    return f"{n} bytes (1 MiB)" if n == 1024 * 1024 else f"{n} bytes"


class _HugeInteger:
    """An integer literal too long to convert: kept as its digit count so it can be reported."""

    __slots__ = ("digits",)

    def __init__(self, digits: int):
        self.digits = digits


class _NonFinite:
    """`NaN`, `Infinity` or `-Infinity`: accepted by Python's json module, but not JSON."""

    __slots__ = ("literal",)

    def __init__(self, literal: str):
        self.literal = literal


def _parse_int(text: str) -> int | _HugeInteger:
    digits = len(text.lstrip("-"))
    return _HugeInteger(digits) if digits > MAX_INTEGER_DIGITS else int(text)


# A JSON string literal (the unrolled form matches in linear time).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKETS = re.compile(r"[\[\]{}]")
_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}
_CLOSER = {"[": "]", "{": "}"}
_DEPTH_MARK = "\u0000coworld-depth-limit\u0000"


def text_depth(text: str) -> int:
    """The deepest bracket nesting of JSON text, counting brackets outside string literals."""
    brackets = "".join(_BRACKETS.findall(_STRING.sub("", text)))
    return max(itertools.accumulate(map(_DELTA.__getitem__, brackets)), default=0)


def _path_of_first_too_deep(text: str) -> str:
    """The JSON path of the first value that nests deeper than MAX_DEPTH, or `$` if unknown.

    The text is cut just before that value, the value replaced by a marker and the open containers
    closed; the result nests at most MAX_DEPTH deep, so it parses safely, and the marker's path is
    the answer. Only runs for documents that are already known to be too deep.
    """
    blanked = _STRING.sub(lambda m: " " * len(m.group()), text)
    stack: list[str] = []
    offset = -1
    for match in _BRACKETS.finditer(blanked):
        char = match.group()
        if char in _CLOSER:
            if len(stack) == MAX_DEPTH:
                offset = match.start()
                break
            stack.append(char)
        elif stack:
            stack.pop()
    if offset < 0:
        return "$"
    truncated = text[:offset] + json.dumps(_DEPTH_MARK) + "".join(_CLOSER[c] for c in reversed(stack))
    try:
        data = json.loads(truncated)
    except (ValueError, RecursionError):
        return "$"
    todo: list[tuple[Any, list[Any]]] = [(data, [])]
    while todo:
        node, parts = todo.pop()
        if node == _DEPTH_MARK:
            return json_path(parts)
        if isinstance(node, dict):
            todo += [(v, [*parts, k]) for k, v in node.items()]
        elif isinstance(node, list):
            todo += [(v, [*parts, i]) for i, v in enumerate(node)]
    return "$"


def parse_json_text(text: str | bytes, subject: str) -> Any:
    """Decode a JSON document within the bounds above; raise ContractError naming each breach."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_DOCUMENT_BYTES:
        raise ContractError(
            subject, [Problem("$", f"the document is {_mib(size)}; at most {_mib(MAX_DOCUMENT_BYTES)}")]
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ContractError(subject, [Problem("$", f"not UTF-8 text: {err}")]) from None
    depth = text_depth(text)
    if depth > MAX_DEPTH:
        raise ContractError(
            subject,
            [
                Problem(
                    _path_of_first_too_deep(text),
                    f"nesting is {depth} levels deep here or below; at most {MAX_DEPTH} levels are allowed",
                )
            ],
        )
    try:
        data = json.loads(text, parse_int=_parse_int, parse_constant=_NonFinite)
    except json.JSONDecodeError as err:
        raise ContractError(
            subject, [Problem("$", f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}")]
        ) from None
    except RecursionError:  # not reachable after the depth check; kept so no input can trace back
        raise ContractError(subject, [Problem("$", "nesting too deep to parse")]) from None
    problems = bounds_problems(data, measure_size=False)
    if problems:
        raise ContractError(subject, problems)
    return data


def _scalar_problem(value: Any) -> tuple[str | None, int]:
    """(what is wrong with a scalar, or None; its approximate JSON size)."""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return "contains an unpaired UTF-16 surrogate (not valid Unicode text)", len(value)
        return None, len(value) + 2
    if isinstance(value, bool) or value is None:
        return None, 5
    if isinstance(value, int):
        digits = math.ceil(value.bit_length() * math.log10(2)) if value else 1
        if digits > MAX_INTEGER_DIGITS + 1:  # bit_length over-estimates by at most one digit
            return f"an integer of about {digits} digits; at most {MAX_INTEGER_DIGITS} digits", digits
        return None, digits
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"{value} is not a JSON number", 8
        return None, 24
    if isinstance(value, _HugeInteger):
        return f"an integer of {value.digits} digits; at most {MAX_INTEGER_DIGITS} digits", value.digits
    if isinstance(value, _NonFinite):
        return f"{value.literal} is not a JSON number", 8
    return None, 8  # other Python objects (built in-process) are the models' business


def bounds_problems(data: Any, root: str = "$", measure_size: bool = True) -> list[Problem]:
    """Depth, integer size, non-finite numbers, invalid text and (in-process) size, without recursion.

    Each node's path is built only when there is something to report, so a large valid document
    costs one pass over its values.
    """
    problems: list[Problem] = []
    size = 0
    # (node, parent entry index or -1, key within parent, depth); parents kept to rebuild paths.
    entries: list[tuple[int, Any]] = []

    def path_of(index: int, key: Any) -> str:
        parts = [key]
        while index >= 0:
            index, parent_key = entries[index]
            parts.append(parent_key)
        parts.reverse()
        return json_path(parts[1:], root)

    todo: list[tuple[Any, int, Any, int]] = [(data, -1, None, 0)]
    while todo and len(problems) < 20:
        node, parent, key, depth = todo.pop()
        if isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                problems.append(Problem(path_of(parent, key), f"nested deeper than {MAX_DEPTH} levels"))
                continue
            entries.append((parent, key))
            me = len(entries) - 1
            size += 2 + len(node)
            if isinstance(node, dict):
                for k, v in node.items():
                    size += len(k) + 3 if isinstance(k, str) else 8
                    todo.append((v, me, k, depth + 1))
            else:
                todo += [(v, me, i, depth + 1) for i, v in enumerate(node)]
            continue
        message, cost = _scalar_problem(node)
        size += cost
        if message:
            problems.append(Problem(path_of(parent, key), message))
    if measure_size and size > MAX_DOCUMENT_BYTES * _IN_PROCESS_SIZE_SLACK:
        problems.append(
            Problem(root, f"the document is about {_mib(size)} as JSON; at most {_mib(MAX_DOCUMENT_BYTES)}")
        )
    return problems


def read_json_document(ref: str | Path, what: str) -> Any:
    """Read JSON from a local path, file:// or http(s):// URI, with problems instead of tracebacks.

    At most MAX_DOCUMENT_BYTES are read (a larger document is refused without being read whole),
    and the text is decoded within the bounds of `limits`.
    """
    text_ref = str(ref)
    subject = f"{what} {text_ref}"
    parsed = urlparse(text_ref)
    try:
        if parsed.scheme in ("http", "https"):
            raw = fetch_bounded(text_ref, MAX_DOCUMENT_BYTES, FETCH_DEADLINE_SECONDS)
        else:
            path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(text_ref)
            raw = read_regular_file(path, MAX_DOCUMENT_BYTES)
    except FetchError as err:
        raise ContractError(subject, [Problem("$", f"cannot fetch: {err}")]) from None
    except (OSError, ValueError) as err:  # NotRegularFile included: a FIFO would block the open
        raise ContractError(subject, [Problem("$", f"cannot read: {err}")]) from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ContractError(
            subject, [Problem("$", f"the document is larger than {MAX_DOCUMENT_BYTES // 1024} KiB (1 MiB)")]
        )
    return parse_json_text(raw, subject)
