"""Scale-out: episode runs executed by Celery workers (dagster-celery, Redis broker and result backend).

With `COWORLD_EXECUTOR=celery` the `play_episodes` job uses dagster-celery's `celery_executor`: the
run worker that Dagster launches only coordinates, and the run's one step (the `episodes` asset, K
episodes played p at a time) is a Celery task executed by whichever worker takes it, on any host.
Each worker plays on the Docker engine its environment names (`DOCKER_HOST`), and the league
records on the episode which worker and engine played each attempt (`played_by`, league/play.py).

Start a worker (any host that reaches Redis, the league database and the Dagster instance storage):

    COWORLD_RUNTIME=docker DOCKER_HOST=unix:///... celery -A coworld_pipeline.defs.league.celery_executor \\
        worker -n b@%h -Q dagster -c 1 --prefetch-multiplier=1

(`dagster-celery worker start -A coworld_pipeline.defs.league.celery_executor -n b -q dagster` runs
the same command.) The worker's Celery name (`b@host`) is the `worker` recorded on its episodes.

Settings (read when the code location, a run worker or a Celery worker loads this module):
- `COWORLD_EXECUTOR`: `in_process` (default) or `celery` (episode runs execute on Celery workers);
- `COWORLD_CELERY_BROKER_URL`: broker and result backend, default `redis://127.0.0.1:18821/0`
  (what `scripts/redis-up.sh` starts);
- `COWORLD_CELERY_VISIBILITY_TIMEOUT`: seconds (default 600) after which the step of a worker that
  died is given to another worker. It must exceed the longest step (K episodes / p x an episode's
  length): a live worker's step that outlasts it is handed out a second time (harmless to the
  league, whose claims refuse a second play, but the run then logs the step twice).

A worker that dies (SIGKILL, or its host) leaves two things behind, handled by two mechanisms:
- its step's Celery message: tasks are acknowledged late (`task_acks_late`), so the message stays
  unacknowledged in Redis and is redelivered to another worker once the visibility timeout has
  passed (`task_reject_on_worker_lost` requeues it at once when only a pool process dies). The
  run's coordinator, which waits for that task's result, therefore finishes instead of waiting
  forever; it stays in progress while no worker is alive, like any queued task.
- its claimed episodes: their lease lapses (`COWORLD_LEASE_SECONDS`), the commissioner sensor
  requeues them as an `interrupted` attempt, and the redelivered step (or, if it ran before the
  lease lapsed, a new run) plays them. The league's attempt-checked claims keep an episode from
  being counted twice whichever step or worker gets to it, and a redelivered step skips what
  is final or running.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

EXECUTORS = ("in_process", "celery")
DEFAULT_BROKER_URL = "redis://127.0.0.1:18821/0"
QUEUE = "dagster"  # dagster-celery's default queue, the one its workers listen on


def executor_name() -> str:
    name = (os.environ.get("COWORLD_EXECUTOR") or "in_process").strip().lower().replace("-", "_")
    if name not in EXECUTORS:
        raise ValueError(f"COWORLD_EXECUTOR must be one of {', '.join(EXECUTORS)}, got {name!r}")
    return name


def broker_url() -> str:
    return (os.environ.get("COWORLD_CELERY_BROKER_URL") or DEFAULT_BROKER_URL).strip()


def visibility_timeout() -> float:
    from coworld_pipeline.defs.league.settings import decimal  # this module stays light (workers)

    return decimal("COWORLD_CELERY_VISIBILITY_TIMEOUT")


def celery_config_source() -> dict[str, Any]:
    """Celery settings shared by the run coordinators (executor) and the workers (`app`)."""
    return {
        # A step is acknowledged when it is done, not when a worker takes it: the message of a
        # worker that dies is redelivered instead of lost (then its run would wait forever).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One step per worker process at a time, and none reserved behind it: an idle worker on
        # another host takes the next run's step instead of it queueing behind a busy one.
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            # dagster-celery's defaults (config_source replaces its dict as a whole)
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
            "visibility_timeout": visibility_timeout(),
            # Look for abandoned messages every 2 s (kombu's default: every 100 s).
            "unacked_restore_interval": 2,
            "unacked_restore_throttle": 1,
        },
        "result_expires": 24 * 3600,
    }


def celery_app_args() -> dict[str, Any]:
    from dagster_celery.executor import CeleryExecutor

    url = broker_url()
    executor = CeleryExecutor.for_cli(broker=url, backend=url, config_source=celery_config_source())
    return executor.app_args()


def play_executor() -> dg.ExecutorDefinition:
    """The executor of `play_episodes`: in-process (default), or Celery workers (scale-out)."""
    if executor_name() == "in_process":
        return dg.in_process_executor
    from dagster_celery import celery_executor

    url = broker_url()
    return celery_executor.configured(
        {"broker": url, "backend": url, "config_source": celery_config_source()},
        name="coworld_celery",
    )


def _worker_app() -> Any:
    """The Celery app of `celery -A coworld_pipeline.defs.league.celery_executor worker`: dagster-celery's
    app and its `execute_plan` task, with the settings above (built on first use: the code location
    imports this module and needs no Celery app)."""
    from celery import signals
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task

    app = make_app(celery_app_args())
    create_task(app)
    create_execute_job_task(app)
    create_resume_job_task(app)

    @signals.celeryd_init.connect(weak=False)
    def _name_the_worker(sender: str | None = None, **_: Any) -> None:
        # league/play.py records this name on every episode the worker claims; pool processes,
        # forked after this signal, inherit it.
        if sender and not os.environ.get("COWORLD_WORKER_NAME"):
            os.environ["COWORLD_WORKER_NAME"] = sender
        # Load the code location once, before the pool forks: otherwise the first step of every pool
        # process spends seconds importing it. (Loading touches no service: nothing to inherit.)
        from coworld_pipeline.definitions import defs

        defs()

    return app


_app: Any = None


def __getattr__(name: str) -> Any:
    # `celery -A <this module>` looks up `app` (then `celery`) on the module.
    global _app
    if name in ("app", "celery"):
        if _app is None:
            _app = _worker_app()
        return _app
    raise AttributeError(name)
