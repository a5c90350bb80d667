"""Every league command's human output (tables and lines, not --json), through the real `coworld` CLI.

One league is built and played once for the module (SQLite, process runtime, Orchard's players, few
ticks): `greedy`, a random player named `[/]` and a player named `[bold]x` that crashes without a
word. The names are Rich markup: a table that let them through would crash (`[/]`) or print
something else (`[bold]x`). Every human output is also checked for the word None and for unrounded
floats, the two ways a table leaks what it was not meant to show.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from coworld_pipeline.league.service import LeagueService
from tests.conftest import run_cli
from tests.league.conftest import FAST, ORCHARD_MANIFEST

LEAGUE = "cli-league"
MARKUP_NAMES = ("[/]", "[bold]x")
RAW_FLOAT = re.compile(r"\d\.\d{5,}")  # 20.307594862839117: a number that missed its format


@dataclass
class LeagueCli:
    """The `coworld` CLI on one league database, and what the set-up commands printed."""

    env: dict[str, str]
    home: Path
    printed: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    def run(self, *args: str, code: int = 0, plain: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command; `plain`: its stdout is ours (tables), so no None and no raw float in it."""
        proc = run_cli(*args, env=self.env, timeout=240)
        assert proc.returncode == code, (args, proc.returncode, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
        if plain and "--json" not in args:
            assert not re.search(r"\bNone\b", proc.stdout), (args, proc.stdout)
            assert not RAW_FLOAT.search(proc.stdout), (args, proc.stdout)
        return proc

    def run_many(self, *commands: tuple[str, ...], code: int = 0) -> list[subprocess.CompletedProcess[str]]:
        """Independent commands, a few at a time: each one is mostly interpreter start-up."""
        with ThreadPoolExecutor(max_workers=3) as pool:
            return list(pool.map(lambda args: self.run(*args, code=code), commands))

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)


def cli_argv(argv: list[str]) -> list[str]:
    return [a for arg in argv for a in ("--run", arg)]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> LeagueCli:
    home = tmp_path_factory.mktemp("league-cli")
    env = {
        **os.environ,
        "COWORLD_HOME": str(home),
        "COWORLD_DATABASE_URL": f"sqlite:///{home / 'league.db'}",
        "COLUMNS": "250",  # ids whole on one line, so a test can find them
    }
    c = LeagueCli(env, home)
    players = {
        "[/]": ["python", "-m", "orchard.players.random"],
        "greedy": ["python", "-m", "orchard.players.greedy"],
        "[bold]x": ["python", "-c", "import sys; sys.exit(3)"],  # crashes before its first word
    }
    # Each set-up command through the CLI once; the rest in-process, as they print nothing new.
    c.printed["upload-coworld"] = c.run("upload-coworld", str(ORCHARD_MANIFEST))
    c.printed["upload-policy"] = c.run("upload-policy", "img", "--name", "[/]", *cli_argv(players["[/]"]))
    svc = LeagueService(env["COWORLD_DATABASE_URL"], home)
    for name in ("greedy", "[bold]x"):
        svc.upload_policy("img", name, run=players[name])
    config = [f"--config={k}={json.dumps(v)}" for k, v in {**FAST, "max_ticks": 20}.items()]
    settings = ["--variant", "duel", "--episodes-per-pair", "1", "--quarantine-after", "2", *config]
    c.printed["league create"] = c.run("league", "create", LEAGUE, "-c", "orchard", *settings)
    c.printed["submit"] = c.run("submit", "[/]", "--league", LEAGUE)
    for name in ("greedy", "[bold]x"):
        svc.submit(name, LEAGUE)
    svc.close()
    c.printed["round run"] = c.run("round", "run", "--league", LEAGUE, "--parallel", "2")
    return c


def test_setup_commands_print_one_line_each(cli: LeagueCli) -> None:
    assert "orchard:0.1.0 uploaded: cow_" in cli.printed["upload-coworld"].stdout
    assert "variants duel, duel-live, four" in cli.printed["upload-coworld"].stdout
    assert "policy [/]:v1 created: " in cli.printed["upload-policy"].stdout
    assert "accepted; membership mem_" in cli.printed["submit"].stdout
    assert f"league {LEAGUE} created: league_" in cli.printed["league create"].stdout


