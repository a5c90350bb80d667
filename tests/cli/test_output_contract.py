"""What the CLI prints: `run-episode`'s human output (the live phase table on stderr, the outcome on
stdout) shows the manifest's names and the user's own input as text, whatever markup they hold; and
with --json even a command-line error is JSON."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import COWORLD, run_cli
from tests.league.conftest import orchard_copy

NAME = "[bold red]EVIL[/][link=http://x]click[/link]"
RUN = "/nonexistent/[bold red]x[/]"


def test_run_episode_prints_markup_in_names_and_errors_verbatim(tmp_path: Path) -> None:
    manifest = orchard_copy(tmp_path / "cw")
    data = json.loads(manifest.read_text())
    data["game"]["name"] = NAME
    manifest.write_text(json.dumps(data))
    env = {**os.environ, "COLUMNS": "400", "COWORLD_HOME": str(tmp_path / "home")}
    proc = run_cli(
        "run-episode", str(manifest), "coworld/orchard:0.1.0", "--run", RUN,
        "--runtime", "process", "-o", str(tmp_path / "out"), env=env,
    )  # fmt: skip
    assert proc.returncode == 1, proc
    assert "Traceback" not in proc.stderr
    assert f"{NAME}:" in proc.stderr, proc.stderr  # the phase table's title
    assert RUN in proc.stdout, proc.stdout  # "episode failed: ... '/nonexistent/[bold red]x[/]'"


def test_command_line_errors_are_json_under_json(tmp_path: Path) -> None:
    env = {**os.environ, "COWORLD_HOME": str(tmp_path / "home")}
    for args, where in (
        (("run-episode", "m.json", "--timeout", "0"), "'--timeout'"),
        (
            ("league", "create", "l", "--coworld", "orchard", "--episodes-per-pair", "0"),
            "--episodes-per-pair",
        ),
        (("episodes", "--limit", "x"), "'--limit'"),
    ):
        proc = run_cli(*args, "--json", env=env)
        assert proc.returncode == 2, proc
        answer = json.loads(proc.stdout)
        assert answer["ok"] is False and where in answer["error"], answer
        assert "╭" not in proc.stderr and "Traceback" not in proc.stderr
        human = run_cli(*args, env=env)  # without --json: Click's usage box, as before
        assert human.returncode == 2 and "Usage:" in human.stderr and not human.stdout


def test_seed_is_bounded_as_in_a_request_file_and_schema_takes_json(tmp_path: Path) -> None:
    env = {**os.environ, "COWORLD_HOME": str(tmp_path / "home")}
    manifest = str(orchard_copy(tmp_path / "cw"))
    seed = "9" * 40  # Python's int takes it; a request file with it is refused, so is the option
    proc = run_cli("run-episode", manifest, "--seed", seed, "--runtime", "process", "--json", env=env)
    assert proc.returncode == 2 and "--seed has 40 digits; at most 32" in json.loads(proc.stdout)["error"]
    assert not (tmp_path / "cw" / "results").exists(), "nothing ran"
    schema = run_cli("schema", "manifest", "--json", env=env)
    assert schema.returncode == 0 and "$defs" in json.loads(schema.stdout)


def test_json_output_is_strict_json_with_non_finite_numbers_as_null(capsys) -> None:
    from coworld_cli.output import print_json

    print_json({"mean": float("nan"), "rows": [{"max": float("inf")}, (1.5, float("-inf"))], "n": 2})
    # json.loads would accept NaN; a strict parser (jq, JavaScript's JSON.parse) refuses the whole text.
    text = capsys.readouterr().out
    parsed = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in --json output"))
    assert parsed == {"mean": None, "rows": [{"max": None}, [1.5, None]], "n": 2}


def test_upload_policy_refuses_an_image_docker_cannot_parse(tmp_path: Path) -> None:
    env = {**os.environ, "COWORLD_HOME": str(tmp_path / "home")}
    proc = run_cli("upload-policy", "Coworld//Orchard", "--name", "p", "--run", "python", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "$.image: invalid image reference 'Coworld//Orchard'" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr


def test_an_empty_output_option_is_refused_not_read_as_the_current_directory(tmp_path: Path) -> None:
    manifest = str(orchard_copy(tmp_path))
    before = sorted(p.name for p in tmp_path.iterdir())
    cases = [
        ("run-episode", manifest, "--runtime", "process", "-o", ""),
        ("certify", manifest, "--runtime", "process", "--output-dir="),
        ("bundle", str(tmp_path), "--output", "", "--json"),
    ]
    for args in cases:
        # From the directory a `-o ''` would have filled.
        proc = subprocess.run([*COWORLD, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "must not be empty (an unset shell variable?)" in proc.stdout + proc.stderr, args
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_process_runtime_refuses_a_player_without_run_before_the_game_starts(tmp_path: Path) -> None:
    from coworld_pipeline.contract import load_manifest
    from coworld_pipeline.contract.episode_request import certification_request

    manifest = orchard_copy(tmp_path / "cw")
    request = certification_request(load_manifest(manifest)).to_json_dict()
    request["players"][1]["run"] = []  # fine for Docker (the image's entrypoint), not on the host
    (tmp_path / "request.json").write_text(json.dumps(request))
    out = tmp_path / "out"
    args = ("run-episode", str(manifest), str(tmp_path / "request.json"), "--runtime", "process")
    proc = run_cli(*args, "-o", str(out), "--json")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["problems"][0]["path"] == "$.players[1].run"
    assert not out.exists()  # refused before anything ran


def test_outputs_never_replace_a_link_or_a_device(tmp_path: Path) -> None:
    """Outputs are renamed into place: over `/dev/stdout` (a link) or `/dev/null` (a device), as root,
    that would have replaced them with plain files."""
    link, fifo = tmp_path / "stdout-link", tmp_path / "pipe"
    link.symlink_to("/proc/self/fd/1")
    os.mkfifo(fifo)
    manifest = str(orchard_copy(tmp_path / "cw"))
    for target, kind in ((link, "a symbolic link"), (fifo, "a named pipe")):
        proc = run_cli("convert", manifest, "--contract", "0.1.11", "-o", str(target))
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"is {kind}: not replaced" in " ".join(proc.stderr.split()), proc.stderr
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"
    assert fifo.is_fifo()


def test_a_closed_or_full_stdout_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "COWORLD_HOME": str(tmp_path / "home")}
    closed = subprocess.run([*COWORLD, "schema", "manifest"], stdout=subprocess.DEVNULL, env=env)
    assert closed.returncode == 0
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [*COWORLD, "schema", "manifest"], stdout=full, stderr=subprocess.PIPE, text=True, env=env
        )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == "coworld: cannot write the output: No space left on device", proc.stderr
    # Started with stdout closed (`coworld schema manifest >&-`).
    shut = subprocess.run(
        [*COWORLD, "schema", "manifest"], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=env, preexec_fn=lambda: os.close(1),
    )  # fmt: skip
    assert shut.returncode == 0 and "Traceback" not in shut.stderr, shut.stderr
