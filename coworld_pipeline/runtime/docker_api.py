"""The few Docker Engine API calls the docker runtime makes, without the docker SDK on a local engine.

The SDK (with requests and urllib3) costs a tenth of a second or more of every CLI start-up to
import and a millisecond or two of Python per call; an episode makes some thirty calls, most of
them on its critical path. On a local engine (`unix://` socket, the default) this module speaks
HTTP/1.1 to the socket with `http.client`: one kept-alive connection per thread, a fresh one for
each blocking stream (logs, wait). Any other `DOCKER_HOST` (tcp, TLS, ssh) goes through the SDK's
own transport, so every engine the SDK reaches still works.

Objects mirror the SDK's where the runtime and its tests use them: `id`, `name`, `attrs`,
`reload()`; errors carry the HTTP `status_code` (404: not found) as the SDK's do.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

DEFAULT_SOCKET = "/var/run/docker.sock"


class DockerError(Exception):
    """An Engine API call the daemon refused (`status_code`), or that could not be made (None)."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


def not_found(exc: BaseException) -> bool:
    """Whether `exc` (ours or the SDK's) says the object does not exist."""
    return getattr(exc, "status_code", None) == 404


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _UnixTransport:
    """HTTP over the engine's unix socket: a kept-alive connection per thread."""

    base_url = "http+docker://localhost"  # what the SDK calls a unix-socket engine

    def __init__(self, path: str, timeout: float):
        self.path = path
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self) -> _UnixConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _UnixConnection(self.path, self.timeout)
        return conn

    def request(self, method: str, path: str, body: Any = None) -> Any:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        while True:
            conn = self._connection()
            reused = getattr(self._local, "used", False)
            try:
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self._local.used = True
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._local.conn, self._local.used = None, False
                # A kept-alive connection the daemon had closed: the request never reached it, so
                # it is sent once more on a new one. A fresh connection's failure is the answer.
                stale = isinstance(
                    exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                )
                if not (reused and stale):
                    raise DockerError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        return _decoded(method, path, response.status, data)

    def stream(self, method: str, path: str, timeout: float | None) -> tuple[Any, Any]:
        """(response, connection) of a call whose answer is read as it comes (logs, wait)."""
        conn = _UnixConnection(self.path, timeout)
        try:
            conn.request(method, path)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise DockerError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if response.status >= 400:
            data = response.read()
            conn.close()
            _decoded(method, path, response.status, data)
        return response, conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


class _SdkTransport:
    """Any engine the docker SDK reaches (tcp, TLS, ssh), through its low-level client."""

    def __init__(self, timeout: float):
        import docker

        self.api = docker.from_env(timeout=int(timeout)).api
        self.base_url = str(self.api.base_url)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        url = self.api._url(path)
        try:
            if method == "GET":
                response = self.api._get(url)
            elif method == "DELETE":
                response = self.api._delete(url)
            else:
                response = self.api._post_json(url, data=body) if body is not None else self.api._post(url)
        except Exception as exc:
            raise DockerError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        return _decoded(method, path, response.status_code, response.content)

    def stream(self, method: str, path: str, timeout: float | None) -> tuple[Any, Any]:
        url = self.api._url(path)
        call = self.api._get if method == "GET" else self.api._post
        try:
            response = call(url, stream=True, timeout=timeout)
        except Exception as exc:
            raise DockerError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            _decoded(method, path, response.status_code, response.content)
        return response.raw, response

    def close(self) -> None:
        self.api.close()


def _decoded(method: str, path: str, status: int, data: bytes) -> Any:
    text = data.decode(errors="replace") if data else ""
    if status >= 400:
        try:
            message = json.loads(text).get("message", text)
        except (ValueError, AttributeError):
            message = text
        raise DockerError(f"{status} {method} {path.split('?')[0]}: {message}", status)
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _query(params: dict[str, Any]) -> str:
    return "?" + urlencode(params) if params else ""


