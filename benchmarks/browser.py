"""Headless Chromium driven over the DevTools protocol (no npm, no Selenium): open a page, wait for
a JavaScript condition, evaluate expressions, take a screenshot.

    with Browser(width=1024, height=576) as browser:
        browser.open("file:///tmp/x.html", until="window.__viserSceneTree !== undefined")
        count = browser.evaluate("Object.keys(window.__viserSceneTree.getState()).length")
        browser.screenshot("docs/img/viewer.png")

Chromium is Debian's `chromium` package (`apt-get install -y chromium`); `chromium_missing()` says
why it cannot run. The profile is a fresh temporary folder, removed on exit; WebGL runs on
SwiftShader (CPU), since the flags disable the GPU.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from websockets.sync.client import connect

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                  "--hide-scrollbars")


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def chromium_missing() -> str | None:
    """Why no browser test can run here (None when Chromium is installed)."""
    return None if chromium_path() else "chromium is not installed (apt-get install -y chromium)"


class Browser:
    """One headless Chromium with one page, controlled through the DevTools protocol."""

    def __init__(self, width: int = 1024, height: int = 576, timeout_s: float = 60.0):
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self._ids = itertools.count(1)

    def __enter__(self) -> Browser:
        self._profile = tempfile.mkdtemp(prefix="josh_chromium_")
        self._proc = subprocess.Popen(
            [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}",
             "--remote-debugging-port=0", f"--window-size={self.width},{self.height}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port = self._wait_for_port()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                page = next(t for t in json.load(r) if t["type"] == "page")
            self._ws = connect(page["webSocketDebuggerUrl"], max_size=None,
                               open_timeout=self.timeout_s)
            self.call("Page.enable")
            self.call("Runtime.enable")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if getattr(self, "_ws", None) is not None:
            self._ws.close()
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def _wait_for_port(self) -> int:
        port_file = os.path.join(self._profile, "DevToolsActivePort")
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if os.path.exists(port_file):
                with open(port_file) as f:
                    first = f.readline().strip()
                if first:
                    return int(first)
            if self._proc.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self._proc.returncode}")
            time.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port")

    def call(self, method: str, **params) -> dict:
        """One DevTools command; returns its result (events received meanwhile are dropped)."""
        call_id = next(self._ids)
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=self.timeout_s))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, *, until: str = "true", settle_s: float = 1.0) -> None:
        """Navigate to `url`, wait until the expression `until` is truthy, then `settle_s`."""
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=url)
        self.wait_for(until)
        time.sleep(settle_s)

    def wait_for(self, expression: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                if self.evaluate(f"Boolean({expression})"):
                    return
            except RuntimeError:
                pass  # the page is still loading
            time.sleep(0.25)
        raise TimeoutError(f"page never satisfied: {expression}")

    def screenshot(self, path: str) -> str:
        """Save the viewport as PNG."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path
