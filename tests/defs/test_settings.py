"""Deployment settings from the environment: a bad value fails the code location's load at once,
with one message naming every bad variable (the Dagster UI shows it on the code location), instead
of a bare `invalid literal for int()` or a failure of every run that plays an episode."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

LOAD = "import coworld_pipeline.definitions as d; d.defs()"


def load_with(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COWORLD_")}
    return subprocess.run(
        [sys.executable, "-c", LOAD],
        env={**clean, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_settings_fail_the_load_naming_each_variable() -> None:
    proc = load_with(
        COWORLD_EPISODE_PARALLELISM="two",
        COWORLD_GAME_MEMORY="lots",
        COWORLD_PLAYER_CPUS="nan",
        COWORLD_PIDS_LIMIT="0",
        COWORLD_RUNTIME="k8s",
        COWORLD_ROLE_RETRIES="-1",
        COWORLD_ROLE_TIMEOUT_SECONDS="inf",
        COWORLD_ARCHIVE_PARTITIONS_ABOVE="lots",
        COWORLD_CELERY_VISIBILITY_TIMEOUT="1",
    )
    assert proc.returncode != 0
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("coworld_pipeline.defs.league.settings.SettingsError: "), message
    for expected in (
        "COWORLD_EPISODE_PARALLELISM must be a whole number >= 1, not 'two'",
        "COWORLD_RUNTIME must be one of docker, process, not 'k8s'",
        "COWORLD_PIDS_LIMIT must be >= 1, not 0",
        "COWORLD_PLAYER_CPUS: nan is not a CPU count from 0.01 to 1024",
        "COWORLD_GAME_MEMORY: 'lots' is not a memory size like 512m, 2g or a byte count",
        "COWORLD_ROLE_RETRIES must be >= 0, not -1",
        "COWORLD_ROLE_TIMEOUT_SECONDS must be a number >= 1, not 'inf'",
        "COWORLD_ARCHIVE_PARTITIONS_ABOVE must be a whole number >= 1, not 'lots'",
        "COWORLD_CELERY_VISIBILITY_TIMEOUT must be a number >= 5, not '1'",
    ):
        assert expected in message, message


def test_good_settings_reach_the_resources() -> None:
    """COWORLD_GAME_CPUS / COWORLD_PLAYER_CPUS (the CLI's variables) configure Dagster's runs too."""
    show = (
        "import coworld_pipeline.defs.league.resources as r; e = r.default_resources()['episode_runtime']; "
    )
    show += "print(e.game_cpus, e.player_cpus, e.pids_limit, e.parallelism)"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COWORLD_")}
    env = {**clean, "COWORLD_GAME_CPUS": "2.5", "COWORLD_PLAYER_CPUS": "0.5", "COWORLD_PIDS_LIMIT": "64"}
    proc = subprocess.run(
        [sys.executable, "-c", show], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2.5", "0.5", "64", "2"]
