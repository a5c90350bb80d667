"""Supporting roles through the runtime: Orchard's own, the built-in defaults, and broken ones.

Real runtimes and real role code throughout: Orchard's reporter/grader/diagnoser/optimizer, the
built-in defaults, and `tests/fixtures/roles/badrole.py` for every malformed-output case.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from coworld_pipeline.contract.manifest import load_manifest
from coworld_pipeline.contract.role_outputs import (
    OutputLimits,
    RoleOutputError,
    check_zip,
    validate_diagnosis,
    validate_event_log,
    validate_grade,
    validate_plan,
    validate_report,
)
from coworld_pipeline.runtime import make_runtime
from coworld_pipeline.runtime.bundles import BundleRequest, BundleSource, write_bundle
from coworld_pipeline.runtime.errors import ErrorType
from coworld_pipeline.runtime.roles import (
    DiagnoseRequest,
    GradeRequest,
    OptimizeRequest,
    ReportRequest,
    RoleOptions,
    RoleOutcome,
    RoleRunnable,
    builtin_role,
    resolve_role,
    run_role,
)
from tests.conftest import ORCHARD_DIR, our_processes
from tests.fixtures.roles.episodes import (
    ORCHARD_MANIFEST,
    ROLES_FIXTURES,
    default_roles_manifest,
    play_failed,
    play_orchard,
    tree_digest,
)

RUNTIMES = ["process", pytest.param("docker", marks=pytest.mark.docker)]


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return play_orchard(tmp_path_factory.mktemp("roles") / "results")


@pytest.fixture(scope="module")
def bundle(episode: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("bundle") / "ep.zip"
    return write_bundle(BundleRequest(BundleSource.local(episode), operator=True), dest).path


@pytest.fixture
def runtime_for(request: pytest.FixtureRequest):
    def make(name: str, base_dir: Path):
        if name == "docker":
            request.getfixturevalue("docker_images")
        return make_runtime(name, base_dir=base_dir)

    return make


def run_all(manifest, bundle: Path, tmp_path: Path, runtime) -> dict[str, RoleOutcome]:
    """Reporter, grader and diagnoser on the bundle, then the optimizer over their outputs."""
    out = {
        "reporter": run_role(
            ReportRequest(bundle, resolve_role("reporter", manifest)), tmp_path / "r", runtime
        ),
        "grader": run_role(GradeRequest(bundle, resolve_role("grader", manifest)), tmp_path / "g", runtime),
        "diagnoser": run_role(
            DiagnoseRequest(bundle, resolve_role("diagnoser", manifest), target_slot=0),
            tmp_path / "d",
            runtime,
        ),
    }
    for kind, outcome in out.items():
        assert outcome.ok, (kind, outcome.error and outcome.error.to_json())
    request = OptimizeRequest(
        manifest.to_json_dict(),
        resolve_role("optimizer", manifest),
        reports=(out["reporter"].outputs["report"],),
        grades=(out["grader"].outputs["grade"],),
        diagnoses=(out["diagnoser"].outputs["diagnosis"],),
    )
    out["optimizer"] = run_role(request, tmp_path / "o", runtime)
    assert out["optimizer"].ok, out["optimizer"].error
    return out


def zip_json(path: Path, name: str) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(name))


@pytest.mark.parametrize("runtime_name", RUNTIMES)
def test_orchard_roles(runtime_name: str, runtime_for, episode: Path, bundle: Path, tmp_path: Path) -> None:
    before = tree_digest(episode)
    manifest = load_manifest(ORCHARD_MANIFEST)
    out = run_all(manifest, bundle, tmp_path, runtime_for(runtime_name, ORCHARD_DIR))
    report = out["reporter"]
    assert report.runnable_id == "orchard-reporter" and not report.builtin
    assert report.report.reporter_id == "orchard-reporter" and report.report.render == "report.md"
    # Orchard puts its event log only inside the zip: it is extracted to the stats convention's place.
    table = pq.read_table(report.outputs["stats"])
    assert table.column_names == ["ts", "player", "key", "value"] and table.num_rows == report.stats_rows > 50
    finals = {r["player"]: json.loads(r["value"]) for r in table.to_pylist() if r["key"] == "final_score"}
    assert finals == dict(enumerate(json.loads((episode / "results.json").read_text())["scores"]))
    assert 0.0 <= out["grader"].score <= 1.0 and out["grader"].grade["grader_id"] == "orchard-drama-grader"
    diagnosis = out["diagnoser"].diagnosis
    assert diagnosis.kind == "zip" and diagnosis.manifest["target_slot"] == 0
    plan = out["optimizer"].plan
    assert plan["optimizer_id"] == "orchard-optimizer" and plan["coworld_name"] == "orchard"
    assert plan["input_counts"] == {"reports": 1, "grader_outputs": 1, "diagnoser_outputs": 1}
    assert plan["recommendations"]
    # Logs kept, summary written, the episode itself untouched.
    assert (report.logs_dir / "role.stdout.log").read_text().startswith("[orchard-reporter]")
    assert json.loads((report.run_dir / "role.json").read_text())["status"] == "success"
    assert tree_digest(episode) == before


@pytest.mark.parametrize("runtime_name", RUNTIMES)
def test_default_role_images_run_the_builtins(
    runtime_name: str, runtime_for, episode: Path, bundle: Path, tmp_path: Path
) -> None:
    manifest = load_manifest(default_roles_manifest(tmp_path))
    runnable = resolve_role("reporter", manifest)
    assert runnable.builtin and runnable.id == "stock-reporter"
    out = run_all(manifest, bundle, tmp_path, runtime_for(runtime_name, tmp_path))
    assert all(outcome.builtin for outcome in out.values())
    scores = json.loads((episode / "results.json").read_text())["scores"]
    rows = pq.read_table(out["reporter"].outputs["stats"]).to_pylist()
    by_key = {(r["player"], r["key"]): json.loads(r["value"]) for r in rows}
    assert [by_key[(slot, "final_score")] for slot in range(2)] == scores
    assert by_key[(-1, "episode_length")] == 60
    assert by_key[(-1, "winner")] == scores.index(max(scores))
    assert sum(1 for r in rows if r["key"] == "scores") == 61  # one row per replay frame
    assert (
        by_key[(0, "results.fruit_harvested")]
        == json.loads((episode / "results.json").read_text())["fruit_harvested"][0]
    )
    stats = zip_json(out["reporter"].outputs["report"], "stats.json")
    assert stats["lead_changes"] == by_key[(-1, "lead_changes")] >= 1
    grade = out["grader"].grade
    assert grade["grader_id"] == "stock-grader" and 0 < grade["score"] <= 1
    assert set(grade["components"]) == {"closeness", "eventful"}
    diagnosis = zip_json(out["diagnoser"].outputs["diagnosis"], "diagnosis.json")
    standing = diagnosis["standing"]
    assert standing["rank"] == (1 if scores[0] > scores[1] else 2) and standing["score"] == scores[0]
    assert diagnosis["advice"]
    plan = out["optimizer"].plan
    assert plan["optimizer_id"] == "stock-optimizer"
    assert plan["evidence"]["diagnoses"]["episodes"] == 1 and plan["evidence"]["grades"]["count"] == 1


def test_default_roles_on_a_failed_episode(tmp_path: Path) -> None:
    """No scores: the reporter still reports, the grader grades 0 with the reason, the diagnoser says
    whose fault it was and shows the blamed player's log."""
    workspace = play_failed(tmp_path)
    bundle = write_bundle(
        BundleRequest(BundleSource.local(workspace), operator=True), tmp_path / "ep.zip"
    ).path
    runtime = make_runtime("process")
    report = run_role(ReportRequest(bundle, builtin_role("reporter")), tmp_path / "r", runtime)
    assert report.ok, report.error
    rows = pq.read_table(report.outputs["stats"]).to_pylist()
    assert {(r["key"], r["value"]) for r in rows} >= {("status", '"failed"'), ("slot_count", "2")}
    grade = run_role(GradeRequest(bundle, builtin_role("grader")), tmp_path / "g", runtime)
    assert grade.score == 0 and "player_crashed" in grade.grade["reason"]
    blamed = run_role(DiagnoseRequest(bundle, builtin_role("diagnoser"), 1), tmp_path / "d1", runtime)
    diagnosis = zip_json(blamed.outputs["diagnosis"], "diagnosis.json")
    assert diagnosis["blamed_slot"] == 1 and "player_crashed" in diagnosis["advice"][0]
    assert "player crashing on purpose" in diagnosis["log_tail"]
    other = run_role(DiagnoseRequest(bundle, builtin_role("diagnoser"), 0), tmp_path / "d0", runtime)
    assert "because of slot 1" in zip_json(other.outputs["diagnosis"], "diagnosis.json")["advice"][0]