class Engine:
    """One Docker engine (`DOCKER_HOST`, else the local socket)."""

    def __init__(self, timeout: float = 60.0):
        host = os.environ.get("DOCKER_HOST", "").strip()
        tls = os.environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
        if (not host or host.startswith("unix://")) and not tls:
            path = host.removeprefix("unix://") or DEFAULT_SOCKET
            self.transport: _UnixTransport | _SdkTransport = _UnixTransport(path, timeout)
        else:
            self.transport = _SdkTransport(timeout)

    @property
    def base_url(self) -> str:
        return self.transport.base_url

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        return self.transport.request(method, path + _query(params), body)

    def version(self) -> dict[str, Any]:
        return self.call("GET", "/version")

    def image(self, name: str) -> dict[str, Any]:
        return self.call("GET", f"/images/{quote(name, safe='')}/json")

    # ---- containers ---------------------------------------------------------------------

    def create_container(self, name: str, config: dict[str, Any]) -> Container:
        created = self.call("POST", "/containers/create", config, name=name)
        return Container(self, created["Id"], name)

    def container(self, ident: str) -> Container:
        found = Container(self, ident, ident)
        found.reload()
        return found

    # ---- networks -----------------------------------------------------------------------

    def create_network(self, name: str, **fields: Any) -> Network:
        created = self.call("POST", "/networks/create", {"Name": name, **fields})
        # What it was created with is what it is: no inspect call (`reload` fetches the rest).
        return Network(self, created["Id"], {"Id": created["Id"], "Name": name, **fields})

    def network(self, ident: str) -> Network:
        found = Network(self, ident)
        found.reload()
        return found

    def networks(self, **filters: list[str]) -> list[Network]:
        listed = self.call("GET", "/networks", filters=json.dumps(filters))
        return [Network(self, n["Id"], n) for n in listed or []]


class Container:
    def __init__(self, engine: Engine, ident: str, name: str):
        self.engine = engine
        self.id = ident
        self.name = name
        self.attrs: dict[str, Any] = {}

    def reload(self) -> None:
        self.attrs = self.engine.call("GET", f"/containers/{self.id}/json")

    def start(self) -> None:
        self.engine.call("POST", f"/containers/{self.id}/start")

    def kill(self) -> None:
        self.engine.call("POST", f"/containers/{self.id}/kill")

    def remove(self, force: bool = False) -> None:
        self.engine.call("DELETE", f"/containers/{self.id}", force=int(force))

    def wait(self) -> int:
        """Block until it is no longer running; its exit code (one call, answered at the exit)."""
        response, conn = self.engine.transport.stream("POST", f"/containers/{self.id}/wait", None)
        try:
            answer = json.loads(response.read() or b"{}")
        finally:
            conn.close()
        return int(answer.get("StatusCode", -1))

    def logs(self, stdout: bool, stderr: bool) -> Iterator[bytes]:
        """Its output as it comes, until it stops: the payloads of the engine's multiplexed frames."""
        query = _query({"stdout": int(stdout), "stderr": int(stderr), "follow": 1})
        response, conn = self.engine.transport.stream("GET", f"/containers/{self.id}/logs{query}", None)
        try:  # never a TTY here (the runtime allocates none): its output is framed
            while header := _read_exactly(response, 8):
                (size,) = struct.unpack(">I", header[4:])
                payload = _read_exactly(response, size)
                if payload:
                    yield payload
        finally:
            conn.close()


def _read_exactly(response: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = response.read(size - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


class Network:
    def __init__(self, engine: Engine, ident: str, attrs: dict[str, Any] | None = None):
        self.engine = engine
        self.id = ident
        self.attrs: dict[str, Any] = attrs or {}

    @property
    def name(self) -> str:
        return str(self.attrs.get("Name", ""))

    def reload(self) -> None:
        self.attrs = self.engine.call("GET", f"/networks/{self.id}")

    def connect(self, container: Container, aliases: list[str]) -> None:
        body = {"Container": container.id, "EndpointConfig": {"Aliases": aliases}}
        self.engine.call("POST", f"/networks/{self.id}/connect", body)

    def disconnect(self, container: Container) -> None:
        body = {"Container": container.id, "Force": True}
        self.engine.call("POST", f"/networks/{self.id}/disconnect", body)

    def remove(self) -> None:
        self.engine.call("DELETE", f"/networks/{self.id}")
