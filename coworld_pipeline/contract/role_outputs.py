"""Validation of what supporting roles write (CONTRACT §8): report zips, event logs, grades, advice, plans.

Dagster-free and runtime-free: every function takes bytes (or a path) and either returns the parsed
content or raises `RoleOutputError` whose `reason` is a short machine code and whose message says what
is wrong in one line. Role code is untrusted, so nothing here trusts a size, a name or a type it reads:

* zips: integrity (CRC of every entry), no absolute / drive / ``..`` / backslash entry names, no
  duplicate names, an entry count and a total uncompressed size cap (zip bombs) — `check_zip`;
* the reporter's internal ``manifest.json``: a JSON object whose ``render`` / ``event_log`` name
  entries that exist (``.md``/``.html`` and ``.parquet``) — `validate_report`;
* event logs (parquet): exactly the columns ``ts`` int64, ``player`` int64 (slot, -1 for global),
  ``key`` string, ``value`` string, no nulls, players in range — `validate_event_log`;
* grades: a JSON object with a finite numeric ``score`` (``NaN``/``Infinity`` literals rejected) —
  `validate_grade`;
* diagnoser advice: a zip (optional ``manifest.json``) or a JSON object — `validate_diagnosis`;
* optimizer plans: a JSON object — `validate_plan`.

Usage::

    limits = OutputLimits(max_file_bytes=64 << 20)
    report = validate_report(Path("report.zip").read_bytes(), limits, slot_count=2)
    table = validate_event_log(parquet_bytes, slot_count=2)   # a pyarrow.Table
    grade = validate_grade(Path("grade.json").read_bytes())   # {"score": 0.7, ...}
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

EVENT_LOG_COLUMNS = ("ts", "player", "key", "value")
_STRING_TYPES = ("string", "large_string")


class RoleOutputError(ValueError):
    """A role output that breaks the contract. `reason`: corrupt_zip, unsafe_entry, too_large, ..."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass(frozen=True)
class OutputLimits:
    """Caps on one role run's outputs. Defaults follow the hosted reporter budget (256 MiB)."""

    max_file_bytes: int = 256 << 20  # one output file (zip, parquet, JSON) as written
    max_total_bytes: int = 256 << 20  # everything the role wrote into its output directory
    max_uncompressed_bytes: int = 1 << 30  # the sum of a zip's entries once inflated
    max_entries: int = 10_000  # entries in one zip
    max_log_bytes: int = 10 << 20  # the role's stdout + stderr


@dataclass(frozen=True)
class ReportContents:
    """A validated report zip: its entries, its internal manifest and what that manifest names."""

    names: tuple[str, ...]
    manifest: dict[str, Any]
    reporter_id: str | None
    render: str | None
    event_log: str | None
    event_log_rows: int | None


@dataclass(frozen=True)
class DiagnosisContents:
    """Validated diagnoser output: a zip (entries + optional manifest) or one JSON document."""

    kind: str  # "zip" | "json"
    names: tuple[str, ...]
    manifest: dict[str, Any]
    document: dict[str, Any] | None


def check_size(data: bytes, what: str, limits: OutputLimits) -> None:
    if len(data) > limits.max_file_bytes:
        raise RoleOutputError(
            "too_large", f"{what} is {len(data)} bytes, over the {limits.max_file_bytes}-byte limit"
        )


def unsafe_entry_reason(name: str) -> str | None:
    """Why a zip entry name could escape an extraction directory (zip-slip), or None when it is safe."""
    if not name or "\x00" in name:
        return "is empty or contains a NUL byte"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "contains a '..' component"
    return None


def check_zip(data: bytes, what: str, limits: OutputLimits) -> zipfile.ZipFile:
    """Open `data` as a zip after checking integrity, entry names and sizes; the caller closes it."""
    check_size(data, what, limits)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise RoleOutputError("corrupt_zip", f"{what} is not a readable zip ({exc})") from None
    try:
        infos = archive.infolist()
        if len(infos) > limits.max_entries:
            raise RoleOutputError(
                "too_large", f"{what} has {len(infos)} entries, over the {limits.max_entries} limit"
            )
        seen: set[str] = set()
        total = 0
        for info in infos:
            reason = unsafe_entry_reason(info.filename)
            if reason:
                raise RoleOutputError("unsafe_entry", f"{what} entry {info.filename!r} {reason}")
            if info.filename in seen:
                raise RoleOutputError("unsafe_entry", f"{what} has two entries named {info.filename!r}")
            seen.add(info.filename)
            total += info.file_size
        if total > limits.max_uncompressed_bytes:
            raise RoleOutputError(
                "too_large",
                f"{what} inflates to {total} bytes, over the {limits.max_uncompressed_bytes}-byte limit",
            )
        try:
            # The declared sizes above are only claims: testzip reads every entry and checks its CRC.
            bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            raise RoleOutputError("corrupt_zip", f"{what} cannot be read ({exc})") from None
        if bad is not None:
            raise RoleOutputError("corrupt_zip", f"{what} entry {bad!r} fails its CRC check")
    except BaseException:
        archive.close()
        raise
    return archive


def strict_json(data: bytes, what: str) -> Any:
    """JSON without the NaN/Infinity literals Python's parser accepts by default."""

    def reject(token: str) -> Any:
        raise RoleOutputError("not_json", f"{what} uses the non-standard JSON literal {token}")

    try:
        return json.loads(data.decode("utf-8"), parse_constant=reject)
    except RoleOutputError:
        raise
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, an integer of 4300+ digits
        raise RoleOutputError("not_json", f"{what} is not valid UTF-8 JSON ({exc})") from None


