"""Supporting-role runs (CONTRACT §8) on any runtime: reporter, grader, diagnoser, optimizer.

A role run is one untrusted runnable started in the same sandbox as a player (docker: its own
container with the runtime's limits for ``"role"``, on an internal network with no route out; process:
its own process group, killed on every exit path), with a timeout, its stdout/stderr kept under
``<run_dir>/logs/`` and its outputs validated (`coworld_pipeline.contract.role_outputs`) before anyone
reads them. A broken run returns a `RoleOutcome` whose `error` is an `EpisodeFailure` with one of the
``role_*`` error types (blame ``"role"``: infrastructure for a league, retried, never rated); nothing
it did reaches the episode's own workspace, which roles only ever see as a read-only bundle copy.

Usage::

    from coworld_pipeline.runtime import make_runtime
    from coworld_pipeline.runtime.roles import ReportRequest, resolve_role, run_role

    runnable = resolve_role("reporter", manifest)           # first declared, else the built-in default
    outcome = run_role(ReportRequest(Path("ep.zip"), runnable), Path("out/report"), make_runtime("process"))
    if outcome.ok:
        outcome.outputs["report"], outcome.outputs.get("stats"), outcome.stats_rows
    else:
        outcome.error.error_type, outcome.error.message, outcome.logs_dir

Requests (frozen): `ReportRequest(bundle, runnable)`, `GradeRequest(bundle, runnable)`,
`DiagnoseRequest(bundle, runnable, target_slot=None, target_policy=None)`,
`OptimizeRequest(manifest, runnable, reports=(), grades=(), diagnoses=(), policy_workspace_uri=None)`.
Options: `RoleOptions(timeout_seconds, limits: OutputLimits, purpose, default_image, resources)`.

Run directory (``run_dir``, reused: stale inputs/outputs/logs are removed first)::

    input/      read-only to the role (/coworld-input in containers): bundle.zip | manifest.json, reports/ ...
    output/     the role's writable directory (/coworld): report.zip, stats.parquet, grade.json, ...
    logs/       role.stdout.log, role.stderr.log
    role.json   RoleOutcome.summary();  error_info.json when it failed

Outputs by role (env var -> file in output/): reporter ``COGAME_REPORT_URI`` -> report.zip and
``COGAME_REPLAY_STATS_PARQUET_URI`` -> stats.parquet (when the reporter writes only the zip, the event
log its manifest names is extracted to stats.parquet); grader ``COGAME_GRADE_URI`` -> grade.json;
diagnoser ``COGAME_DIAGNOSIS_URI`` -> diagnosis.zip (a JSON document is kept as diagnosis.json);
optimizer ``COGAME_OPTIMIZER_OUTPUT_URI`` -> plan.json.

Manifest references to ``softmax/default-<role>[:tag]`` (which cannot be pulled here) and the CLI's
``default`` resolve to the built-in roles of `coworld_pipeline.runtime.default_roles`: on the host as
``python -m coworld_pipeline.runtime.default_roles.<role>``, in docker inside ``$COWORLD_DEFAULT_ROLE_IMAGE``
(default ``coworld/python-base:bookworm``, Python + pyarrow) with that directory mounted read-only.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coworld_pipeline.contract.role_outputs import (
    DiagnosisContents,
    OutputLimits,
    ReportContents,
    RoleOutputError,
    validate_diagnosis,
    validate_event_log,
    validate_grade,
    validate_plan,
    validate_report,
)
from coworld_pipeline.runtime.base import Launched, LaunchSpec, ResourceLimits, Runtime
from coworld_pipeline.runtime.bundles import bundle_slot_count
from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType
from coworld_pipeline.runtime.role_runnables import (
    DEFAULT_ROLE_IMAGE,
    DEFAULT_ROLES_DIR,
    ROLE_KINDS,
    RoleKind,
    RoleRunnable,
    builtin_role,
    default_reference_kind,
    resolve_role,
)
from coworld_pipeline.runtime.signals import Terminated, shielded

_CONTAINER_ROLES_ROOT = "/opt/coworld-roles"
_CONTAINER_INPUT = "/coworld-input"
_POLL_SECONDS = 0.05


# ---- requests, options, outcomes ----------------------------------------------------------------


@dataclass(frozen=True)
class ReportRequest:
    bundle: Path
    runnable: RoleRunnable


@dataclass(frozen=True)
class GradeRequest:
    bundle: Path
    runnable: RoleRunnable


@dataclass(frozen=True)
class DiagnoseRequest:
    bundle: Path
    runnable: RoleRunnable
    target_slot: int | None = None  # sent as COGAME_TARGET_SLOT and COGAME_TARGET_POLICY_URI=slot:N
    target_policy: str | None = None  # sent as COGAME_TARGET_POLICY_URI when no slot is given


@dataclass(frozen=True)
class OptimizeRequest:
    manifest: Path | Mapping[str, Any]  # the Coworld manifest (file, or its JSON)
    runnable: RoleRunnable
    reports: tuple[Path, ...] = ()
    grades: tuple[Path, ...] = ()
    diagnoses: tuple[Path, ...] = ()
    policy_workspace_uri: str | None = None


RoleRequest = ReportRequest | GradeRequest | DiagnoseRequest | OptimizeRequest


@dataclass(frozen=True)
class RoleOptions:
    timeout_seconds: float = 300.0
    limits: OutputLimits = field(default_factory=OutputLimits)
    purpose: str = "role"  # docker name prefix: coworld-<purpose>-<kind>-<run id>
    default_image: str | None = None  # image of built-ins on docker (else env, else DEFAULT_ROLE_IMAGE)
    # Docker CPU/memory/pids of the role container; None: the runtime's limits for "role"
    # (default 1 CPU, 1 GiB without swap, 512 pids). The process runtime cannot enforce limits.
    resources: ResourceLimits | None = None


@dataclass(frozen=True)
class RoleOutcome:
    kind: RoleKind
    runnable_id: str
    builtin: bool
    run_dir: Path
    run_id: str
    wall_seconds: float
    exit_code: int | None
    outputs: Mapping[str, Path] = field(default_factory=dict)  # validated: report, stats, grade, ...
    error: EpisodeFailure | None = None
    report: ReportContents | None = None
    stats_rows: int | None = None
    grade: Mapping[str, Any] | None = None
    diagnosis: DiagnosisContents | None = None
    plan: Mapping[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def score(self) -> float | None:
        return float(self.grade["score"]) if self.grade else None

    def summary(self) -> dict[str, Any]:
        return {
            "role": self.kind,
            "runnable_id": self.runnable_id,
            "builtin": self.builtin,
            "status": "success" if self.ok else "failed",
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "wall_seconds": round(self.wall_seconds, 3),
            "exit_code": self.exit_code,
            "outputs": {name: str(path) for name, path in self.outputs.items()},
            "logs": {p.name: str(p) for p in sorted(self.logs_dir.glob("*.log"))},
            "error": self.error.to_json() if self.error else None,
            "report": _report_json(self.report),
            "stats_rows": self.stats_rows,
            "grade": dict(self.grade) if self.grade is not None else None,
            "diagnosis": _diagnosis_json(self.diagnosis),
            "plan": dict(self.plan) if self.plan is not None else None,
        }


def _report_json(report: ReportContents | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "reporter_id": report.reporter_id,
        "render": report.render,
        "event_log": report.event_log,
        "entries": list(report.names),
    }


def _diagnosis_json(diagnosis: DiagnosisContents | None) -> dict[str, Any] | None:
    if diagnosis is None:
        return None
    return {"kind": diagnosis.kind, "entries": list(diagnosis.names), "manifest": diagnosis.manifest}


# ---- running ------------------------------------------------------------------------------------


def _kind_of(request: RoleRequest) -> RoleKind:
    return {
        ReportRequest: "reporter",
        GradeRequest: "grader",
        DiagnoseRequest: "diagnoser",
        OptimizeRequest: "optimizer",
    }[type(request)]  # type: ignore[return-value]


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - limit))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _tree_bytes(root: Path) -> int:
    total = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                pass  # written and renamed between the listing and the stat
    return total


def is_episode_workspace(path: Path) -> bool:
    """Whether `path` holds an episode's own files. A role run replaces its input/, output/ and
    logs/: never do that in an episode's workspace."""
    return any((path / name).exists() for name in ("results.json", "episode.json", "replay.json"))


