"""`coworld convert` and `coworld build`, and Orchard under the reference packages' own certifiers.

The reference CLIs run from their own venvs (scripts/reference-venvs.sh), offline: the manifests
here declare no source_url, so the 0.1.64 certifier has nothing to fetch.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from coworld_pipeline.contract.manifest import load_manifest
from coworld_pipeline.runtime.role_runnables import resolve_role
from tests.conftest import IN_CI, ORCHARD_DIR, run_cli
from tests.generations.packages import reference_cli, require_reference

ORCHARD = ORCHARD_DIR / "coworld_manifest.json"


def reference_certify(version: str, manifest: Path) -> subprocess.CompletedProcess[str]:
    extra = ["--no-open-report"] if version == "0.1.64" else []
    return subprocess.run(
        [str(reference_cli(version)), "certify", str(manifest), *extra],
        cwd=manifest.parent,  # the reference writes its workspace under ./tmp
        capture_output=True,
        text=True,
        timeout=300,
    )


def convert(manifest: Path, target: str, out: Path) -> dict:
    proc = run_cli("convert", str(manifest), "--contract", target, "-o", str(out), "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.docker
def test_orchard_converted_to_0_1_11_certifies_with_the_reference_0_1_11_certifier(
    tmp_path: Path, docker_images: None
) -> None:
    require_reference("0.1.11")
    out = convert(ORCHARD, "0.1.11", tmp_path / "coworld_manifest.json")
    assert any("slot range became exactly 2" in n for n in out["notes"])
    assert any("'four' dropped" in n for n in out["notes"])
    assert any("['greedy', 'planner', 'random'] became ['greedy', 'planner']" in n for n in out["notes"])
    data = json.loads((tmp_path / "coworld_manifest.json").read_text())
    # 0.1.11 reporters are images: the reference became the container that implements it.
    assert [(r["id"], r["image"], r["run"]) for r in data["reporter"]] == [
        ("orchard-reporter", "coworld/orchard:0.1.0", ["python", "-m", "orchard.reporter"])
    ]
    assert "x-coworld-reporters" not in data["game"]["results_schema"]
    proc = reference_certify("0.1.11", tmp_path / "coworld_manifest.json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Certified" in proc.stdout


@pytest.mark.docker
def test_shipped_orchard_certifies_with_the_reference_0_1_64_certifier(
    tmp_path: Path, docker_images: None
) -> None:
    """The manifest as shipped, unchanged: 0.1.64 has nothing to add (convert notes nothing)."""
    require_reference("0.1.64")
    path = tmp_path / "coworld_manifest.json"
    shutil.copyfile(ORCHARD, path)  # the reference writes its workspace under the manifest's ./tmp
    assert convert(ORCHARD, "0.1.64", tmp_path / "converted.json")["notes"] == []
    proc = reference_certify("0.1.64", path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Certified" in proc.stdout
    assert "platform reference coworldexamples/orchard-reporter@1" in proc.stdout
    ours = run_cli("certify", str(ORCHARD), "--json", "-o", str(tmp_path / "ours"), timeout=180)
    assert ours.returncode == 0, ours.stdout


def test_a_reporter_reference_runs_the_container_the_package_declares_for_it() -> None:
    manifest = load_manifest(ORCHARD)
    assert [r.label for r in manifest.reporter_references] == ["coworldexamples/orchard-reporter@1"]
    (reporter,) = manifest.role("reporter")
    assert (reporter.id, reporter.image, reporter.run) == (
        "orchard-reporter",
        manifest.game.runnable.image,  # shipped by the package image
        ["python", "-m", "orchard.reporter"],
    )
    assert resolve_role("reporter", manifest, "orchard-reporter").run == ("python", "-m", "orchard.reporter")
    assert "coworld/orchard:0.1.0" in manifest.all_images()


def test_reporter_implementations_are_checked_at_their_paths(tmp_path: Path) -> None:
    data = json.loads(ORCHARD.read_text())
    declared = data["game"]["results_schema"]["x-coworld-reporters"]
    base = "$.game.results_schema.x-coworld-reporters"
    # An implementation no $.reporter entry references only warns (nothing runs it).
    declared["someone/unused@2"] = {"run": ["x"]}
    path = tmp_path / "unused.json"
    path.write_text(json.dumps(data))
    proc = run_cli("validate", str(path), "--json")
    assert proc.returncode == 0, proc.stdout
    assert [w["path"] for w in json.loads(proc.stdout)["warnings"]] == [f"{base}['someone/unused@2']"]
    declared["Not A Reference"] = {"run": ["x"]}
    declared["coworldexamples/orchard-reporter@1"]["run"] = []
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    proc = run_cli("validate", str(path), "--json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    paths = {p["path"] for p in json.loads(proc.stdout)["problems"]}
    assert paths == {f"{base}['Not A Reference']", f"{base}['coworldexamples/orchard-reporter@1'].run"}


def test_an_image_reporter_converted_to_0_1_64_becomes_an_implemented_reference(tmp_path: Path) -> None:
    to_11 = tmp_path / "m11.json"
    convert(ORCHARD, "0.1.11", to_11)
    notes = convert(to_11, "0.1.64", tmp_path / "m64.json")["notes"]
    assert notes[0].startswith("$.reporter[0]: image reporter 'orchard-reporter' became the reference local/")
    back = load_manifest(tmp_path / "m64.json")
    assert [r.label for r in back.reporter_references] == ["local/orchard-reporter@1"]
    assert [(r.id, r.run) for r in back.role("reporter")] == [
        ("orchard-reporter", ["python", "-m", "orchard.reporter"])
    ]


def test_convert_says_what_0_1_11_cannot_carry(tmp_path: Path) -> None:
    data = json.loads(ORCHARD.read_text())
    data["episode_timeout_minutes"] = 5
    data["game"]["runnable"]["startup"] = {"port": 9000}
    data["game"]["replay_viewer"] = {"bundle": "viewer"}
    source = tmp_path / "in.json"
    source.write_text(json.dumps(data))
    out = convert(source, "0.1.11", tmp_path / "out.json")
    dropped = {n.split(":")[0] for n in out["notes"]}
    assert {
        "$.tags",
        "$.episode_timeout_minutes",
        "$.game.runnable.startup",
        "$.game.replay_viewer",
    } <= dropped
    converted = run_cli("validate", str(tmp_path / "out.json"), "--json")
    assert json.loads(converted.stdout)["slots"] == "2"


def test_convert_and_build_reject_bad_input_with_paths(tmp_path: Path) -> None:
    bad = run_cli("convert", str(ORCHARD), "--contract", "9.9", "-o", str(tmp_path / "x.json"))
    assert bad.returncode == 2 and "--contract must be one of" in bad.stderr and "Traceback" not in bad.stderr
    template = json.loads((ORCHARD_DIR / "coworld_manifest_template.json").read_text())
    template["game"]["version"] = "1.0"
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template))
    compose = ORCHARD_DIR / "docker-compose.yml"
    proc = run_cli("build", str(compose), str(path), "0.2.0", str(tmp_path / "out.json"), "--json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["problems"][0]["path"] == "$.game.version"


@pytest.mark.docker
def test_build_hydrates_the_orchard_template_with_content_tags(tmp_path: Path, docker_images: None) -> None:
    if shutil.which("docker-compose") is None:
        if IN_CI:
            pytest.fail("CI must install Debian's docker-compose (scripts/setup.sh)")
        pytest.skip("needs docker-compose")
    out = tmp_path / "coworld_manifest.json"
    proc = run_cli(
        "build",
        str(ORCHARD_DIR / "docker-compose.yml"),
        str(ORCHARD_DIR / "coworld_manifest_template.json"),
        "0.1.0",
        str(out),
        "--json",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tag = json.loads(proc.stdout)["images"]["coworld/orchard:0.1.0"]
    assert tag.startswith("coworld/orchard:coworld-") and len(tag.rsplit("-", 1)[1]) == 12
    manifest = json.loads(out.read_text())
    assert manifest["game"]["version"] == "0.1.0" and manifest["game"]["runnable"]["image"] == tag
    assert {p["image"] for p in manifest["player"]} == {tag}
    assert run_cli("validate", str(out)).returncode == 0


def test_game_hosted_players_are_a_clear_usage_error(tmp_path: Path) -> None:
    """0.1.64 game-hosted players (`file`) are not run here: exit 2 naming the entry, no traceback."""
    data = json.loads(ORCHARD.read_text())
    data["game"]["player_runtime"] = "game-hosted"
    for player in data["player"]:
        del player["image"], player["run"]
        player["file"] = f"players/{player['id']}.py"
    path = tmp_path / "coworld_manifest.json"
    path.write_text(json.dumps(data))
    assert run_cli("validate", str(path)).returncode == 0  # a valid manifest, only not runnable here
    for command in ("certify", "run-episode"):
        proc = run_cli(command, str(path), "--runtime", "process", "--json")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
        (problem,) = json.loads(proc.stdout)["problems"]
        assert problem["path"] == "$.player[1].file" and "game-hosted" in problem["message"]