def _json_object(data: bytes, what: str, limits: OutputLimits) -> dict[str, Any]:
    check_size(data, what, limits)
    doc = strict_json(data, what)
    if not isinstance(doc, dict):
        raise RoleOutputError("not_json", f"{what} must be a JSON object, got {type(doc).__name__}")
    return doc


def _zip_manifest(archive: zipfile.ZipFile, what: str) -> dict[str, Any]:
    if "manifest.json" not in archive.namelist():
        return {}
    doc = strict_json(archive.read("manifest.json"), f"{what} manifest.json")
    if not isinstance(doc, dict):
        raise RoleOutputError("bad_manifest", f"{what} manifest.json must be a JSON object")
    return doc


def _named_entry(
    manifest: dict[str, Any], field: str, suffixes: tuple[str, ...], names: set[str], what: str
) -> str | None:
    value = manifest.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or value not in names:
        raise RoleOutputError("bad_manifest", f"{what} manifest.json {field}={value!r} names no entry")
    if not value.lower().endswith(suffixes):
        raise RoleOutputError(
            "bad_manifest", f"{what} manifest.json {field}={value!r} must end in {' or '.join(suffixes)}"
        )
    return value


def validate_event_log(data: bytes, slot_count: int | None = None, what: str = "event log") -> Any:
    """Check a parquet event log's columns, types, nulls and player range; returns the pyarrow Table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as exc:  # pyarrow raises several unrelated types for broken files
        raise RoleOutputError("bad_event_log", f"{what} is not a readable parquet file ({exc})") from None
    names = tuple(table.column_names)
    if names != EVENT_LOG_COLUMNS:
        raise RoleOutputError(
            "bad_event_log", f"{what} has columns {list(names)}; expected exactly {list(EVENT_LOG_COLUMNS)}"
        )
    expected = {"ts": ("int64",), "player": ("int64",), "key": _STRING_TYPES, "value": _STRING_TYPES}
    for name, allowed in expected.items():
        column = table.column(name)
        if str(column.type) not in allowed:
            raise RoleOutputError(
                "bad_event_log", f"{what} column {name!r} is {column.type}, expected {allowed[0]}"
            )
        if column.null_count:
            raise RoleOutputError("bad_event_log", f"{what} column {name!r} has {column.null_count} nulls")
    if table.num_rows:
        import pyarrow.compute as pc

        low, high = pc.min_max(table.column("player")).values()
        high_ok = slot_count is None or high.as_py() < slot_count
        if low.as_py() < -1 or not high_ok:
            bound = f"-1..{slot_count - 1}" if slot_count is not None else ">= -1"
            raise RoleOutputError(
                "bad_event_log",
                f"{what} column 'player' ranges {low.as_py()}..{high.as_py()}; slots must be {bound}",
            )
    return table


def validate_report(data: bytes, limits: OutputLimits, slot_count: int | None = None) -> ReportContents:
    """A reporter's zip: safe entries, a well-formed manifest.json, and a valid event log if it names one."""
    with check_zip(data, "report zip", limits) as archive:
        names = archive.namelist()
        manifest = _zip_manifest(archive, "report zip")
        entries = set(names)
        reporter_id = manifest.get("reporter_id")
        if reporter_id is not None and not isinstance(reporter_id, str):
            raise RoleOutputError("bad_manifest", "report zip manifest.json reporter_id must be a string")
        render = _named_entry(manifest, "render", (".md", ".html"), entries, "report zip")
        event_log = _named_entry(manifest, "event_log", (".parquet",), entries, "report zip")
        rows = None
        if event_log is not None:
            table = validate_event_log(archive.read(event_log), slot_count, f"report zip {event_log}")
            rows = table.num_rows
    return ReportContents(tuple(names), manifest, reporter_id, render, event_log, rows)


def validate_grade(data: bytes, limits: OutputLimits | None = None) -> dict[str, Any]:
    """A grader's JSON: an object whose `score` is a finite number (booleans are not numbers)."""
    doc = _json_object(data, "grade", limits or OutputLimits())
    score = doc.get("score")
    if "score" not in doc:
        raise RoleOutputError("bad_grade", "grade has no 'score'")
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise RoleOutputError("bad_grade", f"grade score {score!r} is not a number")
    try:
        finite = math.isfinite(score)
    except OverflowError:  # an integer beyond any float: 1e308 is the largest finite score
        finite = False
    if not finite:
        shown = f"{score!r}" if isinstance(score, float) else f"of {len(str(abs(score)))} digits"
        raise RoleOutputError("bad_grade", f"grade score {shown} is not a finite number")
    grader_id = doc.get("grader_id")
    if grader_id is not None and not isinstance(grader_id, str):
        raise RoleOutputError("bad_grade", "grade grader_id must be a string")
    return doc


def is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def validate_diagnosis(data: bytes, limits: OutputLimits) -> DiagnosisContents:
    """A diagnoser's advice: a safe zip (optional manifest.json object) or a JSON object."""
    if is_zip(data):
        with check_zip(data, "diagnosis zip", limits) as archive:
            manifest = _zip_manifest(archive, "diagnosis zip")
            names = tuple(archive.namelist())
        return DiagnosisContents("zip", names, manifest, None)
    try:
        doc = _json_object(data, "diagnosis", limits)
    except RoleOutputError as exc:
        if exc.reason == "not_json":
            raise RoleOutputError("corrupt_zip", "diagnosis is neither a zip nor a JSON object") from None
        raise
    return DiagnosisContents("json", (), {}, doc)


def validate_plan(data: bytes, limits: OutputLimits) -> dict[str, Any]:
    """An optimizer's plan: one JSON object (its fields are the optimizer's own)."""
    return _json_object(data, "optimizer plan", limits)
