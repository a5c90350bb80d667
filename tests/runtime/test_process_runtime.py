"""The process runtime's tie between a child and the runner that started it (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from coworld_pipeline.runtime.process_runtime import die_with

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")


def test_a_child_whose_runner_died_before_the_tie_was_made_goes_at_once():
    """A runner SIGKILLed between fork and prctl sends its child no signal: without a look at its
    parent the child (a game) would run on for good. Here the child is told of a parent it does not
    have, as it would be after such a death, and must go instead of running `sleep`."""
    orphan = subprocess.Popen(["sleep", "60"], preexec_fn=die_with(os.getpid() + 4_194_304))
    assert orphan.wait(timeout=10) == 1
    tied = subprocess.Popen(["sh", "-c", "exit 3"], preexec_fn=die_with(os.getpid()))
    assert tied.wait(timeout=10) == 3  # with its parent alive, the program runs as given
