"""The reference packages' example game (paintarena) of each generation, laid out to run unchanged.

`scripts/reference-venvs.sh` installs `coworld==<version>` from PyPI in `.refvenvs/<version>` and
`scripts/reference-images.sh` builds `coworld-ref/paintarena:<version>` from those sources. A test
package is a copy of the example as its manifest expects it, with the manifest hydrated the way the
reference's `coworld build` would: `{{PAINTARENA_IMAGE}}` (or 0.1.0's build-time tag) becomes our
locally built image and a template gets its `game.version`. Nothing else changes.
No pytest here: benchmarks/episode_overhead.py uses it too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERSIONS = ("0.1.0", "0.1.11", "0.1.64")
REFVENVS = REPO / ".refvenvs"
# The one service 0.1.64's compose.yaml does not build; its image lives in a registry we cannot reach.
REFERENCE_COMMISSIONER = "ghcr.io/metta-ai/commissioners-default:latest"


def image(version: str) -> str:
    return f"coworld-ref/paintarena:{version}"


def reference_python(version: str) -> Path:
    return REFVENVS / version / "bin" / "python"


def reference_cli(version: str) -> Path:
    return REFVENVS / version / "bin" / "coworld"


def example_dir(version: str) -> Path:
    found = sorted((REFVENVS / version).glob("lib/python3*/site-packages/coworld/examples/paintarena"))
    return found[0] if found else Path("/nonexistent")


def make_package(version: str, dest: Path) -> Path:
    """Lay the example out as its `run` argvs expect; return the hydrated manifest's path.

    0.1.0 runs `python /app/game/server.py` (an image path): the package is the example directory.
    0.1.11+ run `python -m coworld.examples.paintarena.<module>`: the package root holds a stub
    `coworld.examples` package (as the reference Dockerfile makes), so the process runtime, which puts
    the manifest's directory on PYTHONPATH, imports the game from its own sources.
    """
    src = example_dir(version)
    root = dest / f"paintarena-{version}"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    if version == "0.1.0":
        shutil.copytree(src, root, ignore=ignore)
        text = (root / "coworld_manifest.json").read_text()
        text = text.replace('"coworld-paintarena:latest"', json.dumps(image(version)))
    else:
        package = root / "coworld" / "examples" / "paintarena"
        shutil.copytree(src, package, ignore=ignore)
        for stub in (root / "coworld", root / "coworld" / "examples"):
            (stub / "__init__.py").touch()
        text = (package / "coworld_manifest_template.json").read_text()
        text = text.replace("{{PAINTARENA_IMAGE}}", image(version))
        text = text.replace("{{COMMISSIONER_IMAGE}}", REFERENCE_COMMISSIONER)
    manifest = json.loads(text)
    manifest["game"].setdefault("version", version)
    viewer = manifest["game"].get("replay_viewer")
    if viewer:
        # What the reference's `coworld build` runs: the package's own bundle script.
        bundle = (root / viewer["bundle"]).resolve()
        script = root / "coworld" / "examples" / "paintarena" / "tools" / "build_replay_viewer.sh"
        subprocess.run(["bash", str(script), str(bundle)], check=True)
    path = root / "coworld_manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


# Short episodes: the certification config with fewer ticks, run faster.
FAST = {"max_ticks": 20, "tick_rate": 20}


def shorten_certification(manifest_path: Path) -> None:
    """The package's certification episode made FAST (20 ticks at 20 Hz instead of its 100 at 5 Hz,
    which the game spends asleep): the certifier's checks are the same, 16 s sooner. Used for the
    older generations; the newest certifies with its config as shipped (test_reference_games)."""
    m = json.loads(manifest_path.read_text())
    m["certification"]["game_config"].update(FAST)
    manifest_path.write_text(json.dumps(m, indent=2) + "\n")


def fast_request(manifest_path: Path, dest: Path) -> Path:
    """An episode request (the reference's own format) for the certification players, 20 ticks."""
    m = json.loads(manifest_path.read_text())
    players = [
        next(p for p in m["player"] if p["id"] == c["player_id"]) for c in m["certification"]["players"]
    ]
    request = {
        "manifest": m,
        "game_config": {**m["certification"]["game_config"], **FAST},
        "players": [
            {"type": "player", "image": p["image"], "run": p.get("run", []), "env": p.get("env", {})}
            for p in players
        ],
    }
    path = dest / "request.json"
    path.write_text(json.dumps(request))
    return path
