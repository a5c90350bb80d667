"""Headless Chromium driven over the Chrome DevTools protocol (a websocket), for the UI tests.

No Playwright: `/usr/bin/chromium --headless --remote-debugging-port` and the `websockets` client the
project already depends on. A `Page` navigates, evaluates JavaScript in the rendered page, clicks,
waits for a condition on the DOM (polling with a deadline) and takes PNG screenshots.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Chromium:
    """One headless browser process on `port` (its DevTools endpoint), with a throw-away profile."""

    def __init__(self, port: int, width: int = 1440, height: int = 1000):
        self.port = port
        self.profile = Path(tempfile.mkdtemp(prefix="cwp-chromium-"))
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",  # root in CI containers
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                f"--user-data-dir={self.profile}",
                f"--remote-debugging-port={port}",
                "--remote-allow-origins=*",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/json/version", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"chromium did not open its DevTools port {port}") from None
                time.sleep(0.2)

    def new_page(self) -> Page:
        target = httpx.put(f"http://127.0.0.1:{self.port}/json/new?about:blank", timeout=10).json()
        return Page(connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10))

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    def __init__(self, ws: ClientConnection):
        self.ws = ws
        self._ids = itertools.count(1)
        self.send("Page.enable")
        self.send("Runtime.enable")

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
        """A protocol command and its result (events that arrive meanwhile are dropped)."""
        call_id = next(self._ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    @property
    def url(self) -> str:
        return str(self.evaluate("location.href"))

    def text(self) -> str:
        """What the page shows: the rendered body's innerText."""
        return str(self.evaluate("document.body ? document.body.innerText : ''") or "")

    def wait_for(self, expression: str, timeout: float, what: str, interval: float = 0.5) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError:  # navigating: the page's context went away for a moment
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {what}; page: {self.text()[:3000]}"
                )
            time.sleep(interval)

    def wait_for_text(self, needle: str, timeout: float = 60) -> str:
        body = "document.body && document.body.innerText"
        js = f"{body} && {body}.includes({json.dumps(needle)}) && {body}"
        return str(self.wait_for(js, timeout, f"{needle!r} on {self.url}"))

    def click_text(self, tag: str, label: str) -> bool:
        """Click the first `tag` element whose text is `label` (e.g. a modal's "Skip"); False: none."""
        return bool(
            self.evaluate(
                f"""(() => {{ const el = [...document.querySelectorAll({json.dumps(tag)})]
                    .find(e => e.innerText.trim() === {json.dumps(label)});
                  if (el) {{ el.click(); return true; }} return false; }})()"""
            )
        )

    def type_into(self, selector: str, text: str) -> None:
        """Set an input's value the way typing does, so that a React-controlled input sees it."""
        self.evaluate(
            f"""(() => {{ const input = document.querySelector({json.dumps(selector)});
              const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
              setter.call(input, {json.dumps(text)});
              input.dispatchEvent(new Event('input', {{bubbles: true}})); }})()"""
        )

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self.ws.close()
