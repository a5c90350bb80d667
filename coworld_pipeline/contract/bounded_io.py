"""Reading untrusted inputs in bounded time and memory: URLs and local files given by people.

Two ways an input can hang or exhaust the platform before any validator sees it:

* an http(s) URL whose server streams forever, or drips a byte a second (a per-read timeout never
  fires), or sends a small gzip body that expands to gigabytes: `fetch_bounded` stops at a byte cap
  counted on the decoded body as it arrives, and at an overall deadline;
* a path that names a FIFO or a device: opening a FIFO blocks until a writer comes, reading a
  device may never end. `read_regular_file` refuses anything but a regular file before opening it.

Used by every reader of user-given documents: manifests and episode requests (contract.limits),
replays (runtime.replay_server) and artifact URIs (runtime.artifacts).
"""

from __future__ import annotations

import os
import stat
import time

# Per read: a server that sends nothing at all is given up on after this long, even well before
# the overall deadline (and never later than the deadline itself).
READ_TIMEOUT_SECONDS = 30.0
# A whole download of a large file (a replay, an artifact: up to 512 MiB) takes at most this long:
# under 1 MiB/s still arrives, a server that drips bytes forever does not hold a command forever.
LARGE_DOWNLOAD_SECONDS = 600.0


class FetchError(OSError):
    """A URL that cannot be fetched within its bounds: the message says which bound, or why not."""


class NotRegularFile(OSError):
    """A path that is not a regular file (a FIFO, a device, a socket, a directory)."""


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, for messages (`mode`: its st_mode)."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def read_regular_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """At most `limit` + 1 bytes of the regular file at `path` (more means: too large).

    Raises NotRegularFile for anything else, checked before opening (opening a FIFO blocks) and
    again on the opened descriptor (the path may have been swapped in between; O_NONBLOCK keeps
    that open from blocking). Other OSErrors (missing, unreadable) propagate as they are.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFile(f"{path} is not a regular file ({file_kind(mode)})")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"{path} is not a regular file ({file_kind(mode)})")
        return handle.read(limit + 1)


def fetch_bounded(url: str, limit: int, deadline_seconds: float) -> bytes:
    """At most `limit` + 1 bytes of the (decoded) body of GET `url` (more means: too large).

    Raises FetchError when the server answers with an error status, cannot be reached, or has not
    sent the body within `deadline_seconds` overall; the deadline is checked as each piece arrives,
    so a silent server is bounded by the read timeout and a dripping one by the deadline.
    """
    import httpx  # only URL inputs need it; CLI start-up stays light

    timeout = httpx.Timeout(min(READ_TIMEOUT_SECONDS, deadline_seconds))
    give_up = time.monotonic() + deadline_seconds
    chunks: list[bytes] = []
    size = 0
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            response.raise_for_status()
            # iter_bytes decodes Content-Encoding piece by piece: the cap counts what it expands to.
            for chunk in response.iter_bytes():
                chunks.append(chunk[: limit + 1 - size])
                size += len(chunks[-1])
                if size > limit:
                    break
                if time.monotonic() > give_up:
                    raise FetchError(f"{url}: not downloaded within {deadline_seconds:g} seconds")
    except httpx.HTTPStatusError as exc:
        raise FetchError(f"{url}: HTTP {exc.response.status_code} {exc.response.reason_phrase}") from None
    except httpx.TimeoutException:
        raise FetchError(f"{url}: the server sent nothing for {timeout.read:g} seconds") from None
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
        raise FetchError(f"{url}: {exc or type(exc).__name__}") from None
    return b"".join(chunks)