def test_orchard_roles_on_a_failed_episode(tmp_path: Path) -> None:
    """Orchard's own roles on a failed episode's bundle (no results, no replay): they crashed on it
    (role_crashed, a traceback); now each says the episode failed and whose fault it was."""
    workspace = play_failed(tmp_path)
    bundle = write_bundle(
        BundleRequest(BundleSource.local(workspace), operator=True), tmp_path / "ep.zip"
    ).path
    manifest = load_manifest(ORCHARD_MANIFEST)
    runtime = make_runtime("process", base_dir=ORCHARD_DIR)
    report = run_role(ReportRequest(bundle, resolve_role("reporter", manifest)), tmp_path / "r", runtime)
    assert report.ok and report.runnable_id == "orchard-reporter", report.error and report.error.to_json()
    rows = pq.read_table(report.outputs["stats"]).to_pylist()
    assert (
        rows[0]["key"] == "episode_failed" and json.loads(rows[0]["value"])["error_type"] == "player_crashed"
    )
    with zipfile.ZipFile(report.outputs["report"]) as archive:
        assert "The episode **failed** (player_crashed)" in archive.read("report.md").decode()
    grade = run_role(GradeRequest(bundle, resolve_role("grader", manifest)), tmp_path / "g", runtime)
    assert grade.ok and grade.score == 0 and grade.grade["reason"] == "nothing to grade: player_crashed"
    request = DiagnoseRequest(bundle, resolve_role("diagnoser", manifest), target_slot=1)
    diagnosis = zip_json(run_role(request, tmp_path / "d", runtime).outputs["diagnosis"], "diagnosis.json")
    assert diagnosis["failure"]["verdict"] == "target"
    assert "player crashing on purpose" in diagnosis["log_tail"]


