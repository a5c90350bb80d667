"""Telling a dead Dagster run from a live one (the sensor then requeues its episodes).

A run records its worker (`coworld/worker=<host>:<pid>`) when it starts. The commissioner sensor
treats a run as dead when Dagster marks it failed or canceled (the code server reports a run worker
killed by SIGKILL within about a second), or when it is still "in progress" but its worker process
on this host is gone (e.g. the code server died with it); such runs are marked failed.
"""

from __future__ import annotations

import os
import socket

import dagster as dg

from coworld_pipeline.runtime.janitor import pid_alive

TAG_WORKER = "coworld/worker"


def worker_tag() -> dict[str, str]:
    return {TAG_WORKER: f"{socket.gethostname()}:{os.getpid()}"}


def worker_gone(tags: dict[str, str]) -> bool:
    """True when the run's worker ran on this host and that process no longer exists."""
    host, _, pid = tags.get(TAG_WORKER, "").rpartition(":")
    return bool(host) and host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def fail_lost_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    instance.report_engine_event(
        f"coworld: the run worker ({run.tags.get(TAG_WORKER)}) is gone; marking the run failed "
        "so that the commissioner requeues its episodes",
        run,
    )
    instance.report_run_failed(run)


def worker_alive(tags: dict[str, str]) -> bool:
    """True when the run's worker ran on this host and is still running (e.g. a canceled run still
    finishing the episodes it had started): its episodes are not lost yet."""
    host, _, pid = tags.get(TAG_WORKER, "").rpartition(":")
    return bool(host) and host == socket.gethostname() and pid.isdigit() and pid_alive(int(pid))
