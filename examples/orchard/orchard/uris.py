"""Read and write artifacts named by URI (stdlib only).

* ``file://`` URIs and bare paths: local files (parent directories are created on write).
* ``http://`` / ``https://``: GET to read; PUT (default) or POST to write, retried on 429/5xx.
* ``s3://bucket/key``: read through the public ``https://bucket.s3.amazonaws.com/key`` form.

Reads transparently decompress ``.json.z`` / ``.z`` (zlib) and ``.json.gz`` / ``.gz`` (gzip) payloads.
"""

from __future__ import annotations

import gzip
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from typing import Any

USER_AGENT = "orchard-coworld/0.1.0 (+python-urllib)"
RETRY_STATUSES = {429, 500, 502, 503, 504}
RETRY_SLEEPS = (0.5, 1.0, 2.0)
READ_TIMEOUT = 30.0
WRITE_TIMEOUT = 60.0


class UriError(RuntimeError):
    pass


def _scheme(uri: str) -> str:
    return urllib.parse.urlsplit(uri).scheme.lower()


def local_path(uri: str) -> str:
    """Filesystem path for a ``file://`` URI or a scheme-less path."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme == "file":
        path = urllib.parse.unquote(parts.path)
        if parts.netloc and parts.netloc != "localhost":
            path = f"//{parts.netloc}{path}"
        return path
    if parts.scheme == "" or len(parts.scheme) == 1:  # bare path (or a Windows drive letter)
        return uri
    raise UriError(f"not a local URI: {uri}")


def _http_url(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme == "s3":
        return f"https://{parts.netloc}.s3.amazonaws.com/{parts.path.lstrip('/')}"
    return uri


def _request(url: str, *, method: str, data: bytes | None, content_type: str | None, timeout: float) -> bytes:
    headers = {"User-Agent": USER_AGENT}
    if content_type:
        headers["Content-Type"] = content_type
    last_error: Exception | None = None
    for attempt in range(len(RETRY_SLEEPS) + 1):
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            last_error = exc
            if exc.code not in RETRY_STATUSES:
                raise UriError(f"{method} {url.split('?')[0]} failed with HTTP {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            last_error = exc
        if attempt < len(RETRY_SLEEPS):
            time.sleep(RETRY_SLEEPS[attempt])
    raise UriError(f"{method} {url.split('?')[0]} failed after retries: {last_error}")


def decompress(data: bytes, uri: str = "") -> bytes:
    """Undo zlib/gzip compression chosen by suffix, falling back to sniffing the magic bytes."""
    path = urllib.parse.urlsplit(uri).path.lower() if uri else ""
    if path.endswith(".gz") or data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if path.endswith(".z") or (len(data) > 1 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0):
        try:
            return zlib.decompress(data)
        except zlib.error:
            if path.endswith(".z"):
                raise
    return data


def read_bytes(uri: str) -> bytes:
    scheme = _scheme(uri)
    if scheme in ("http", "https", "s3"):
        return _request(_http_url(uri), method="GET", data=None, content_type=None, timeout=READ_TIMEOUT)
    try:
        with open(local_path(uri), "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise UriError(f"cannot read {uri}: {exc.strerror or exc}") from exc


def read_json(uri: str) -> Any:
    return json.loads(decompress(read_bytes(uri), uri))


def write_bytes(
    uri: str, data: bytes, content_type: str = "application/octet-stream", method: str | None = None
) -> None:
    scheme = _scheme(uri)
    if scheme in ("http", "https"):
        verb = (method or "PUT").upper()
        if verb not in ("PUT", "POST"):
            raise UriError(f"unsupported HTTP write method {verb!r} (use PUT or POST)")
        _request(uri, method=verb, data=data, content_type=content_type, timeout=WRITE_TIMEOUT)
        return
    if scheme == "s3":
        raise UriError("s3:// writes need credentials; give the runnable a presigned https:// URI instead")
    path = local_path(uri)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def write_json(uri: str, value: Any, method: str | None = None, *, indent: int | None = 2) -> None:
    text = json.dumps(value, indent=indent, sort_keys=True) + "\n"
    write_bytes(uri, text.encode("utf-8"), "application/json", method)


def post_text(uri: str, text: str, timeout: float = 10.0) -> None:
    """Single best-effort POST of text/plain (used for COGAME_LOG_URI); raises on failure."""
    request = urllib.request.Request(
        uri,
        data=text.encode("utf-8"),
        method="POST",
        headers={"User-Agent": USER_AGENT, "Content-Type": "text/plain; charset=utf-8"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()