@pytest.mark.parametrize("which", ["builtin", "orchard"])
def test_a_bundle_that_is_no_zip_is_one_line_and_exit_2(which: str, tmp_path: Path) -> None:
    """Both kinds of role said so with a traceback (exit 1)."""
    bundle = tmp_path / "ep.zip"
    bundle.write_text("not a zip\n")
    manifest = load_manifest(ORCHARD_MANIFEST)
    runtime = make_runtime("process", base_dir=ORCHARD_DIR)
    for kind, request in (
        ("reporter", ReportRequest),
        ("grader", GradeRequest),
        ("diagnoser", lambda b, r: DiagnoseRequest(b, r, target_slot=0)),
    ):
        role = builtin_role(kind) if which == "builtin" else resolve_role(kind, manifest)
        outcome = run_role(request(bundle, role), tmp_path / kind, runtime)
        assert not outcome.ok and outcome.exit_code == 2, (kind, outcome.error and outcome.error.to_json())
        stderr = (outcome.logs_dir / "role.stderr.log").read_text()
        assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr


def test_resolving_role_references() -> None:
    orchard = load_manifest(ORCHARD_MANIFEST)
    assert resolve_role("grader", orchard).id == "orchard-drama-grader"
    assert resolve_role("grader", orchard, "default") == builtin_role("grader")
    assert resolve_role("grader", None).builtin  # nothing declared: the built-in
    assert resolve_role("diagnoser", orchard, "softmax/default-diagnoser:v3").builtin
    with pytest.raises(ValueError, match="no grader 'nope' in the manifest"):
        resolve_role("grader", orchard, "nope")
    with pytest.raises(ValueError, match="is the default reporter, not a grader"):
        resolve_role("grader", orchard, "softmax/default-reporter:latest")


