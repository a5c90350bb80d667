"""Skip (or in CI, fail) generation tests whose reference venv or image is missing."""

from __future__ import annotations

import pytest

from tests.conftest import IN_CI, docker_ready, image_present
from tests.generations.reference import REFVENVS, VERSIONS, example_dir, image, make_package, reference_cli

__all__ = ["VERSIONS", "image", "make_package", "reference_cli", "require_reference"]


def require_reference(version: str, docker: bool = False) -> None:
    """Skip (or, in CI, fail) when the reference venv or its image is missing."""
    missing = []
    if not (REFVENVS / version / ".installed").exists() or not example_dir(version).is_dir():
        missing.append(f"reference venv {version} (bash scripts/reference-venvs.sh)")
    if docker and (not docker_ready() or not image_present(image(version))):
        missing.append(f"Docker and image {image(version)} (bash scripts/reference-images.sh)")
    if missing:
        if IN_CI:
            pytest.fail(f"CI must provide {', '.join(missing)}: scripts/setup.sh installs them")
        pytest.skip(f"needs {', '.join(missing)}")
