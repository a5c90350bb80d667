"""Manifest fields that newer Coworld generations add (reference 0.1.64, EVOLUTION.md §2).

They are modelled so that a 0.1.64 manifest validates unchanged and a wrong shape is an error at its
JSON path. The runtime acts on `startup`, `resources`, `episode_timeout_minutes` and `replay_viewer`;
the others (hosted-only features: memory, promo, achievements, log panels, task environments) are
kept as given, so converting or re-uploading a manifest loses nothing.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

API_VERSION_V1 = "coworld.softmax.com/v1"
DEFAULT_STARTUP_PATH = "/healthz"
MAX_STARTUP_SECONDS = 1200


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


_CPU = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
_MEMORY = re.compile(r"^\d+(\.\d+)?([KMGTP]i?|[kmgtp]|[eE]\d+)?$")


def cpu_cores(text: str) -> float:
    """Kubernetes CPU quantity ("2", "0.5", "500m") as cores."""
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory_bytes(text: str) -> int:
    """Kubernetes memory quantity ("512Mi", "2Gi", "1G", "1048576") as bytes."""
    units = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
    match = re.match(r"^(\d+(?:\.\d+)?)([KMGTPkmgtp])?(i)?$", text)
    if not match:
        return int(float(text))
    number, unit, binary = match.groups()
    if unit is None:
        return int(float(number))
    power = "KMGTP".index(unit.upper()) + 1
    return int(float(number) * (1024**power if binary else units[unit.upper()]))


MAX_CPU_CORES = 1024
MAX_MEMORY_BYTES = 2**50  # 1 PiB: beyond any machine, and "1e999" must not reach int(float(...))


class ResourceAmounts(_Strict):
    cpu: str | None = Field(default=None, pattern=_CPU.pattern, max_length=32)
    memory: str | None = Field(default=None, pattern=_MEMORY.pattern, max_length=32)

    @field_validator("cpu")
    @classmethod
    def _sane_cpu(cls, value: str | None) -> str | None:
        if value is not None and not cpu_cores(value) <= MAX_CPU_CORES:
            raise ValueError(f"{value} is more than {MAX_CPU_CORES} cores")
        return value

    @field_validator("memory")
    @classmethod
    def _sane_memory(cls, value: str | None) -> str | None:
        try:
            too_big = value is not None and memory_bytes(value) > MAX_MEMORY_BYTES
        except OverflowError:
            too_big = True
        if too_big:
            raise ValueError(f"{value} is more than {MAX_MEMORY_BYTES} bytes (1 PiB)")
        return value


class ResourceRequests(ResourceAmounts):
    gpu: int | None = Field(default=None, ge=1, le=1)
    instance_type: str | None = Field(
        default=None, alias="instance-type", pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$"
    )
    ephemeral_storage: str | None = Field(default=None, alias="ephemeral-storage")


class Resources(_Strict):
    """What a runnable asks for (`requests`) and may use at most (`limits`)."""

    requests: ResourceRequests | None = None
    limits: ResourceAmounts | None = None

    @model_validator(mode="after")
    def _limits_not_below_requests(self) -> Resources:
        if self.requests is None or self.limits is None:
            return self
        if (
            self.requests.cpu
            and self.limits.cpu
            and cpu_cores(self.limits.cpu) < cpu_cores(self.requests.cpu)
        ):
            raise ValueError(f"limits.cpu {self.limits.cpu} is below requests.cpu {self.requests.cpu}")
        if (
            self.requests.memory
            and self.limits.memory
            and memory_bytes(self.limits.memory) < memory_bytes(self.requests.memory)
        ):
            raise ValueError(
                f"limits.memory {self.limits.memory} is below requests.memory {self.requests.memory}"
            )
        return self

    def effective(self) -> tuple[float | None, int | None]:
        """CPU cores and memory bytes to enforce: the limit, else the request (as the reference runner)."""
        cpu = (self.limits and self.limits.cpu) or (self.requests and self.requests.cpu)
        memory = (self.limits and self.limits.memory) or (self.requests and self.requests.memory)
        return (cpu_cores(cpu) if cpu else None, memory_bytes(memory) if memory else None)


class Startup(_Strict):
    """Where a runnable serves and how long it may take to become healthy."""

    port: int = Field(ge=1024, le=65535)
    path: str = Field(default=DEFAULT_STARTUP_PATH, pattern=r"^/")
    timeout_seconds: int = Field(default=MAX_STARTUP_SECONDS, ge=1, le=MAX_STARTUP_SECONDS)


class ReplayViewer(_Strict):
    """A static replay viewer (a directory with index.html) the platform serves next to a replay."""

    bundle: str = Field(min_length=1)
    replay_compression: Literal["gzip"] | None = None
    format_identity: str | None = Field(default=None, min_length=1, max_length=256, pattern=r"^[!-~]+$")


class ReporterReference(_Strict):
    """0.1.64 reporters are references, not images: a registered reporter or a wasm component."""

    reporter: str | None = Field(default=None, min_length=1)
    wasm: str | None = Field(default=None, min_length=1)
    id: str | None = Field(default=None, min_length=1)
    display_name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    attributes: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ReporterReference:
        if (self.reporter is None) == (self.wasm is None):
            raise ValueError("a reporter reference has exactly one of 'reporter' or 'wasm'")
        if self.wasm is not None and (self.id is None or self.attributes is None):
            raise ValueError("a wasm reporter reference needs 'id' and 'attributes'")
        if self.reporter is not None and any(
            v is not None for v in (self.wasm, self.id, self.display_name, self.description, self.attributes)
        ):
            raise ValueError("a platform reporter reference has only the 'reporter' key")
        return self

    @property
    def label(self) -> str:
        return self.reporter or f"wasm:{self.id}"


# ---- reporter implementations ---------------------------------------------------------------
#
# A 0.1.64 reporter entry is a reference to a platform reporter version; the reference platform runs
# it as a registered wasm component. This platform runs reporters as containers, so a package that
# ships its reporter in its own image says, per reference, which argv implements it. The reference
# manifest forbids unknown keys everywhere except inside JSON Schema documents, so the declaration is
# an `x-` annotation keyword of `game.results_schema` (where 0.1.64 itself puts `x-display` hints for
# platform consumers of results; JSON Schema validators ignore unknown keywords):
#
#   "results_schema": {..., "x-coworld-reporters": {
#       "owner/name@1": {"run": ["python", "-m", "pkg.reporter"], "id": "...", "name": "...",
#                        "description": "...", "image": "...", "env": {...}}}}
#
# Everything but `run` is optional: `image` defaults to the game's image, `id` to the reference's
# name. References without an implementation here run nothing on this platform.

REPORTERS_EXTENSION = "x-coworld-reporters"
_PLATFORM_REFERENCE = re.compile(r"^[a-z0-9]+/[a-z0-9][a-z0-9_.-]*@[1-9][0-9]*$")


class ReporterImplementation(_Strict):
    """The container that implements a reporter reference on this platform."""

    run: list[str] = Field(min_length=1)
    id: str | None = Field(default=None, min_length=1)
    name: str | None = Field(default=None, min_length=1)
    description: str | None = Field(default=None, min_length=1)
    image: str | None = Field(default=None, min_length=1)
    env: dict[str, str] = Field(default_factory=dict)


def reporter_name(reference: str) -> str:
    """`owner/name@version` -> `name`."""
    return reference.split("/", 1)[-1].rsplit("@", 1)[0]


def platform_reference(owner: str, name: str) -> str:
    """A valid `owner/name@1` reference from free-form parts (lower-cased, other characters -> '-')."""
    clean = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-._") or "reporter"
    return f"{re.sub(r'[^a-z0-9]+', '', owner.lower()) or 'local'}/{clean}@1"


def reporter_implementations(
    results_schema: dict[str, Any],
) -> tuple[dict[str, ReporterImplementation], list[tuple[list[Any], str]]]:
    """The implementations declared in a results schema, and problems as (path parts, message)."""
    from pydantic import ValidationError

    declared = results_schema.get(REPORTERS_EXTENSION)
    base = ["game", "results_schema", REPORTERS_EXTENSION]
    if declared is None:
        return {}, []
    if not isinstance(declared, dict):
        return {}, [(base, "must be an object: reporter reference -> its container implementation")]
    found: dict[str, ReporterImplementation] = {}
    problems: list[tuple[list[Any], str]] = []
    for reference, spec in declared.items():
        if not _PLATFORM_REFERENCE.match(reference):
            problems.append(([*base, reference], "keys must be platform references 'owner/name@version'"))
            continue
        try:
            found[reference] = ReporterImplementation.model_validate(spec)
        except ValidationError as exc:
            for error in exc.errors():
                problems.append(([*base, reference, *error["loc"]], error["msg"]))
    return found, problems