def test_an_episode_workspace_is_never_a_run_directory(episode: Path, bundle: Path) -> None:
    before = tree_digest(episode)
    with pytest.raises(ValueError, match="is an episode workspace"):
        run_role(GradeRequest(bundle, builtin_role("grader")), episode, make_runtime("process"))
    assert tree_digest(episode) == before


def bad(kind: str, mode: str) -> RoleRunnable:
    return RoleRunnable(kind, f"bad-{mode}", "unused", ("python", "-m", "badrole", mode))  # type: ignore[arg-type]


MALFORMED = [
    # (role, badrole mode, error type, words the message must contain)
    ("reporter", "corrupt_zip", ErrorType.ROLE_INVALID_OUTPUT, "not a readable zip"),
    ("reporter", "zip_slip", ErrorType.ROLE_INVALID_OUTPUT, "'../escaped.txt' contains a '..' component"),
    ("diagnoser", "absolute_entry", ErrorType.ROLE_INVALID_OUTPUT, "'/etc/evil.txt' is an absolute path"),
    ("reporter", "bad_event_log", ErrorType.ROLE_INVALID_OUTPUT, "column 'ts' is string, expected int64"),
    ("reporter", "bad_stats", ErrorType.ROLE_INVALID_OUTPUT, "stats parquet column 'ts' is string"),
    (
        "reporter",
        "missing_event_log",
        ErrorType.ROLE_INVALID_OUTPUT,
        "event_log='nowhere.parquet' names no entry",
    ),
    ("grader", "nan_grade", ErrorType.ROLE_INVALID_OUTPUT, "non-standard JSON literal NaN"),
    ("grader", "string_grade", ErrorType.ROLE_INVALID_OUTPUT, "grade score 'high' is not a number"),
    ("grader", "bool_grade", ErrorType.ROLE_INVALID_OUTPUT, "grade score True is not a number"),
    ("grader", "no_output", ErrorType.ROLE_MISSING_OUTPUT, "exited 0 but wrote no grade.json"),
    ("grader", "symlink", ErrorType.ROLE_INVALID_OUTPUT, "grade.json is not a regular file"),
    ("reporter", "crash", ErrorType.ROLE_CRASHED, "exited with code 3"),
    ("grader", "hang", ErrorType.ROLE_TIMEOUT, "did not finish within 1 s"),
    ("reporter", "huge_output", ErrorType.ROLE_OUTPUT_TOO_LARGE, "more than 1048576 bytes of outputs"),
    ("grader", "huge_log", ErrorType.ROLE_OUTPUT_TOO_LARGE, "more than 262144 bytes of logs"),
]


@pytest.mark.parametrize(("kind", "mode", "error_type", "words"), MALFORMED, ids=[m[1] for m in MALFORMED])
def test_malformed_outputs_are_rejected(
    kind: str, mode: str, error_type: ErrorType, words: str, episode: Path, bundle: Path, tmp_path: Path
) -> None:
    before = tree_digest(episode)
    runtime = make_runtime("process", base_dir=ROLES_FIXTURES)
    request = {
        "reporter": ReportRequest(bundle, bad(kind, mode)),
        "grader": GradeRequest(bundle, bad(kind, mode)),
        "diagnoser": DiagnoseRequest(bundle, bad(kind, mode), target_slot=1),
    }[kind]
    limits = OutputLimits(max_total_bytes=1 << 20, max_log_bytes=256 << 10)
    outcome = run_role(request, tmp_path / "run", runtime, RoleOptions(timeout_seconds=1, limits=limits))
    assert not outcome.ok and outcome.outputs == {}
    error = outcome.error
    assert error.error_type == error_type and words in error.message, error.to_json()
    assert error.blame == "role" and error.infrastructure  # retried by a league, never held against a player
    info = json.loads((tmp_path / "run" / "error_info.json").read_text())
    assert info["error_type"] == error_type.value
    assert (outcome.logs_dir / "role.stdout.log").exists() and (outcome.logs_dir / "role.stderr.log").exists()
    if mode == "crash":
        assert "badrole crashing on purpose" in error.details["stderr_tail"]
        assert "badrole crashing on purpose" in (outcome.logs_dir / "role.stderr.log").read_text()
    if mode == "huge_output":
        # Stopped near the limit, not after filling the disk.
        assert (outcome.run_dir / "output" / "report.zip").stat().st_size < 64 << 20
    if mode == "zip_slip":
        assert not (outcome.run_dir / "escaped.txt").exists()
    assert not [c for c in our_processes() if "badrole" in c]  # the role's process group is gone
    assert tree_digest(episode) == before