def test_round_run_prints_progress_rankings_and_standings(cli: LeagueCli) -> None:
    out = cli.printed["round run"].stdout
    # A line per episode as it finishes, then the bar's last state, then the round's verdict.
    # Episodes by their readable key, as the Dagster UI and events name them.
    assert len(re.findall(rf"^{LEAGUE}\.r1\.e[123] (succeeded|failed): ", out, re.M)) == 3, out
    assert "player_crashed" in out
    assert re.search(r"round completed .* 3/3", out), out
    verdict = rf"^round {LEAGUE}\.r1: completed in \d+\.\ds; episodes: failed 2, succeeded 1$"
    assert re.search(verdict, out, re.M), out
    assert "round rankings" in out and f"{LEAGUE} / open (level 1)" in out
    standings = out.split(f"{LEAGUE} / open (level 1)")[1]
    for label in ("greedy:v1", "[/]:v1", "[bold]x:v1"):
        assert label in standings
    assert "quarantined" in standings  # the crasher, after its two failures


def test_a_round_whose_episodes_all_failed_says_why_it_has_no_rankings(tmp_path: Path) -> None:
    """No empty rankings table under the verdict: a line saying that nothing was rated, and why.
    (Its own league database: the module's league must stay the only one for the other tests.)"""
    url = f"sqlite:///{tmp_path / 'league.db'}"
    c = LeagueCli({**os.environ, "COWORLD_HOME": str(tmp_path), "COWORLD_DATABASE_URL": url}, tmp_path)
    svc = LeagueService(url, tmp_path)
    svc.upload_coworld(str(ORCHARD_MANIFEST))
    for name, code in (("dud", 4), ("[bold]x", 3)):
        svc.upload_policy("img", name, run=["python", "-c", f"import sys; sys.exit({code})"])
    config = [f"--config={k}={json.dumps(v)}" for k, v in FAST.items()]
    c.run(
        "league",
        "create",
        "all-fail",
        "-c",
        "orchard",
        "--variant",
        "duel",
        "--episodes-per-pair",
        "1",
        *config,
    )
    for name in ("dud", "[bold]x"):
        svc.submit(name, "all-fail")
    svc.close()
    out = c.run("round", "run", "--league", "all-fail").stdout
    assert re.search(r"^round all-fail\.r1: completed in \d+\.\ds; episodes: failed 1$", out, re.M), out
    assert "round rankings: none (its only episode failed, and a failed episode is never rated)" in out
    assert "┃ division" not in out  # the rankings table's header
    shown = c.run("rounds", "all-fail.r1").stdout
    assert "results: none (its only episode failed, and a failed episode is never rated)" in shown


def test_catalogue_tables(cli: LeagueCli) -> None:
    coworlds, policies = (p.stdout for p in cli.run_many(("coworlds",), ("policies",)))
    assert "orchard" in coworlds
    assert "policy versions" in policies
    for name in MARKUP_NAMES:
        assert f"{name}:v1" in policies
    assert "python -m orchard.players.random" in policies


def test_league_tables(cli: LeagueCli) -> None:
    leagues, divisions, memberships, submissions = (
        p.stdout
        for p in cli.run_many(
            ("leagues",),
            ("divisions", "-l", LEAGUE),
            ("memberships", "-l", LEAGUE),
            ("submissions", "-l", LEAGUE),
        )
    )
    assert LEAGUE in leagues and "orchard:0.1.0" in leagues and "#1 completed" in leagues
    assert "manual (coworld round run)" in divisions
    assert all(f"{n}:v1" in memberships for n in MARKUP_NAMES)
    assert "consecutive player failures" in memberships
    assert submissions.count("accepted") == 3
    assert f"league {LEAGUE} paused" in cli.run("league", "pause", LEAGUE).stdout
    assert "no round opened: league is paused" in cli.run("round", "run", "-l", LEAGUE).stdout
    assert f"league {LEAGUE} resumed" in cli.run("league", "resume", LEAGUE).stdout


