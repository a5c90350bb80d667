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
    proc = reference_certify("0.1.11", tmp_path / "coworld_manifest.json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Certified" in proc.stdout


@pytest.mark.docker
def test_orchard_for_0_1_64_names_what_its_certifier_needs_and_then_passes(
    tmp_path: Path, docker_images: None
) -> None:
    """The notes of `convert --contract 0.1.64` are exactly what the 0.1.64 certifier requires."""
    require_reference("0.1.64")
    path = tmp_path / "coworld_manifest.json"
    notes = convert(ORCHARD, "0.1.64", path)["notes"]
    assert [n.split(":")[0] for n in notes] == ["$.reporter[0]", "$.tags", "$.certification.players"]
    data = json.loads(path.read_text())
    data["tags"] = ["strategy", "grid", "multiplayer"]
    data["certification"]["players"].append({"player_id": "random"})
    data["certification"]["game_config"]["players"].append({"name": "Random"})
    path.write_text(json.dumps(data, indent=2))
    proc = reference_certify("0.1.64", path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Certified" in proc.stdout
    ours = run_cli("certify", str(path), "--json", "-o", str(tmp_path / "ours"), timeout=180)
    assert ours.returncode == 0, ours.stdout


def test_convert_says_what_0_1_11_cannot_carry(tmp_path: Path) -> None:
    data = json.loads(ORCHARD.read_text())
    data["tags"] = ["a", "b", "c"]
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