@pytest.mark.docker
def test_docker_crash_and_timeout_leave_nothing(docker_images, bundle: Path, tmp_path: Path) -> None:
    runtime = make_runtime("docker")
    crash = RoleRunnable(
        "grader", "crasher", "coworld/orchard:0.1.0", ("python", "-c", "import sys; sys.exit(5)")
    )
    hang = RoleRunnable(
        "grader", "sleeper", "coworld/orchard:0.1.0", ("python", "-c", "import time; time.sleep(600)")
    )
    outcome = run_role(GradeRequest(bundle, crash), tmp_path / "c", runtime)
    assert outcome.error.error_type == ErrorType.ROLE_CRASHED and "code 5" in outcome.error.message
    outcome = run_role(GradeRequest(bundle, hang), tmp_path / "h", runtime, RoleOptions(timeout_seconds=2))
    assert outcome.error.error_type == ErrorType.ROLE_TIMEOUT
    missing = RoleRunnable("grader", "ghost", "coworld/no-such-image:0", ("python",))
    outcome = run_role(GradeRequest(bundle, missing), tmp_path / "m", runtime)
    assert outcome.error.error_type == ErrorType.IMAGE_MISSING
    options = RoleOptions(default_image="coworld/no-such-base:0")
    outcome = run_role(GradeRequest(bundle, builtin_role("grader")), tmp_path / "b", runtime, options)
    assert outcome.error.error_type == ErrorType.IMAGE_MISSING
    assert "COWORLD_DEFAULT_ROLE_IMAGE" in outcome.error.message
    # The autouse guard then checks that no labelled container or network is left.


@pytest.mark.docker
def test_docker_role_has_no_network_route_out(docker_images, bundle: Path, tmp_path: Path) -> None:
    probe = (
        "import socket, sys\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
        "except OSError as exc:\n"
        "    print('blocked', exc); sys.exit(7)\n"
    )
    runnable = RoleRunnable("grader", "prober", "coworld/orchard:0.1.0", ("python", "-c", probe))
    outcome = run_role(GradeRequest(bundle, runnable), tmp_path / "n", make_runtime("docker"))
    assert outcome.exit_code == 7, (outcome.logs_dir / "role.stdout.log").read_text()
    assert "blocked" in (outcome.logs_dir / "role.stdout.log").read_text()


def test_report_zip_for_a_stats_only_reporter_is_still_required(bundle: Path, tmp_path: Path) -> None:
    """A reporter that writes nothing at all fails with a missing output, and the zip is what is named."""
    runtime = make_runtime("process", base_dir=ROLES_FIXTURES)
    outcome = run_role(ReportRequest(bundle, bad("reporter", "no_output")), tmp_path / "x", runtime)
    assert outcome.error.error_type == ErrorType.ROLE_MISSING_OUTPUT
    assert "report.zip" in outcome.error.message
    summary = json.loads((tmp_path / "x" / "role.json").read_text())
    assert summary["status"] == "failed" and summary["error"]["error_type"] == "role_missing_output"


# ---- the validators on their own: what a role could hand back, byte by byte ----------------------