def test_rounds_and_results_tables(cli: LeagueCli) -> None:
    listing, past_the_end, divisions, standings, top = (
        p.stdout
        for p in cli.run_many(
            ("rounds", "-l", LEAGUE),
            ("rounds", "-l", LEAGUE, "--offset", "99999999"),
            ("divisions",),
            ("results", LEAGUE),
            ("results", LEAGUE, "--limit", "1"),
        )
    )
    assert "Rows 1-1 of 1" in listing
    assert "No rows at --offset 99999999 (1 in all)" in past_the_end
    assert all(f"{n}:v1" in standings for n in MARKUP_NAMES)
    assert re.search(r"│ 1 +│ \S+:v1 ", standings)
    assert "2 more (rows 2-3)" in top
    round_key = f"{LEAGUE}.r1"  # rounds are listed by their readable key (their partition key)
    assert round_key in listing
    round_id = cli.json("rounds", "-l", LEAGUE)["entries"][0]["id"]
    division = re.search(r"div_[0-9a-f-]{36}", divisions).group(0)
    one, by_round, by_division, by_id, short = (
        p.stdout
        for p in cli.run_many(
            ("rounds", round_key),
            ("results", round_key),
            ("results", division),
            ("rounds", round_id),
            ("rounds", "r1", "-l", LEAGUE),
        )
    )
    assert "completed" in one and "results" in one and "greedy:v1" in one
    assert one == by_id == short
    assert f"round {round_key}" in by_round and "[/]:v1" in by_round
    assert f"{LEAGUE} / open (level 1)" in by_division


def test_episode_tables_and_files(cli: LeagueCli, tmp_path: Path) -> None:
    episodes = cli.json("episodes", "-l", LEAGUE)
    good = next(e for e in episodes if e["status"] == "succeeded")
    crashed = next(e for e in episodes if e["error"] and e["error"]["error_type"] == "player_crashed")
    slot = crashed["error"]["slot"]
    table, one, written, listing, empty, replays, opened = cli.run_many(
        ("episodes", "-l", LEAGUE),
        ("episodes", good["id"]),
        ("episode-results", good["id"], "-o", str(tmp_path / "results.json")),
        ("episode-logs", good["id"]),
        ("episode-logs", crashed["id"], "--agent", str(slot)),
        ("replays", "-l", LEAGUE),
        ("replay-open", good["id"], "--print-only"),
    )
    assert table.stdout.count(f"{LEAGUE}.r1.e") == 3 and "player_crashed" in table.stdout
    assert "[/]:v1" in table.stdout
    assert good["key"] in one.stdout and "yes" in one.stdout
    # The readable key, its short form with --league, and the id name the same episode.
    number = good["key"].rpartition(".e")[2]
    same = [
        cli.json(*args) for args in (("episodes", good["key"]), ("episodes", f"r1-e{number}", "-l", LEAGUE))
    ]
    assert [e["id"] for e in same] == [good["id"]] * 2
    assert "wrote " in written.stdout and json.loads((tmp_path / "results.json").read_text())["scores"]
    assert "policy_agent_1.log" in listing.stdout and "game.stdout.log" in listing.stdout
    # A player that crashed without a word: its empty log is said to be empty, with the episode's error.
    assert empty.stdout.strip() == ""
    assert f"the log of agent {slot} of {crashed['key']} is empty" in empty.stderr
    assert f"player_crashed (slot {slot})" in empty.stderr
    assert "coworld replay-open" in replays.stdout and "[/]:v1" in replays.stdout
    assert "replay.json" in opened.stdout and "coworld orchard:0.1.0" in opened.stdout
    # Raw files, printed as they are (game output may hold any number).
    assert json.loads(cli.run("episode-results", good["id"], plain=False).stdout)["scores"]
    assert "[orchard]" in cli.run("episode-logs", good["id"], "--game", plain=False).stdout


