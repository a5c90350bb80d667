"""SIGINT/SIGTERM become exceptions, so every `finally` runs; cleanup itself is shielded from them."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM or SIGHUP."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"received {signal.Signals(signum).name}")


_shield_depth = 0
_pending: list[int] = []


def _handler(signum: int, frame: object) -> None:
    if _shield_depth > 0:
        _pending.append(signum)  # delivered when the shielded cleanup ends
        return
    _raise_for(signum)


def _raise_for(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def install() -> None:
    """Route SIGINT, SIGTERM and SIGHUP through the shield-aware handler (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Defer termination signals until the block ends (used around removing containers/processes)."""
    global _shield_depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _shield_depth += 1
    try:
        yield
    finally:
        _shield_depth -= 1
        if _shield_depth == 0 and _pending:
            signum = _pending.pop(0)
            _pending.clear()
            _raise_for(signum)
