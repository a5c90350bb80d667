"""Lazy package exports (PEP 562): a name is imported from its module on first use.

Packages use it so that importing one light submodule does not pay for the heavy ones; CLI
start-up time is most of what a short command costs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` resolving `name` from `exports[name]` (a module path)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
