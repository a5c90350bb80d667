"""Which runnable fills a supporting role: a manifest's declared entry, or a built-in default.

Manifests often name the published defaults (``softmax/default-reporter:latest`` and so on), which
cannot be pulled here; those references, and the CLI's ``default``, resolve to the built-in roles of
`coworld_pipeline.runtime.default_roles` (see `coworld_pipeline.runtime.roles` for how they start on
each runtime). Re-exported by `coworld_pipeline.runtime.roles`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

RoleKind = Literal["reporter", "grader", "diagnoser", "optimizer"]
ROLE_KINDS: tuple[RoleKind, ...] = ("reporter", "grader", "diagnoser", "optimizer")
DEFAULT_ROLE_IMAGE = "coworld/python-base:bookworm"  # Python + pyarrow: what the built-ins need
DEFAULT_ROLES_DIR = Path(__file__).resolve().parent / "default_roles"
_DEFAULT_REFERENCE = re.compile(
    r"^(?:docker\.io/)?softmax/default-(reporter|grader|diagnoser|optimizer)(?::[\w.-]+)?(?:@sha256:[0-9a-f]+)?$"
)


@dataclass(frozen=True)
class RoleRunnable:
    """What to start for a role: a declared manifest runnable, or a built-in default (`builtin`)."""

    kind: RoleKind
    id: str
    image: str
    run: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    builtin: bool = False


def default_reference_kind(image: str) -> str | None:
    """The role a ``softmax/default-<role>`` reference names, or None for any other image."""
    match = _DEFAULT_REFERENCE.match(image.strip())
    return match.group(1) if match else None


def builtin_role(
    kind: RoleKind, runnable_id: str | None = None, env: Mapping[str, str] | None = None
) -> RoleRunnable:
    """The built-in default for `kind` (image and argv are chosen per runtime when it starts)."""
    if kind not in ROLE_KINDS:
        raise ValueError(f"unknown role {kind!r} (one of {', '.join(ROLE_KINDS)})")
    return RoleRunnable(
        kind, runnable_id or f"default-{kind}", f"softmax/default-{kind}:latest", (), dict(env or {}), True
    )


def resolve_role(kind: RoleKind, manifest: Any | None, ref: str | None = None) -> RoleRunnable:
    """Pick a role runnable: `ref` is a declared id, ``default``, or a ``softmax/default-*`` image.

    Without `ref`: the manifest's first declared runnable of that role, else the built-in default.
    A declared runnable whose image is a ``softmax/default-*`` reference runs as the built-in (its env
    kept, its `run` ignored: the published image's flags mean nothing to our defaults).
    Raises ValueError naming what is declared when `ref` matches nothing.
    """
    declared = list(manifest.role(kind)) if manifest is not None else []
    if ref in ("default", "builtin") or (ref and default_reference_kind(ref) == kind):
        return builtin_role(kind)
    if ref and default_reference_kind(ref):
        raise ValueError(f"{ref!r} is the default {default_reference_kind(ref)}, not a {kind}")
    chosen = None
    if ref is None:
        chosen = declared[0] if declared else None
        if chosen is None:
            return builtin_role(kind)
    else:
        chosen = next((r for r in declared if r.id == ref), None)
        if chosen is None:
            known = ", ".join(r.id for r in declared) or "none declared"
            raise ValueError(f"no {kind} {ref!r} in the manifest ({known}; or 'default' for the built-in)")
    if default_reference_kind(chosen.image) == kind:
        return builtin_role(kind, chosen.id, chosen.env)
    return RoleRunnable(kind, chosen.id, chosen.image, tuple(chosen.run), dict(chosen.env))
