"""What execve refuses is refused at validation and upload time: exit 2, problems, nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update

from coworld_pipeline.contract.os_limits import (
    MAX_ARG_STRING_BYTES,
    MAX_ARGV_ENV_BYTES,
    policy_problems,
    runnable_problems,
)
from coworld_pipeline.league.errors import LeagueError
from coworld_pipeline.league.models import PolicyVersion
from coworld_pipeline.league.service import LeagueService
from tests.conftest import run_cli

ORCHARD = Path(__file__).resolve().parents[2] / "examples/orchard/coworld_manifest.json"
SECRET = "hunter2-do-not-print"


def _paths(problems: list) -> dict[str, str]:
    return {p.path: p.message for p in problems}


def test_what_execve_refuses_is_named_at_its_path() -> None:
    found = _paths(
        runnable_problems(
            ["python", "-c", "print(1)\x00"],
            {"": "1", "A=B": "1", "NUL": "x\x00y", "BIG": "v" * MAX_ARG_STRING_BYTES, "OK": "fine"},
            "$.players[0]",
        )
    )
    assert "NUL byte" in found["$.players[0].run[2]"]
    assert "must not be empty" in found["$.players[0].env['']"]
    assert "'='" in found["$.players[0].env['A=B']"]
    assert "NUL byte" in found["$.players[0].env.NUL"]
    assert str(MAX_ARG_STRING_BYTES) in found["$.players[0].env.BIG"]
    assert not any("OK" in path for path in found)
    # What the OS accepts is accepted: an empty argument, odd but legal names, a value at the limit.
    assert not runnable_problems(["", "-x"], {"my-var.1": "", "V": "v" * 1000}, "$")


def test_argv_and_env_together_are_bounded() -> None:
    chunk = "x" * 100_000
    problems = runnable_problems([chunk] * 6, {f"E{i}": chunk for i in range(6)}, "$.player[0]")
    assert [p.path for p in problems] == ["$.player[0]"]
    assert str(MAX_ARGV_ENV_BYTES) in problems[0].message


def test_secret_values_never_appear_in_problems() -> None:
    problems = policy_problems("img:1", "p", [], {}, {"TOKEN": SECRET + "\x00", "": SECRET})
    assert {p.path for p in problems} == {"$.secret_env.TOKEN", "$.secret_env['']"}
    assert not any(SECRET in p.message for p in problems)


def test_policy_name_and_image_are_checked() -> None:
    found = _paths(policy_problems("bad image\x00", "n" * 300, [], {}, {}))
    assert "at most 200" in found["$.name"]
    assert "whitespace" in found["$.image"]


@pytest.fixture
def service(tmp_path: Path):
    svc = LeagueService(f"sqlite:///{tmp_path / 'league.db'}", tmp_path / "home")
    yield svc
    svc.close()


@pytest.mark.parametrize(
    ("run", "env", "secret_env", "path"),
    [
        (["sh", "-c", "a\x00b"], {}, {}, "$.run[2]"),
        ([], {"A=B": "1"}, {}, "$.env['A=B']"),
        ([], {"": "1"}, {}, "$.env['']"),
        ([], {}, {"KEY": "v\x00"}, "$.secret_env.KEY"),
        (["x" * 200_000], {}, {}, "$.run[0]"),
    ],
    ids=["nul-in-run", "equals-in-env-name", "empty-env-name", "nul-in-secret", "argument-200k"],
)
def test_upload_policy_refuses_and_stores_nothing(
    service: LeagueService, run: list[str], env: dict[str, str], secret_env: dict[str, str], path: str
) -> None:
    with pytest.raises(LeagueError) as caught:
        service.upload_policy("coworld/orchard:0.1.0", "p1", run=run, env=env, secret_env=secret_env)
    assert path in {p["path"] for p in caught.value.problems}
    assert "v\x00" not in str(caught.value.problems)
    assert service.policies() == []


def test_submit_refuses_a_stored_policy_the_os_would_refuse(service: LeagueService) -> None:
    cw = service.upload_coworld(str(ORCHARD))
    service.create_league("l1", cw.id, variants=["duel"])
    pv = service.upload_policy("coworld/orchard:0.1.0", "old", run=["python", "-m", "orchard.player"])
    # A version stored before these checks existed (written straight to the database).
    service.store.write(
        lambda s: s.execute(
            update(PolicyVersion).where(PolicyVersion.version == 1).values(run=["python", "-c", "x\x00"])
        )
    )
    with pytest.raises(LeagueError) as caught:
        service.submit(pv.id, "l1")
    assert "$.run[2]" in {p["path"] for p in caught.value.problems}
    assert service.store.read(lambda s: s.query(PolicyVersion).count()) == 1


def test_cli_upload_policy_over_the_env_budget_exits_2(tmp_path: Path) -> None:
    # Each value is under the per-string limit (so this very command can start), all of them over 1 MiB.
    envs = [arg for i in range(10) for arg in ("--env", f"K{i}={'v' * 110_000}")]
    db = ["--db", f"sqlite:///{tmp_path / 'league.db'}", "--home", str(tmp_path / "home")]
    proc = run_cli("upload-policy", "coworld/orchard:0.1.0", "--name", "big", *envs, *db, "--json")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    answer = json.loads(proc.stdout)
    assert [p["path"] for p in answer["problems"]] == ["$"]
    assert "1048576" in answer["problems"][0]["message"]
    listed = run_cli("policies", "--json", *db)
    assert json.loads(listed.stdout) == []


def test_cli_run_episode_refuses_nul_before_running(tmp_path: Path) -> None:
    from tests.contract.mutator import nasty_requests

    request = tmp_path / "request.json"
    request.write_text(nasty_requests()["nul_in_env_value"])
    workspace = tmp_path / "ws"
    proc = run_cli(
        "run-episode", str(ORCHARD), str(request), "--runtime", "process", "-o", str(workspace), "--json"
    )
    assert proc.returncode == 2, proc.stderr
    assert json.loads(proc.stdout)["problems"][0]["path"] == "$.players[1].env.A"
    assert not (workspace / "results.json").exists()
