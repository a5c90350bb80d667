"""Print the runtime requirements of coworld-pipeline for the image, pinned to the checkout's `.venv`.

The run-worker image must run the dependencies the checkout is tested with, so they are not
re-resolved against the index: the roots are pyproject.toml's `[project] dependencies` (no extras:
no dev tools in the image), followed through the distributions installed in the environment this
script runs in (the `.venv`) at their installed versions. Markers are evaluated for the image's
interpreter, not this one (`--target-env`, a JSON marker environment printed inside the image by
`--print-environment`): Debian's python3 is not the `.venv`'s, and e.g. redis needs async-timeout
only below 3.11.3. A requirement the image needs but the `.venv` does not have is printed as it is
(pip resolves it and its own requirements when build_image.sh downloads the wheels).

Exits 2 naming the distribution when an installed one does not satisfy what requires it (run
`bash scripts/setup.sh` first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any


def marker_environment() -> dict[str, str]:
    """PEP 508 marker variables of this interpreter (stdlib only: it runs in the bare image)."""
    impl = sys.implementation.version
    impl_version = f"{impl.major}.{impl.minor}.{impl.micro}"
    if impl.releaselevel != "final":
        impl_version += f"{impl.releaselevel[0]}{impl.serial}"
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": impl_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def fail(message: str) -> None:
    print(f"lock.py: {message} (run `bash scripts/setup.sh`)", file=sys.stderr)
    raise SystemExit(2)


def requirements(target: dict[str, str]) -> list[str]:
    """`name==version` for each installed distribution the image needs, else the requirement itself."""
    import tomllib
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    def applies(req: Any, extras: frozenset[str]) -> bool:
        # An extra's requirements count only when that extra was asked for.
        return not req.marker or any(req.marker.evaluate({**target, "extra": e}) for e in (extras or {""}))

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
    todo = [r for r in map(Requirement, project["dependencies"]) if applies(r, frozenset())]
    pinned: dict[str, str] = {}
    unpinned: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req = todo.pop()
        name, extras = canonicalize_name(req.name), frozenset(req.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            req.marker = None  # already evaluated for the image
            unpinned[name] = str(req)
            continue
        if not req.specifier.contains(dist.version, prereleases=True):
            fail(f"{name} {dist.version} is installed but {req} is required")
        pinned[name] = dist.version
        todo += [sub for sub in map(Requirement, dist.requires or []) if applies(sub, extras)]
    lines = {name: f"{name}=={version}" for name, version in pinned.items()}
    lines.update({name: line for name, line in unpinned.items() if name not in pinned})
    return [lines[name] for name in sorted(lines)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print-environment", action="store_true", help="print this interpreter's markers")
    parser.add_argument("--target-env", help="JSON marker environment of the image's interpreter")
    args = parser.parse_args()
    if args.print_environment:
        print(json.dumps(marker_environment()))
        return
    target = marker_environment()
    if args.target_env:
        try:
            given = json.loads(args.target_env)
        except json.JSONDecodeError:
            given = None
        if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
            print("lock.py: --target-env must be a JSON object of marker variables", file=sys.stderr)
            raise SystemExit(2)
        target.update(given)
    print("\n".join(requirements(target)))


if __name__ == "__main__":
    main()