def zipped(entries: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def event_log(**columns) -> bytes:
    table = pa.table(
        columns
        or {
            "ts": pa.array([0], pa.int64()),
            "player": pa.array([-1], pa.int64()),
            "key": ["k"],
            "value": ["1"],
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def rejected(reason: str, words: str, fn, *args) -> None:
    with pytest.raises(RoleOutputError) as caught:
        fn(*args)
    assert caught.value.reason == reason and words in caught.value.message, str(caught.value)


def test_zip_checks() -> None:
    limits = OutputLimits(max_uncompressed_bytes=1 << 20, max_entries=3)
    good = zipped([("manifest.json", b'{"render": "r.md"}'), ("r.md", b"# hi")])
    assert validate_report(good, limits).render == "r.md"
    stored = bytearray(zipped([("a.txt", b"A" * 100)], zipfile.ZIP_STORED))
    stored[stored.index(b"AAAA")] = ord("B")  # flip one byte of the entry's data: its CRC no longer matches
    rejected("corrupt_zip", "CRC", check_zip, bytes(stored), "report zip", limits)
    rejected(
        "too_large", "inflates to 2097152 bytes", check_zip, zipped([("z", bytes(2 << 20))]), "zip", limits
    )
    rejected("too_large", "4 entries", check_zip, zipped([(f"{i}", b"") for i in range(4)]), "zip", limits)
    rejected("unsafe_entry", "backslash", check_zip, zipped([("..\\evil", b"")]), "zip", limits)
    with pytest.warns(UserWarning, match="Duplicate name"):
        twice = zipped([("a", b"1"), ("a", b"2")])
    rejected("unsafe_entry", "two entries named 'a'", check_zip, twice, "zip", limits)
    rejected("too_large", "over the 10-byte limit", check_zip, good, "zip", OutputLimits(max_file_bytes=10))
    rejected("bad_manifest", "render='x.txt' must end in .md or .html", validate_report,
             zipped([("manifest.json", b'{"render": "x.txt"}'), ("x.txt", b"")]), limits)  # fmt: skip
    rejected(
        "bad_manifest", "must be a JSON object", validate_report, zipped([("manifest.json", b"[]")]), limits
    )


def test_event_log_checks() -> None:
    assert validate_event_log(event_log(), slot_count=2).num_rows == 1
    ints = pa.array([0], pa.int64())
    rejected("bad_event_log", "player' ranges 5..5; slots must be -1..1", validate_event_log,
             event_log(ts=ints, player=pa.array([5], pa.int64()), key=["k"], value=["v"]), 2)  # fmt: skip
    rejected("bad_event_log", "expected exactly ['ts', 'player', 'key', 'value']", validate_event_log,
             event_log(ts=ints, player=ints, key=["k"], value=["v"], extra=[1]))  # fmt: skip
    rejected("bad_event_log", "column 'player' is int32", validate_event_log,
             event_log(ts=ints, player=pa.array([0], pa.int32()), key=["k"], value=["v"]))  # fmt: skip
    rejected("bad_event_log", "column 'value' has 1 nulls", validate_event_log,
             event_log(ts=ints, player=ints, key=["k"], value=pa.array([None], pa.string())))  # fmt: skip
    rejected("bad_event_log", "not a readable parquet file", validate_event_log, b"PAR1 nope")


def test_grade_plan_and_diagnosis_checks() -> None:
    limits = OutputLimits()
    assert validate_grade(b'{"score": 3}')["score"] == 3
    rejected("not_json", "literal Infinity", validate_grade, b'{"score": Infinity}')
    rejected("bad_grade", "not a finite number", validate_grade, b'{"score": 1e999}')
    huge = b'{"score": 1' + b"0" * 400 + b"}"  # an int Python parses, but no float can hold
    rejected("bad_grade", "of 401 digits is not a finite number", validate_grade, huge)
    rejected("not_json", "not valid UTF-8 JSON", validate_grade, b'{"score": 1' + b"0" * 5000 + b"}")
    rejected("bad_grade", "no 'score'", validate_grade, b'{"grader_id": "g"}')
    rejected("not_json", "must be a JSON object, got list", validate_grade, b"[0.5]")
    rejected("not_json", "not valid UTF-8 JSON", validate_plan, b"\xff\xfe", limits)
    assert validate_plan(b'{"recommendations": []}', limits) == {"recommendations": []}
    assert validate_diagnosis(b'{"advice": ["x"]}', limits).document == {"advice": ["x"]}
    rejected("corrupt_zip", "neither a zip nor a JSON object", validate_diagnosis, b"garbage", limits)