def test_downloads_never_replace_a_file_of_another_kind(cli: LeagueCli, tmp_path: Path) -> None:
    """episode-results -o, episode-logs -d and replays -o check where they write before they read."""
    good = next(e for e in cli.json("episodes", "-l", LEAGUE) if e["status"] == "succeeded")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    refused = {
        ("episode-results", good["id"], "-o", str(notes)): "--output {} exists and is not a JSON document",
        ("episode-results", good["id"], "-o", str(tmp_path)): "--output {} is a directory",
        ("episode-logs", good["id"], "-d", str(notes)): "--download-dir {} is a file, not a directory",
        ("replays", "-l", LEAGUE, "-o", str(notes)): "--download-dir {} is a file, not a directory",
    }
    for args, needle in refused.items():
        proc = cli.run(*args, code=2)
        assert proc.stderr.startswith("error: " + needle.format(args[-1])), proc.stderr
    assert notes.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    # One log printed, or all copied: never both asked with one silently skipped.
    both = cli.run("episode-logs", good["id"], "-d", str(tmp_path / "x"), "--game", code=2)
    assert "--game and --download-dir cannot be combined" in both.stderr, both.stderr
    downloads = tmp_path / "downloads"
    logs, _ = cli.run_many(
        ("episode-logs", good["id"], "-d", str(downloads)), ("replays", "-l", LEAGUE, "-o", str(downloads))
    )
    # What was copied, and where to: the destination paths, not the sources.
    assert re.search(r"copied \d+ log\(s\) to", logs.stdout), logs.stdout
    assert str(downloads) in logs.stdout and "file://" not in logs.stdout, logs.stdout
    names = sorted(p.name for p in downloads.iterdir())
    assert "index.json" in names and f"{good['id']}.json" in names and not [n for n in names if "tmp" in n]


def test_paging_past_what_a_database_can_count_is_a_usage_error(cli: LeagueCli) -> None:
    proc = cli.run("rounds", "-l", LEAGUE, "--offset", str(10**20), code=2)
    assert "--offset" in proc.stderr and "OverflowError" not in proc.stderr


def test_events_table(cli: LeagueCli) -> None:
    misspelt = cli.run("events", "-l", LEAGUE, "--type", "round_open")  # not an error: it may come yet
    assert "no event of type 'round_open' was ever recorded (types recorded: " in " ".join(
        misspelt.stderr.split()
    ), misspelt.stderr
    assert "round_opened" in misspelt.stderr
    out = cli.run("events", "-l", LEAGUE, "--limit", "100").stdout
    for kind in ("league_created", "round_opened", "policy_quarantined", "standings_updated"):
        assert kind in out
    assert "[bold]x:v1 quarantined" in out


def test_json_shapes_unchanged(cli: LeagueCli) -> None:
    league = cli.json("leagues", LEAGUE)
    assert set(league) >= {"id", "name", "coworld", "variants", "divisions", "memberships", "last_round"}
    page = cli.json("rounds", "-l", LEAGUE)
    assert set(page) == {"entries", "total_count", "limit", "offset"}
    groups = cli.json("results", LEAGUE)
    assert set(groups[0]) == {"division", "league", "standings"}
    assert set(groups[0]["standings"][0]) == {
        "policy_version_id", "label", "membership_id", "status", "mu", "sigma", "rating",
        "episodes", "wins", "average_score", "rank",
        # added with the confidence figures and the ranked/unrated/inactive sections:
        "section", "skill_interval", "p_above_next", "settled",
    }  # fmt: skip
    episode = cli.json("episodes", "-l", LEAGUE)[0]
    assert {"id", "status", "participants", "scores", "error", "replay_path", "workspace"} <= set(episode)


BAD_INPUT = [
    (("round", "run", "-l", "nope"), "unknown league 'nope'"),
    (("results", "nope"), "unknown league 'nope'"),
    (("episodes", ""), "the episode id must not be empty"),
    (("leagues", ""), "the league must not be empty"),
    (("events", "--league", ""), "--league must not be empty"),
]


