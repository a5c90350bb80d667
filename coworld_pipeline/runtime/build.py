"""`coworld build`: hydrate a manifest template from a Compose build (CONTRACT §2.10).

1. The template must not carry `game.version`; VERSION is written into it.
2. Each Compose service with an `image` supplies the placeholder `{{<SERVICE>_IMAGE}}` (uppercased,
   `-` → `_`); a `{{...}}` image that matches no service is an error.
3. `docker-compose build` runs in the compose file's directory (Debian's docker-compose, or the
   `docker compose` plugin when that is what is installed).
4. Every image the manifest uses is tagged `<repository>:coworld-<12 hex of its image id>`, so the
   tag names the content, and the manifest refers to those tags.
5. For a 0.1.64 `game.replay_viewer`, the package's `tools/build_replay_viewer.sh <bundle>` runs when
   it exists (as the reference's build does).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coworld_pipeline.contract.manifest import parse_manifest
from coworld_pipeline.contract.problems import ContractError, Problem
from coworld_pipeline.runtime.files import write_whole

PLACEHOLDER = re.compile(r"^\{\{([A-Z0-9_]+)\}\}$")


class BuildError(Exception):
    """The build could not run (Compose missing or failing, an image that cannot be tagged)."""


@dataclass
class BuildResult:
    output: Path
    images: dict[str, str] = field(default_factory=dict)  # manifest image before -> content tag

    def to_json(self) -> dict[str, Any]:
        return {"ok": True, "output": str(self.output), "images": self.images}


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode == 0:
        return ["docker", "compose"]
    raise BuildError("no docker-compose on PATH (Debian: apt-get install docker-compose)")


def _run(argv: list[str], cwd: Path, what: str) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")
    return proc.stdout


def compose_services(compose: Path) -> dict[str, str]:
    """Service name -> image, from the resolved Compose configuration."""
    import yaml

    text = _run([*compose_command(), "-f", str(compose), "config"], compose.parent, "compose config")
    services = (yaml.safe_load(text) or {}).get("services") or {}
    return {
        name: svc["image"] for name, svc in services.items() if isinstance(svc, dict) and svc.get("image")
    }


def _placeholder(service: str) -> str:
    return "{{" + service.upper().replace("-", "_") + "_IMAGE}}"


def _image_fields(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [("$.game.runnable.image", data["game"]["runnable"])]
    for role in ("player", "reporter", "commissioner", "grader", "diagnoser", "optimizer"):
        for i, entry in enumerate(data.get(role) or []):
            if isinstance(entry, dict) and isinstance(entry.get("image"), str):
                found.append((f"$.{role}[{i}].image", entry))
    # Containers implementing reporter references (contract/extensions.py) may name their own image.
    implementations = data["game"].get("results_schema", {}).get("x-coworld-reporters")
    for reference, impl in (implementations or {}).items() if isinstance(implementations, dict) else ():
        if isinstance(impl, dict) and isinstance(impl.get("image"), str):
            found.append((f"$.game.results_schema.x-coworld-reporters[{reference!r}].image", impl))
    return found


def _content_tag(image: str) -> str:
    image = image.split("@", 1)[0]
    image_id = _run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", image], Path.cwd(), f"inspect {image}"
    ).strip()
    hexid = image_id.split(":", 1)[-1][:12]
    last = image.rsplit("/", 1)[-1]
    repository = image.rsplit(":", 1)[0] if ":" in last else image
    tag = f"{repository}:coworld-{hexid}"
    _run(["docker", "tag", image, tag], Path.cwd(), f"tag {image}")
    return tag


def hydrate(
    template: dict[str, Any], services: dict[str, str], version: str, placeholders: bool = True
) -> dict[str, Any]:
    """The template with its version and placeholders filled (no Docker): problems name JSON paths."""
    if not isinstance(template.get("game"), dict):
        raise ContractError("template", [Problem("$.game", "a manifest template needs a game object")])
    if template["game"].get("version") is not None:
        raise ContractError(
            "template", [Problem("$.game.version", "a template must not set game.version: build writes it")]
        )
    data = json.loads(json.dumps(template))
    data["game"]["version"] = version
    if not placeholders:
        return data
    by_placeholder = {_placeholder(name): image for name, image in services.items()}
    problems = []
    for path, entry in _image_fields(data):
        match = PLACEHOLDER.match(entry["image"])
        if match is None:
            continue
        if entry["image"] not in by_placeholder:
            known = ", ".join(sorted(by_placeholder)) or "none"
            problems.append(
                Problem(path, f"{entry['image']} matches no compose service (placeholders: {known})")
            )
        else:
            entry["image"] = by_placeholder[entry["image"]]
    if problems:
        raise ContractError("template", problems)
    return data


def build(compose: Path, template_path: Path, version: str, output: Path) -> BuildResult:
    compose, template_path = compose.resolve(), template_path.resolve()
    try:
        template = json.loads(template_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ContractError(f"template {template_path}", [Problem("$", f"cannot read: {exc}")]) from None
    if not isinstance(template, dict):
        raise ContractError(f"template {template_path}", [Problem("$", "a manifest must be a JSON object")])
    hydrate(template, {}, version, placeholders=False)  # template errors before running Compose
    data = hydrate(template, compose_services(compose), version)
    parse_manifest(data, source=f"hydrated {template_path.name}")  # fail before the (slow) build
    _run([*compose_command(), "-f", str(compose), "build"], compose.parent, "compose build")
    result = BuildResult(output.resolve())
    for _, entry in _image_fields(data):
        if entry["image"] not in result.images:
            result.images[entry["image"]] = _content_tag(entry["image"])
        entry["image"] = result.images[entry["image"]]
    viewer = data["game"].get("replay_viewer")
    script = template_path.parent / "tools" / "build_replay_viewer.sh"
    if isinstance(viewer, dict) and script.is_file():
        bundle = (output.resolve().parent / viewer["bundle"]).resolve()
        _run(["bash", str(script), str(bundle)], template_path.parent, "build_replay_viewer.sh")
    manifest = parse_manifest(data, source=f"hydrated {template_path.name}")
    write_whole(output, (json.dumps(manifest.to_json_dict(), indent=2) + "\n").encode())
    return result
