"""Playing league episodes: the one league module that runs anything from `runtime/`.

One path for every caller (`coworld round run` and the Dagster `episodes` asset):

    claim_and_prepare (1 write) -> EpisodePlayer.play -> record_outcome (1 write)

`RuntimePlayer` is the runtime implementation of `EpisodePlayer`; it is built once per CLI round or
Dagster run, so runtimes (one per coworld directory for `process`, one for `docker`) keep their
caches and resource limits across episodes. `EpisodeBatch` plays episodes in a bounded thread pool;
`play_batch` plays a fixed list and yields each result as it is recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coworld_pipeline.league.claims import (
    LEASE_RENEW_SECONDS,
    claim_and_prepare,
    renew_leases,
    requeue_episodes,
)
from coworld_pipeline.league.handoff import EpisodeOutcome, EpisodePlayer, PreparedEpisode
from coworld_pipeline.league.live import record_live_url
from coworld_pipeline.league.secrets import SecretKeyError
from coworld_pipeline.league.status import TERMINAL
from coworld_pipeline.league.unit import Store
from coworld_pipeline.league.verdicts import record_outcome
from coworld_pipeline.league.views import EpisodeView
from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType

if TYPE_CHECKING:
    from coworld_pipeline.runtime.artifacts import ArtifactStore
    from coworld_pipeline.runtime.base import ResourceLimits, Runtime


class RuntimePlayer:
    """Plays prepared episodes with a real runtime (`process` or `docker`), storing their artifacts."""

    def __init__(
        self,
        runtime_name: str = "process",
        limits: dict[str, ResourceLimits] | None = None,
        artifact_store: ArtifactStore | None = None,
    ):
        from coworld_pipeline.runtime import RUNTIMES

        if runtime_name not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime_name!r}: choose one of {', '.join(RUNTIMES)}")
        self.runtime_name = runtime_name
        self.limits = dict(limits or {})
        self.artifact_store = artifact_store
        self._runtimes: dict[str | None, Runtime] = {}
        self._lock = threading.Lock()

    def runtime_for(self, source_dir: str | None) -> Runtime:
        """One runtime per coworld directory (process: its working directory), one in all for docker."""
        from coworld_pipeline.runtime import make_runtime

        key = source_dir if self.runtime_name == "process" else None
        with self._lock:
            runtime = self._runtimes.get(key)
            if runtime is None:
                base_dir = Path(source_dir) if source_dir else None
                runtime = make_runtime(self.runtime_name, base_dir=base_dir, limits=self.limits or None)
                self._runtimes[key] = runtime
            return runtime

    @property
    def placement(self) -> dict[str, str]:
        """Who plays and where, stored with each claim: the worker (`COWORLD_WORKER_NAME`, which a
        Celery worker sets to its name, else `<host>:<pid>`) and the engine (docker: `DOCKER_HOST`,
        the engine `docker.from_env` talks to)."""
        worker = os.environ.get("COWORLD_WORKER_NAME") or f"{socket.gethostname()}:{os.getpid()}"
        if self.runtime_name == "docker":
            engine = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        else:
            engine = f"{self.runtime_name}@{socket.gethostname()}"
        return {"worker": worker, "engine": engine}

    def play(self, episode: PreparedEpisode) -> EpisodeOutcome:
        from coworld_pipeline.runtime import EpisodeOptions, run_episode

        runtime = self.runtime_for(episode.source_dir)
        # Probes re-check the game's side of the contract on every episode (about 0.1 s) and connect a
        # /global viewer as a spectator would: games may wait for one before exiting (Orchard does).
        options = EpisodeOptions(
            timeout_seconds=episode.timeout_seconds, secret_env=episode.secrets, probes=True, purpose="league"
        )
        if episode.on_live is not None:
            options.on_game_ready = lambda links: episode.on_live(links.global_url)  # type: ignore[misc]
        store = self.artifact_store
        if store is not None:
            options.game_output_uris = store.game_output_uris(episode.public_id)
            options.fetch_output = store.output_fetcher(episode.public_id)
        result = run_episode(episode.request, episode.workspace, runtime, options)
        outcome = EpisodeOutcome.of(result, episode.workspace)
        if store is not None:
            try:
                outcome.artifacts = store.put_episode_dir(episode.public_id, outcome.workspace)
            except Exception as exc:  # the episode's verdict stands; the UI shows the upload error
                outcome.artifacts = {"error": f"artifact upload failed: {exc}"}
        return outcome


class CallablePlayer:
    """An `EpisodePlayer` from `fn(request, workspace, secrets_by_slot)` (tests, simulations)."""

    def __init__(self, fn: Callable[[Any, Path, dict[int, dict[str, str]]], Any]):
        self.fn = fn

    def play(self, episode: PreparedEpisode) -> EpisodeOutcome:
        return EpisodeOutcome.of(
            self.fn(episode.request, episode.workspace, episode.secrets), episode.workspace
        )


def archive_attempt(workspace: Path, attempt: int) -> None:
    """Keep an earlier attempt's files under `previous_attempts/attempt-N/` before re-running.

    The directory itself moves there, not just its files: a lost attempt's game and players may still
    run (their worker died on another host, and nobody there has stopped them yet) and write into
    the workspace they have mounted (e.g. a `player_failure.json`). Moved, they write into their own
    attempt's archive instead of into the attempt being played now.
    """
    if attempt <= 1 or not workspace.exists():
        return
    archive = workspace / "previous_attempts"
    dest = archive / f"attempt-{attempt - 1}"
    if dest.exists():  # archived before (a retry of this call): add what is new
        for child in list(workspace.iterdir()):
            if child.name != "previous_attempts":
                shutil.move(str(child), str(dest / child.name))
        return
    lost = workspace.with_name(f"{workspace.name}.attempt-{attempt - 1}")
    workspace.rename(lost)
    workspace.mkdir()
    if (lost / "previous_attempts").exists():
        (lost / "previous_attempts").rename(archive)
    else:
        archive.mkdir()
    lost.rename(dest)


@dataclass(frozen=True)
class Played:
    """One episode a batch handled: `episode` None when it was not pending (not played here)."""

    ereq_id: str  # raw
    status: str
    episode: EpisodeView | None = None
    platform_error: str | None = None  # the league could not claim or record it (the sensor requeues)

    @property
    def final(self) -> bool:
        return self.status in TERMINAL


class LeaseKeeper:
    """Renews the leases of the claims this process holds, every `every` seconds, from one thread.

    Without renewals (the process was killed, or stalled for a whole lease) any runner requeues the
    episodes once their lease lapses (`claims.requeue_stale`).
    """

    def __init__(self, store: Store, every: float = LEASE_RENEW_SECONDS):
        self.store, self.every = store, every
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, ereq_id: str, attempt: int) -> None:
        with self._lock:
            self._held[ereq_id] = attempt
            if self._thread is None:
                self._thread = threading.Thread(target=self._renew, name="lease-keeper", daemon=True)
                self._thread.start()

    def release(self, ereq_id: str) -> None:
        with self._lock:
            self._held.pop(ereq_id, None)

    def _renew(self) -> None:
        while not self._stop.wait(self.every):
            with self._lock:
                held = dict(self._held)
            with contextlib.suppress(Exception):  # a missed renewal is retried next period
                for lost in renew_leases(self.store, held):
                    self.release(lost)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.every + 5)


def execute_episode(
    store: Store,
    player: EpisodePlayer,
    ereq_id: str,
    leases: LeaseKeeper | None = None,
    on_played: Callable[[], None] | None = None,
) -> Played:
    """Claim, play and record one pending episode. An episode that is not pending is not played.

    With `leases`, the claim is renewed while the episode plays (a long episode is not requeued).
    `on_played` is called when the play has ended (its processes or containers are gone): before a
    success is recorded, after a failure is (a failure can cancel other episodes); once.
    """
    prepared, status = claim_and_prepare(store, ereq_id, getattr(player, "placement", None))
    if prepared is None:
        return Played(ereq_id, str(status))
    if leases is not None:
        leases.hold(prepared.ereq_id, prepared.attempt)
    prepared = dataclasses.replace(prepared, on_live=_live_recorder(prepared))
    try:
        archive_attempt(prepared.workspace, prepared.attempt)
        outcome = player.play(prepared)
    except Exception as exc:  # never leave the row running because the platform failed
        outcome = EpisodeOutcome(
            prepared.workspace,
            error=EpisodeFailure(ErrorType.PLATFORM_ERROR, f"{type(exc).__name__}: {exc}", phase="prepare"),
        )
    finally:
        if leases is not None:
            leases.release(prepared.ereq_id)

    def played() -> None:
        if on_played is not None:
            with contextlib.suppress(Exception):  # freeing a slot must never cost the outcome
                on_played()

    # A success frees its slot before it is recorded. A failure is recorded first: recording it may
    # quarantine a policy and cancel its pending episodes, which the next claim must already see.
    freed_early = outcome.error is None
    if freed_early:
        played()
    try:
        view = record_outcome(store, prepared.ereq_id, prepared.attempt, outcome)
    except Exception as exc:
        # The league could not record it: put it back (an interrupted attempt, never counted) so that
        # no runner waits on a claim that nobody holds any more.
        with contextlib.suppress(Exception):
            requeue_episodes(store, [prepared.ereq_id], f"its outcome could not be recorded: {exc}"[:500])
        raise
    finally:
        if not freed_early:
            played()
    return Played(prepared.ereq_id, view.status, view)


def _live_recorder(prepared: PreparedEpisode) -> Callable[[str], None]:
    """Records where the attempt can be watched live; a failure to write it never fails the episode."""

    def record(global_url: str) -> None:
        with contextlib.suppress(OSError):
            record_live_url(prepared.workspace, prepared.attempt, global_url)

    return record


class EpisodeBatch:
    """Episodes played `parallelism` at a time; results are collected as they finish.

    A slot is held from the claim until a successful episode's play ends, not until its outcome is
    recorded: recording (the league write, then the caller's Dagster events) overlaps the next
    episode's start. A failed episode holds its slot until it is recorded (it may quarantine a policy).
    Episodes given to `extend` start the moment a slot frees, from the thread that freed it, so a
    caller busy with the previous result (a generator suspended in `yield`) never leaves a slot idle.

    A `SecretKeyError` (the operator's secret key is not the one the policies' secrets were stored
    with) stops the batch: no episode of those policies can be claimed, and every retry would fail
    the same way at once, so the claim is rolled back (the episode stays pending, nobody is charged),
    nothing new starts, and `submit`/`wait_any` raise it for the caller to report once.
    """

    def __init__(self, store: Store, player: EpisodePlayer, parallelism: int = 1):
        self.store, self.player = store, player
        self.parallelism = max(1, parallelism)
        # One thread per slot plays; as many again record the episodes whose play just ended.
        self._pool = ThreadPoolExecutor(max_workers=2 * self.parallelism, thread_name_prefix="episode")
        self._cond = threading.Condition()
        self._submitted: Counter[str] = Counter()  # submitted, result not collected yet
        self._holding = 0  # submitted episodes whose play has not ended: they hold a slot
        self._results: list[Played] = []  # finished, not collected yet
        self._slot_freed = False  # since the last wait_any
        self._backlog: deque[str] = deque()
        self._closed = False
        self._fatal: SecretKeyError | None = None  # stops the batch (see the class docstring)
        self.leases = LeaseKeeper(store)

    def __enter__(self) -> EpisodeBatch:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close(cancel=exc_type is not None)

    @property
    def in_flight(self) -> set[str]:
        """Episodes submitted whose results have not been collected (playing or being recorded)."""
        with self._cond:
            return set(self._submitted)

    @property
    def free(self) -> int:
        with self._cond:
            return self.parallelism - self._holding

    @property
    def pending(self) -> int:
        """Episodes given to `extend` that have not started yet."""
        with self._cond:
            return len(self._backlog)

    def submit(self, ereq_id: str) -> None:
        with self._cond:
            if self._fatal is not None:
                raise self._fatal
            self._start(ereq_id)

    def extend(self, ereq_ids: Iterable[str]) -> None:
        """Play these too, in order, each as soon as a slot is free."""
        with self._cond:
            self._backlog.extend(ereq_ids)
            self._fill()

    def _start(self, ereq_id: str) -> None:  # holds self._cond
        self._holding += 1
        self._submitted[ereq_id] += 1
        self._pool.submit(self._play, ereq_id)

    def _fill(self) -> None:  # holds self._cond
        while self._backlog and self._holding < self.parallelism and not self._closed and not self._fatal:
            self._start(self._backlog.popleft())

    def _play(self, ereq_id: str) -> Played:
        freed = threading.Event()

        def free_slot() -> None:  # once: when the play ends, or when the episode was not played
            if freed.is_set():
                return
            freed.set()
            with self._cond:
                self._holding -= 1
                self._slot_freed = True
                self._fill()
                self._cond.notify_all()

        try:
            played = execute_episode(self.store, self.player, ereq_id, self.leases, on_played=free_slot)
        except SecretKeyError as exc:  # set before the slot frees, so that nothing else starts
            with self._cond:
                self._fatal = self._fatal or exc
                self._backlog.clear()
            played = Played(ereq_id, "error", platform_error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # the database failed, not the episode: report it, keep the others going
            played = Played(ereq_id, "error", platform_error=f"{type(exc).__name__}: {exc}")
        finally:
            free_slot()
        with self._cond:
            self._results.append(played)
            self._cond.notify_all()
        return played

    def wait_any(self) -> list[Played]:
        """Block until an episode is done or a slot frees: the results collected since the last call
        ([] when only a slot freed, or when nothing is in flight). Raises the batch's SecretKeyError."""
        with self._cond:
            while self._submitted and not self._results and not self._slot_freed and not self._fatal:
                self._cond.wait()
            if self._fatal is not None:
                raise self._fatal
            done, self._results, self._slot_freed = self._results, [], False
            for played in done:
                self._submitted[played.ereq_id] -= 1
                if self._submitted[played.ereq_id] <= 0:
                    del self._submitted[played.ereq_id]
            return done

    def close(self, cancel: bool = False) -> None:
        """Stop: on `cancel` nothing new starts (episodes already playing finish and are recorded)."""
        with self._cond:
            self._closed = True
            if cancel:
                self._backlog.clear()
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
        if not cancel:  # on cancel, episodes still playing keep their leases until they finish
            self.leases.close()


def play_batch(
    store: Store, player: EpisodePlayer, ereq_ids: Iterable[str], parallelism: int
) -> Iterator[Played]:
    """Play these episodes, `parallelism` at a time, yielding each result as soon as it is recorded."""
    with EpisodeBatch(store, player, parallelism) as batch:
        batch.extend(ereq_ids)
        while batch.pending or batch.in_flight:
            yield from batch.wait_any()