def test_bad_input_is_one_line_and_exit_2(cli: LeagueCli) -> None:
    procs = cli.run_many(*(args for args, _ in BAD_INPUT), code=2)
    for (args, needle), proc in zip(BAD_INPUT, procs, strict=True):
        assert proc.stdout == "", args  # nothing started: no progress bar, no table
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {needle}"), (args, proc.stderr)
    chosen = BAD_INPUT[::3]
    for (args, needle), proc in zip(
        chosen, cli.run_many(*((*a, "--json") for a, _ in chosen), code=2), strict=True
    ):
        assert json.loads(proc.stdout)["ok"] is False and needle in json.loads(proc.stdout)["error"], args


# ---- the pieces in-process: no league needed -------------------------------------------------------


def test_tables_escape_markup_and_format_numbers() -> None:
    from coworld_cli.league import render
    from coworld_cli.output import console
    from coworld_pipeline.league.views import DivisionRef, DivisionStandings, Ref, StandingRow

    rows = tuple(
        StandingRow(
            i + 1, f"pv{i}", f"{name}:v1", f"mem_{i}", "active", 25.0, 8.333333, 20.307594862839117, 3, 1, avg
        )
        for i, (name, avg) in enumerate([("[/]", None), ("[bold]x", 1 / 3), (":fire:", 2.0)])
    )
    groups = [DivisionStandings(Ref("league_1", "[red]L"), DivisionRef("div_1", "open", 1), rows)]
    with console.capture() as captured:
        render.standings_tables(groups, limit=2)
        render.line("league {} created", "[/]")
    out = captured.get()
    assert "[red]L / open (level 1)" in out and "[/]:v1" in out and "[bold]x:v1" in out
    assert "20.31" in out and "0.33" in out and not RAW_FLOAT.search(out) and "None" not in out
    assert "1 more (rows 3-3)" in out and ":fire:" not in out  # --limit 2
    assert "league [/] created" in out


def test_commands_are_functions_callable_without_typer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    from coworld_cli.league import leagues, rounds
    from coworld_pipeline.league.service import LeagueService

    db, home = f"sqlite:///{tmp_path / 'league.db'}", str(tmp_path)
    LeagueService(db, home).close()  # a named database is created by uploads, not by listings
    leagues.leagues(db=db, home=home, as_json=True)
    assert json.loads(capsys.readouterr().out) == []
    with pytest.raises(typer.Exit) as exit_info:
        rounds.results("nope", db=db, home=home, as_json=True)
    assert exit_info.value.exit_code == 2
    assert json.loads(capsys.readouterr().out) == {
        "ok": False,
        "error": "unknown league 'nope'",
        "problems": [],
    }


def test_league_overview(cli: LeagueCli) -> None:
    """The current round and its progress, failures and quarantines with reasons, the next round."""
    (out,) = (p.stdout for p in cli.run_many(("league", "overview", LEAGUE)))
    assert f"{LEAGUE}.r1" in out and "completed" in out and "3/3 played" not in out  # one failed
    assert re.search(r"\d/3 played, \d failed", out), out
    assert "manual (no cadence" in out
    failed = out.split("failed episodes")[1]
    assert "player_crashed" in failed and f"{LEAGUE}.r1.e" in failed and "[bold]x:v1" in failed
    assert "quarantined" in out and "consecutive player failures" in out.split("quarantined")[-1]
    data = cli.json("league", "overview", LEAGUE)
    assert data["current_round"]["failed"] >= 1 and data["quarantines"][0]["policy"] == "[bold]x:v1"


def test_a_bad_lease_setting_is_a_usage_error(tmp_path: Path) -> None:
    """League modules read COWORLD_LEASE_SECONDS when they load: a bad one is named, exit 2, no traceback."""
    env = {**os.environ, "COWORLD_HOME": str(tmp_path), "COWORLD_LEASE_SECONDS": "soon"}
    env.pop("COWORLD_DATABASE_URL", None)
    proc = run_cli("leagues", env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "COWORLD_LEASE_SECONDS must be a positive number of seconds, not 'soon'" in proc.stderr