class _RoleRun:
    def __init__(self, request: RoleRequest, run_dir: Path, runtime: Runtime, options: RoleOptions):
        self.request = request
        self.kind = _kind_of(request)
        self.runnable = request.runnable
        if self.runnable.kind != self.kind:
            raise ValueError(f"a {self.runnable.kind} runnable cannot serve a {self.kind} request")
        self.runtime = runtime
        self.options = options
        self.run_dir = Path(run_dir).resolve()
        if is_episode_workspace(self.run_dir):
            raise ValueError(f"{self.run_dir} is an episode workspace, not a role run directory")
        self.input = self.run_dir / "input"
        self.output = self.run_dir / "output"
        self.logs = self.run_dir / "logs"
        self.run_id = secrets.token_hex(8)
        self.exit_code: int | None = None
        self.launched: Launched | None = None
        self.results: dict[str, Any] = {"outputs": {}}

    def fail(self, error: ErrorType, message: str, **details: Any) -> EpisodeFailure:
        details.setdefault("stderr_tail", _tail(self.logs / "role.stderr.log"))
        return EpisodeFailure(error, message, phase=self.kind, details=details)

    # ---- inputs and environment ---------------------------------------------------------------

    def prepare(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for stale in (self.input, self.output, self.logs):
            shutil.rmtree(stale, ignore_errors=True)
            stale.mkdir()
        for name in ("role.json", "error_info.json"):
            (self.run_dir / name).unlink(missing_ok=True)
        request = self.request
        if isinstance(request, OptimizeRequest):
            manifest = request.manifest
            target = self.input / "manifest.json"
            if isinstance(manifest, Mapping):
                target.write_text(json.dumps(manifest, indent=2))
            else:
                shutil.copyfile(manifest, target)
            for group, paths in (
                ("reports", request.reports),
                ("grades", request.grades),
                ("diagnoses", request.diagnoses),
            ):
                (self.input / group).mkdir()
                for index, path in enumerate(paths):
                    shutil.copyfile(path, self.input / group / f"{index:04d}{Path(path).suffix}")
        else:
            shutil.copyfile(request.bundle, self.input / "bundle.zip")

    def env(self, box: Any) -> dict[str, str]:
        def read(name: str) -> str:
            return box.readonly_uri(_CONTAINER_INPUT, self.input, name)

        def write(name: str) -> str:
            return box.workspace_uri(name)

        request = self.request
        rid = self.runnable.id
        env: dict[str, str]
        if isinstance(request, ReportRequest):
            env = {
                "COGAME_REPORT_URI": write("report.zip"),
                "COGAME_REPLAY_STATS_PARQUET_URI": write("stats.parquet"),
                "COGAME_REPORTER_ID": rid,
            }
        elif isinstance(request, GradeRequest):
            env = {"COGAME_GRADE_URI": write("grade.json"), "COGAME_GRADER_ID": rid}
        elif isinstance(request, DiagnoseRequest):
            env = {"COGAME_DIAGNOSIS_URI": write("diagnosis.zip"), "COGAME_DIAGNOSER_ID": rid}
            if request.target_slot is not None:
                env["COGAME_TARGET_SLOT"] = str(request.target_slot)
                env["COGAME_TARGET_POLICY_URI"] = f"slot:{request.target_slot}"
            elif request.target_policy:
                env["COGAME_TARGET_POLICY_URI"] = request.target_policy
        else:
            listed = {
                group: ",".join(read(f"{group}/{p.name}") for p in sorted((self.input / group).iterdir()))
                for group in ("reports", "grades", "diagnoses")
            }
            env = {
                "COWORLD_MANIFEST_URI": read("manifest.json"),
                "COGAME_OPTIMIZER_ID": rid,
                "COGAME_OPTIMIZER_OUTPUT_URI": write("plan.json"),
                "COGAME_REPORT_URIS": listed["reports"],
                "COGAME_GRADER_OUTPUT_URIS": listed["grades"],
                "COGAME_DIAGNOSER_OUTPUT_URIS": listed["diagnoses"],
            }
            if request.policy_workspace_uri:
                env["COGAME_POLICY_WORKSPACE_URI"] = request.policy_workspace_uri
        if not isinstance(request, OptimizeRequest):
            env["COGAME_EPISODE_BUNDLE_URI"] = read("bundle.zip")
        return env

    def launch_spec(self, box: Any) -> LaunchSpec:
        runnable = self.runnable
        image, run = runnable.image, list(runnable.run)
        env = dict(runnable.env)
        readonly = {_CONTAINER_INPUT: self.input}
        if runnable.builtin:
            if self.runtime.name == "docker":
                image = self.options.default_image or os.environ.get(
                    "COWORLD_DEFAULT_ROLE_IMAGE", DEFAULT_ROLE_IMAGE
                )
                readonly[f"{_CONTAINER_ROLES_ROOT}/coworld_default_roles"] = DEFAULT_ROLES_DIR
                run = ["python", "-m", f"coworld_default_roles.{self.kind}"]
                env["PYTHONPATH"] = _CONTAINER_ROLES_ROOT
            else:
                run = ["python", "-m", f"coworld_pipeline.runtime.default_roles.{self.kind}"]
        box.workspace = self.output
        env.update(self.env(box))  # platform values win over the runnable's own env
        return LaunchSpec(
            role="role",
            name=self.kind,
            image=image,
            run=run,
            env=env,
            stdout_path=self.logs / "role.stdout.log",
            stderr_path=self.logs / "role.stderr.log",
            workspace=self.output,
            readonly_dirs=readonly,
            limits=self.options.resources,
        )

    # ---- the run ------------------------------------------------------------------------------

    def wait(self, launched: Launched) -> None:
        limits = self.options.limits
        deadline = time.monotonic() + self.options.timeout_seconds
        while True:
            code = launched.poll()
            if code is not None:
                self.exit_code = code
                return
            written = _tree_bytes(self.output)
            logged = sum(_file_size(p) for p in self.logs.glob("*.log"))
            if written > limits.max_total_bytes or logged > limits.max_log_bytes:
                launched.stop()
                what = "outputs" if written > limits.max_total_bytes else "logs"
                limit = limits.max_total_bytes if what == "outputs" else limits.max_log_bytes
                raise self.fail(
                    ErrorType.ROLE_OUTPUT_TOO_LARGE,
                    f"the {self.kind} wrote more than {limit} bytes of {what}; stopped",
                    reason="too_large",
                )
            if time.monotonic() >= deadline:
                launched.stop()
                raise self.fail(
                    ErrorType.ROLE_TIMEOUT,
                    f"the {self.kind} did not finish within {self.options.timeout_seconds:g} s; stopped",
                )
            time.sleep(_POLL_SECONDS)

    def start_and_wait(self) -> None:
        with self.runtime.sandbox(self.run_id, self.options.purpose) as box:
            spec = self.launch_spec(box)
            try:
                self.runtime.check_image(spec.image)
            except EpisodeFailure as exc:
                if self.runnable.builtin:  # say which knob picks the image the built-ins run in
                    exc.message += "; set COWORLD_DEFAULT_ROLE_IMAGE to a local image with Python and pyarrow"
                raise
            try:
                with shielded():
                    self.launched = launched = box.start(spec)
            except EpisodeFailure as exc:
                if exc.error_type in (ErrorType.IMAGE_MISSING, ErrorType.CONFIG_ERROR):
                    raise
                raise self.fail(ErrorType.ROLE_START_FAILED, exc.message) from None
            self.wait(launched)
            launched.stop()  # docker: joins the log streams, so the logs are complete
        if self.exit_code != 0:
            oom = " (out of memory)" if getattr(self.launched, "oom_killed", False) else ""
            raise self.fail(ErrorType.ROLE_CRASHED, f"the {self.kind} exited with code {self.exit_code}{oom}")

    def read_output(self, name: str, required: bool = True) -> bytes | None:
        path = self.output / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise RoleOutputError("unsafe_entry", f"{name} is not a regular file")
        if not path.exists():
            if required:
                raise self.fail(
                    ErrorType.ROLE_MISSING_OUTPUT, f"the {self.kind} exited 0 but wrote no {name}"
                )
            return None
        size = path.stat().st_size
        if size > self.options.limits.max_file_bytes:
            raise RoleOutputError(
                "too_large",
                f"{name} is {size} bytes, over the {self.options.limits.max_file_bytes}-byte limit",
            )
        return path.read_bytes()

    def validate(self) -> None:
        limits = self.options.limits
        written = _tree_bytes(self.output)
        if written > limits.max_total_bytes:
            raise RoleOutputError(
                "too_large", f"outputs total {written} bytes, over {limits.max_total_bytes}"
            )
        outputs: dict[str, Path] = self.results["outputs"]
        if self.kind == "reporter":
            slot_count = bundle_slot_count((self.input / "bundle.zip").read_bytes())
            data = self.read_output("report.zip")
            assert data is not None
            report = validate_report(data, limits, slot_count)
            outputs["report"] = self.output / "report.zip"
            stats = self.read_output("stats.parquet", required=False)
            if stats is None and report.event_log is not None:
                # The zip's event log was validated above; keep a copy where the stats convention puts it.
                with zipfile.ZipFile(self.output / "report.zip") as archive:
                    stats = archive.read(report.event_log)
                (self.output / "stats.parquet").write_bytes(stats)
            if stats is not None:
                table = validate_event_log(stats, slot_count, "stats parquet")
                outputs["stats"] = self.output / "stats.parquet"
                self.results["stats_rows"] = table.num_rows
            self.results["report"] = report
        elif self.kind == "grader":
            data = self.read_output("grade.json")
            assert data is not None
            self.results["grade"] = validate_grade(data, limits)
            outputs["grade"] = self.output / "grade.json"
        elif self.kind == "diagnoser":
            data = self.read_output("diagnosis.zip")
            assert data is not None
            diagnosis = validate_diagnosis(data, limits)
            path = self.output / "diagnosis.zip"
            if diagnosis.kind == "json":
                path = path.rename(self.output / "diagnosis.json")
            outputs["diagnosis"] = path
            self.results["diagnosis"] = diagnosis
        else:
            data = self.read_output("plan.json")
            assert data is not None
            self.results["plan"] = validate_plan(data, limits)
            outputs["plan"] = self.output / "plan.json"

    def run(self) -> RoleOutcome:
        started = time.monotonic()
        error: EpisodeFailure | None = None
        try:
            self.prepare()
            self.start_and_wait()
            self.validate()
        except RoleOutputError as exc:
            kind = (
                ErrorType.ROLE_OUTPUT_TOO_LARGE
                if exc.reason == "too_large"
                else ErrorType.ROLE_INVALID_OUTPUT
            )
            error = self.fail(kind, exc.message, reason=exc.reason)
        except EpisodeFailure as exc:
            error = exc if exc.phase else EpisodeFailure(exc.error_type, exc.message, phase=self.kind)
        except (KeyboardInterrupt, Terminated) as exc:
            self.finish(started, self.fail(ErrorType.INTERRUPTED, f"interrupted: {exc!r}"))
            raise
        except Exception as exc:  # a platform bug must still leave error_info.json and the logs
            error = self.fail(ErrorType.PLATFORM_ERROR, f"{type(exc).__name__}: {exc}")
        return self.finish(started, error)

    def finish(self, started: float, error: EpisodeFailure | None) -> RoleOutcome:
        results = self.results if error is None else {"outputs": {}}
        outcome = RoleOutcome(
            kind=self.kind,
            runnable_id=self.runnable.id,
            builtin=self.runnable.builtin,
            run_dir=self.run_dir,
            run_id=self.run_id,
            wall_seconds=time.monotonic() - started,
            exit_code=self.exit_code,
            error=error,
            **results,
        )
        try:
            if error is not None:
                (self.run_dir / "error_info.json").write_text(json.dumps(error.to_json(), indent=2))
            (self.run_dir / "role.json").write_text(json.dumps(outcome.summary(), indent=2, default=str))
        except OSError:
            pass  # the outcome itself is what callers need; a full disk must not hide it
        return outcome


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def run_role(
    request: RoleRequest, run_dir: Path, runtime: Runtime, options: RoleOptions | None = None
) -> RoleOutcome:
    """Run one role and validate what it wrote; never raises for role failures (see `outcome.error`).

    KeyboardInterrupt / Terminated propagate after the sandbox removed everything and
    ``error_info.json`` was written, as for episodes. ValueError: a request/runnable mismatch, or a
    `run_dir` that is an episode workspace (its logs/ would be replaced).
    """
    return _RoleRun(request, run_dir, runtime, options or RoleOptions()).run()


__all__ = [
    "DEFAULT_ROLES_DIR",
    "DEFAULT_ROLE_IMAGE",
    "ROLE_KINDS",
    "DiagnoseRequest",
    "GradeRequest",
    "OptimizeRequest",
    "ReportRequest",
    "RoleKind",
    "RoleOptions",
    "RoleOutcome",
    "RoleRequest",
    "RoleRunnable",
    "builtin_role",
    "default_reference_kind",
    "resolve_role",
    "run_role",
]
