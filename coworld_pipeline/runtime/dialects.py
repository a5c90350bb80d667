"""How the platform speaks to a game of each Coworld generation (0.1.0, 0.1.11, 0.1.64).

What differs, and how it is settled:
- Browser routes: `/clients/<page>` in 0.1.0, `/client/<page>` later. Discovered from the running
  game (the first player-page probe), since a manifest does not say which one its game serves.
- Player websocket env: 0.1.0 players read `COGAMES_ENGINE_WS_URL`, later ones
  `COWORLD_PLAYER_WS_URL`; every player gets both (as the 0.1.64 runner does).
- Replay mode: `COGAME_REPLAY_SERVER=1` with the replay in `?uri=` (<= 0.1.11), or
  `COGAME_LOAD_REPLAY_URI=<uri>` (0.1.64, whose `/replay` ignores `?uri=`). A replay server gets both.
- 0.1.64 runnables may declare `startup` (port, health path, timeout) and `resources` (limits).
- 0.1.64 certification also requires a WebSocket Pong on `/global`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from coworld_pipeline.contract.extensions import DEFAULT_STARTUP_PATH
from coworld_pipeline.contract.generations import Generation
from coworld_pipeline.contract.manifest import CoworldManifest, ManifestRunnable
from coworld_pipeline.runtime import probes
from coworld_pipeline.runtime.base import GAME_PORT, ResourceLimits

PLAYER_WS_ENV = ("COWORLD_PLAYER_WS_URL", "COGAMES_ENGINE_WS_URL")
PREFIXES = ("/client/", "/clients/")


def runnable_limits(runnable: ManifestRunnable, default: ResourceLimits) -> ResourceLimits | None:
    """The runnable's own `resources` (limit, else request) over the platform default, if it has any."""
    if runnable.resources is None:
        return None
    cpus, memory = runnable.resources.effective()
    if cpus is None and memory is None:
        return None
    return ResourceLimits(
        cpus=cpus if cpus is not None else default.cpus,
        memory=str(memory) if memory is not None else default.memory,
        pids=default.pids,
    )


THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def thread_env(limits: ResourceLimits | None) -> dict[str, str]:
    """A player with a declared CPU limit gets its math libraries pinned to it (as in 0.1.64)."""
    if limits is None:
        return {}
    return dict.fromkeys(THREAD_ENV, str(max(1, int(limits.cpus))))


@dataclass
class GameDialect:
    manifest: CoworldManifest
    # The route prefix, settled by `discover_prefix`; until then the current contract's. (A 0.1.0
    # manifest cannot be told from a 0.1.11 one without role source_urls, so it is not guessed.)
    prefix: str = PREFIXES[0]
    discovered: bool = field(default=False)

    @property
    def generation(self) -> Generation:
        return self.manifest.generation

    @property
    def port(self) -> int:
        startup = self.manifest.game.runnable.startup
        return startup.port if startup else GAME_PORT

    @property
    def health_path(self) -> str:
        startup = self.manifest.game.runnable.startup
        return startup.path if startup else DEFAULT_STARTUP_PATH

    def startup_timeout(self, default: float) -> float:
        startup = self.manifest.game.runnable.startup
        return float(startup.timeout_seconds) if startup else default

    @property
    def requires_pong(self) -> bool:
        return self.generation is Generation.V0_1_64

    @property
    def replay_uri_in_query(self) -> bool:
        """Whether `/replay` loads the replay named by `?uri=` (0.1.64 loads the env's only)."""
        return self.generation is not Generation.V0_1_64

    def route(self, page: str) -> str:
        return f"{self.prefix}{page}"

    def player_env(self, ws_url: str) -> dict[str, str]:
        return {name: ws_url for name in PLAYER_WS_ENV}

    @staticmethod
    def replay_env(replay_uri: str) -> dict[str, str]:
        return {"COGAME_REPLAY_SERVER": "1", "COGAME_LOAD_REPLAY_URI": replay_uri}

    def discover_prefix(self, base_url: str, query: dict[str, object]) -> None:
        """Find which prefix the game serves its player page under (the generation's own first)."""
        order = sorted(PREFIXES, key=lambda p: p != self.prefix)
        suffix = "player?" + urlencode(query)
        failures = []
        for prefix in order:
            try:
                probes.check_route(base_url, prefix + suffix)
            except probes.ProbeFailed as exc:
                failures.append(str(exc))
                continue
            self.prefix, self.discovered = prefix, True
            return
        raise probes.ProbeFailed("; ".join(failures))
