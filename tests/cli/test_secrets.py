"""--secret-env reaches only player processes/containers: never the game, a log we write, an
artifact or the CLI's output."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import typer

from coworld_cli.secret_env import resolve_secret_env
from coworld_pipeline.contract.episode_request import certification_request
from coworld_pipeline.contract.manifest import load_manifest
from coworld_pipeline.runtime import EpisodeOptions, make_runtime, run_episode
from tests.conftest import COWORLD, REPO, SESSION_MARK, make_testkit, run_cli, wait_for

SECRET_VALUE = "s3cr3t-value-9f8e7d"


def env_keys(log: Path) -> list[str]:
    for line in log.read_text().splitlines():
        if line.startswith("ENV_KEYS="):
            return json.loads(line.removeprefix("ENV_KEYS="))
    raise AssertionError(f"no ENV_KEYS line in {log}")


@pytest.mark.parametrize("runtime", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_secret_env_reaches_only_players(
    tmp_path: Path, runtime: str, request: pytest.FixtureRequest
) -> None:
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    manifest = make_testkit(
        tmp_path, game_env={"TESTKIT_FAULT": "print_env"}, player_env={"TESTKIT_PLAYER": "print_env"}
    )
    workspace = tmp_path / "ws"
    proc = run_cli(
        "run-episode",
        str(manifest),
        "--runtime",
        runtime,
        "-o",
        str(workspace),
        "--secret-env",
        f"MY_API_KEY={SECRET_VALUE}",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MY_API_KEY" in env_keys(workspace / "logs" / "policy_agent_1.log")
    assert "MY_API_KEY" not in env_keys(workspace / "logs" / "game.stdout.log")
    assert SECRET_VALUE not in proc.stdout + proc.stderr
    for path in workspace.rglob("*"):
        if path.is_file():
            assert SECRET_VALUE.encode() not in path.read_bytes(), f"secret leaked into {path}"


def test_malformed_secret_env_is_a_usage_error_without_the_value(tmp_path: Path) -> None:
    manifest = make_testkit(tmp_path)
    proc = run_cli("run-episode", str(manifest), "--runtime", "process", "--secret-env", SECRET_VALUE)
    assert proc.returncode == 2
    assert "--secret-env" in proc.stderr
    assert SECRET_VALUE not in proc.stdout + proc.stderr


@pytest.mark.parametrize("runtime", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_players_get_every_generations_env_and_only_their_own_secrets(
    tmp_path: Path, runtime: str, request: pytest.FixtureRequest
) -> None:
    """0.1.0 players read COGAMES_ENGINE_WS_URL, later ones COWORLD_PLAYER_WS_URL: both are set.
    A slot's secret (a league policy's --secret-env) reaches that slot only."""
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    path = make_testkit(
        tmp_path, game_env={"TESTKIT_FAULT": "print_env"}, player_env={"TESTKIT_PLAYER": "print_env"}
    )
    data = json.loads(path.read_text())
    data["player"][0]["env"] = {"TESTKIT_PLAYER": "print_env"}
    path.write_text(json.dumps(data))
    workspace = tmp_path / "ws"
    outcome = run_episode(
        certification_request(load_manifest(path)),
        workspace,
        make_runtime(runtime, base_dir=path.parent),
        EpisodeOptions(timeout_seconds=60, secret_env={1: {"SLOT1_API_KEY": SECRET_VALUE}}),
    )
    assert outcome.ok, outcome.error
    keys = [set(env_keys(workspace / "logs" / f"policy_agent_{slot}.log")) for slot in (0, 1)]
    for slot_keys in keys:
        assert {"COWORLD_PLAYER_WS_URL", "COGAMES_ENGINE_WS_URL"} <= slot_keys
    assert "SLOT1_API_KEY" in keys[1] and "SLOT1_API_KEY" not in keys[0]
    assert "SLOT1_API_KEY" not in env_keys(workspace / "logs" / "game.stdout.log")
    for file in workspace.rglob("*"):
        if file.is_file():
            assert SECRET_VALUE.encode() not in file.read_bytes(), f"secret leaked into {file}"


# ---- --secret-env KEY (from the environment) and --secret-env-file -------------------------------

FILE_SECRET = "f1le-s3cret-7a6b5c"
ENV_SECRET = "env-s3cret-4d3c2b"


def proc_info(pid: int) -> tuple[str, dict[str, str]]:
    """(command line, environment) of a live process."""
    base = Path(f"/proc/{pid}")
    cmdline = (base / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    pairs = (base / "environ").read_bytes().split(b"\0")
    env = dict(p.decode(errors="replace").partition("=")[::2] for p in pairs if b"=" in p)
    return cmdline, env


def session_pids() -> list[int]:
    """Live processes (not zombies) started by this test session."""
    mark = SESSION_MARK.encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if mark not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().split(") ", 1)[1].startswith("Z"):
                continue
        except OSError:
            continue
        pids.append(int(entry.name))
    return pids


def container_envs(owner_pid: int) -> dict[str, list[dict]]:
    """role -> [container attrs] of the running containers that process `owner_pid` started (other
    sessions on the same Docker engine have theirs)."""
    import docker

    owner = f"{socket.gethostname()}:{owner_pid}"
    out: dict[str, list[dict]] = {}
    for c in docker.from_env().containers.list(filters={"label": f"io.coworld.owner={owner}"}):
        out.setdefault(c.labels.get("io.coworld.role", ""), []).append(c.attrs)
    return out


@pytest.mark.parametrize("runtime", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_secret_from_environment_and_file_reach_players_only_never_argv(
    tmp_path: Path, runtime: str, request: pytest.FixtureRequest
) -> None:
    """`--secret-env KEY` and `--secret-env-file`: the values are in no command line (the CLI's, the
    game's or a player's), in every player's environment, not in the game's, and in no output or file."""
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    manifest = make_testkit(tmp_path, game_env={"TESTKIT_FAULT": "hang"})
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text(f"# player secrets\n\nexport FILE_API_KEY='{FILE_SECRET}'\n")
    workspace = tmp_path / "ws"
    argv = [*COWORLD, "run-episode", str(manifest), "--runtime", runtime, "-o", str(workspace)]
    argv += ["--timeout", "120", "--secret-env", "ENV_API_KEY", "--secret-env-file", str(secrets_file)]
    cli = subprocess.Popen(
        argv,
        cwd=REPO,
        env={**os.environ, "ENV_API_KEY": ENV_SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if runtime == "process":

            def players_and_game() -> dict[str, list[tuple[str, dict[str, str]]]] | None:
                found: dict[str, list[tuple[str, dict[str, str]]]] = {}
                for pid in session_pids():
                    try:
                        cmdline, env = proc_info(pid)
                    except OSError:
                        continue
                    for role in ("testkit.game", "testkit.player"):
                        if role in cmdline:
                            found.setdefault(role, []).append((cmdline, env))
                ready = len(found.get("testkit.player", [])) == 2 and "testkit.game" in found
                return found if ready else None

            running = wait_for(players_and_game, 60, "the game and both players to run", 0.05)
            for _, env in running["testkit.player"]:
                assert env.get("ENV_API_KEY") == ENV_SECRET and env.get("FILE_API_KEY") == FILE_SECRET
            ((_, game_env),) = running["testkit.game"]
            assert "ENV_API_KEY" not in game_env and "FILE_API_KEY" not in game_env
            cmdlines = [proc_info(pid)[0] for pid in session_pids() if Path(f"/proc/{pid}").exists()]
        else:
            running = wait_for(
                lambda: (lambda c: c if len(c.get("player", [])) == 2 and c.get("game") else None)(
                    container_envs(cli.pid)
                ),
                90,
                "the game and both player containers to run",
                0.1,
            )
            for attrs in running["player"]:
                env = dict(e.partition("=")[::2] for e in attrs["Config"]["Env"])
                assert env.get("ENV_API_KEY") == ENV_SECRET and env.get("FILE_API_KEY") == FILE_SECRET
            game_keys = {e.partition("=")[0] for e in running["game"][0]["Config"]["Env"]}
            assert not {"ENV_API_KEY", "FILE_API_KEY"} & game_keys
            cmdlines = [
                " ".join([*(a["Config"].get("Entrypoint") or []), *(a["Config"].get("Cmd") or [])])
                for attrs in running.values()
                for a in attrs
            ]
            cmdlines += [proc_info(pid)[0] for pid in session_pids() if Path(f"/proc/{pid}").exists()]
        assert any("run-episode" in c for c in cmdlines)
        for cmdline in cmdlines:
            assert ENV_SECRET not in cmdline and FILE_SECRET not in cmdline, cmdline
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 130, err
    for secret in (ENV_SECRET, FILE_SECRET):
        assert secret not in out + err
        for path in workspace.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"secret leaked into {path}"


def resolve_or_exit(
    capsys: pytest.CaptureFixture[str], pairs: list[str], files: list[Path], environ: dict[str, str]
) -> str:
    """The one-line error (stderr) of a rejected secret set-up; fails unless it exits 2."""
    with pytest.raises(typer.Exit) as exc:
        resolve_secret_env(pairs, files, environ=environ)
    assert exc.value.exit_code == 2
    return " ".join(capsys.readouterr().err.split())


def test_secret_env_file_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.env"
    good.write_text('# comment\n\n  A_KEY = plain value \nexport B_KEY="quoted = value"\nEMPTY=\n')
    environ = {"FROM_ENV": ENV_SECRET, "OTHER": "kept"}
    resolved = resolve_secret_env(["FROM_ENV", "INLINE=x=y"], [good], environ=environ)
    assert resolved == {
        "A_KEY": "plain value",
        "B_KEY": "quoted = value",
        "EMPTY": "",
        "FROM_ENV": ENV_SECRET,
        "INLINE": "x=y",
    }
    assert environ == {"OTHER": "kept"}  # taken out of the CLI's environment: host runnables never inherit it

    cases = {
        "no_equals.env": (f"OK=1\n\n{FILE_SECRET}\n", "line 3: expected KEY=VALUE"),
        "bad_key.env": ("OK=1\nmy-key=1\n", "line 2: the key"),
        "repeated.env": ("A=1\n# c\nA=2\n", "line 3: 'A' is repeated (first on line 1)"),
        "nul.env": ("A=x\0y\n", "line 1: the value of 'A' contains a NUL byte"),
        "binary.env": (b"\xff\xfe", "not UTF-8 text"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        message = resolve_or_exit(capsys, [], [path], {})
        assert f"--secret-env-file {path}" in message and expected in message, message
        assert FILE_SECRET not in message
    assert "no such file" in resolve_or_exit(capsys, [], [tmp_path / "absent.env"], {})
    assert "is a directory" in resolve_or_exit(capsys, [], [tmp_path], {})
    fifo = tmp_path / "fifo.env"
    os.mkfifo(fifo)  # opening it would block until a writer comes: refused without opening
    assert "not a regular file" in resolve_or_exit(capsys, [], [fifo], {})
    huge = tmp_path / "huge.env"
    huge.write_text("BIG=" + "x" * 200_000 + "\n")  # the OS refuses an env entry over 128 KiB
    message = resolve_or_exit(capsys, [], [huge], {})
    assert "secret 'BIG'" in message and "at most 131072 bytes" in message and "xxxx" not in message
    dup = tmp_path / "dup.env"
    dup.write_text("A_KEY=1\n")
    assert "'A_KEY' is given twice" in resolve_or_exit(capsys, ["A_KEY=2"], [dup], {})
    assert "'A_KEY' is given twice" in resolve_or_exit(capsys, ["A_KEY=2", "A_KEY=3"], [], {})
    unset = resolve_or_exit(capsys, ["MISSING_KEY"], [], {})
    assert "--secret-env #1: 'MISSING_KEY' is not set in your environment" in unset
    # A lower-case "name" may be a value pasted in the wrong place: it is never echoed.
    pasted = resolve_or_exit(capsys, ["sk_live_abc123"], [], {})
    assert "is not set" in pasted and "sk_live_abc123" not in pasted
    assert ENV_SECRET not in resolve_or_exit(capsys, [ENV_SECRET], [], {})


@pytest.mark.parametrize("command", ["run-episode", "play"])
def test_unset_secret_is_exit_2_before_anything_runs(tmp_path: Path, command: str) -> None:
    manifest = make_testkit(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "NOT_SET_ANYWHERE"}
    workspace = tmp_path / "ws"
    proc = run_cli(
        command,
        str(manifest),
        "--runtime",
        "process",
        "-o",
        str(workspace),
        "--secret-env",
        "NOT_SET_ANYWHERE",
        env=env,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "'NOT_SET_ANYWHERE' is not set in your environment" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not workspace.exists()


def test_league_policy_secret_from_environment_and_file_reaches_its_player_only(tmp_path: Path) -> None:
    """upload-policy --secret-env KEY / --secret-env-file: stored encrypted (the plain value is in no
    file of the home, database included), shown by name only, and given to that policy's player only."""
    from coworld_pipeline.league.service import LeagueService
    from tests.league.conftest import FAST, ORCHARD_MANIFEST

    home = tmp_path / "home"
    env = {**os.environ, "COWORLD_HOME": str(home), "COWORLD_DATABASE_URL": f"sqlite:///{home / 'l.db'}"}
    env.pop("COWORLD_SECRET_KEY", None)
    svc = LeagueService(env["COWORLD_DATABASE_URL"], home)
    svc.upload_coworld(ORCHARD_MANIFEST)
    svc.close()
    # Prints the names of its environment, then plays Orchard's random player.
    show_env = (
        "import os, runpy; print('ENV_KEYS=' + ' '.join(sorted(os.environ)), flush=True); "
        "runpy.run_module('orchard.players.random', run_name='__main__')"
    )
    secrets_file = tmp_path / "policy.env"
    secrets_file.write_text(f"FILE_API_KEY={FILE_SECRET}\n")
    upload = run_cli(
        "upload-policy",
        "img",
        "--name",
        "keyed",
        "--run",
        "python",
        "--run",
        "-c",
        "--run",
        show_env,
        "--secret-env",
        "ENV_API_KEY",
        "--secret-env-file",
        str(secrets_file),
        "--json",
        env={**env, "ENV_API_KEY": ENV_SECRET},
    )
    assert upload.returncode == 0, upload.stderr
    assert sorted(json.loads(upload.stdout)["secret_env_keys"]) == ["ENV_API_KEY", "FILE_API_KEY"]
    plain = run_cli(
        "upload-policy",
        "img",
        "--name",
        "plain",
        "--run",
        "python",
        "--run",
        "-c",
        "--run",
        show_env,
        env=env,
    )
    assert plain.returncode == 0, plain.stderr
    svc = LeagueService(env["COWORLD_DATABASE_URL"], home)
    svc.create_league("sec", "orchard", variants=["duel"], config_overrides=FAST)
    for name in ("keyed", "plain"):
        svc.submit(name, "sec")
    svc.close()
    played = run_cli("round", "run", "--league", "sec", "--json", env=env, timeout=240)
    assert played.returncode == 0, played.stderr
    episodes = json.loads(run_cli("episodes", "--league", "sec", "--json", env=env).stdout)
    assert episodes and all(e["status"] == "succeeded" for e in episodes), episodes
    for episode in episodes:
        logs = Path(episode["workspace"]) / "logs"
        for seat in episode["participants"]:
            log = (logs / f"policy_agent_{seat['position']}.log").read_text()
            keys = set(log.split("ENV_KEYS=", 1)[1].splitlines()[0].split())
            has = {"ENV_API_KEY", "FILE_API_KEY"} <= keys
            assert has == seat["label"].startswith("keyed"), (seat, sorted(keys))
    for output in (upload.stdout + upload.stderr, played.stdout + played.stderr):
        assert ENV_SECRET not in output and FILE_SECRET not in output
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert ENV_SECRET.encode() not in data and FILE_SECRET.encode() not in data, path
