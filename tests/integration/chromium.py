"""Headless Chromium driven over the DevTools protocol (a websocket), for looking at a page as a
person would: log in through a form, open a page, read its text, click, take a screenshot.

No browser driver package: Debian's `chromium` and the `websockets` client already in the
project's environment. Chromium is started with a fresh, empty profile, on a DevTools port it
chooses itself (read back from the profile's DevToolsActivePort file), with everything that would
reach outside switched off; it is stopped by PID (its process group) when the block ends.

    with HeadlessChromium() as browser:
        browser.navigate("http://127.0.0.1:8080/user/login/")
        browser.evaluate("document.title")
        browser.screenshot(Path("page.png"))
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect as websocket_connect

from tests.integration.label_studio_server import stop_process_group

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps",
    "--hide-scrollbars", "--mute-audio", "--no-default-browser-check",
    "--no-proxy-server", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
)  # fmt: skip


class ChromiumError(RuntimeError):
    pass


def chromium_executable() -> str | None:
    """The first Chromium on PATH, or None."""
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class HeadlessChromium:
    def __init__(self, *, width: int = 1400, height: int = 1800, executable: str | None = None,
                 startup_timeout_s: float = 60.0) -> None:  # fmt: skip
        self.executable = executable or chromium_executable()
        if self.executable is None:
            raise ChromiumError("no chromium on PATH (apt-get install -y chromium)")
        self.width, self.height = width, height
        self.startup_timeout_s = startup_timeout_s
        self._ids = itertools.count(1)
        self._stack = contextlib.ExitStack()
        self.process: subprocess.Popen[bytes] | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> HeadlessChromium:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        profile = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="smar-chromium-")))
        log_path = profile.parent / f"{profile.name}.log"
        self._stack.callback(lambda: log_path.unlink(missing_ok=True))
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [self.executable, *FLAGS, f"--user-data-dir={profile}",
                 f"--window-size={self.width},{self.height}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        # Stop the browser (and its renderer and GPU processes) before its profile is removed.
        self._stack.callback(stop_process_group, self.process.pid, 10.0)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.startup_timeout_s
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.process.poll() is not None:
                raise ChromiumError(f"chromium exited with {self.process.returncode}: {log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise ChromiumError(f"chromium wrote no DevToolsActivePort in {self.startup_timeout_s:.0f} s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
        with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.loads(response.read())
        page = next((target for target in targets if target.get("type") == "page"), None)
        if page is None:
            raise ChromiumError(f"no page target in {targets}")
        self._socket = self._stack.enter_context(
            websocket_connect(page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024, open_timeout=10)
        )
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip

    # -- protocol ---------------------------------------------------------------------------------
    def send(self, method: str, timeout_s: float = 60.0, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events that arrive meanwhile are dropped)."""
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChromiumError(f"{method}: no answer in {timeout_s:.0f} s")
            message = json.loads(self._socket.recv(timeout=remaining))
            if message.get("id") == message_id:
                if "error" in message:
                    raise ChromiumError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise ChromiumError(f"page script failed: {result['exceptionDetails'].get('text')}: "
                                f"{json.dumps(result['exceptionDetails'])[:1000]}")  # fmt: skip
        return result.get("result", {}).get("value")

    def navigate(self, url: str, *, timeout_s: float = 60.0) -> None:
        """Open `url` and wait until the document has loaded."""
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'", timeout_s=timeout_s)

    def wait_for(
        self, expression: str, *, timeout_s: float = 60.0, interval_s: float = 0.25, hold_s: float = 0.0
    ) -> Any:
        """Poll a JavaScript expression until it is truthy, and (with `hold_s` > 0) has stayed
        truthy at every poll for `hold_s` seconds in a row; its last value. ChromiumError on
        timeout. A poll that fails (the page navigating) counts as not truthy."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        truthy_since: float | None = None
        while time.monotonic() < deadline:
            last = None
            with contextlib.suppress(ChromiumError):
                last = self.evaluate(expression)
            now = time.monotonic()
            if not last:
                truthy_since = None
            elif truthy_since is None:
                truthy_since = now
            if truthy_since is not None and now - truthy_since >= hold_s:
                return last
            time.sleep(interval_s)
        held = f", held {hold_s} s" if hold_s else ""
        raise ChromiumError(f"timed out after {timeout_s:.0f} s waiting for {expression!r}{held} (last value {last!r})")

    def click(self, element_expression: str, *, timeout_s: float = 10.0) -> None:
        """A real mouse click (pressed and released) at the centre of the element that the
        JavaScript expression returns (waited for up to `timeout_s`), scrolled into view first:
        what React handlers see when a person clicks, unlike element.click()."""
        try:
            box = self.wait_for(
                f"(() => {{ const e = ({element_expression}); if (!e) return null;"
                " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
                " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()",
                timeout_s=timeout_s,
            )
        except ChromiumError as error:
            raise ChromiumError(f"nothing to click: {element_expression}") from error
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            extra = {} if kind == "mouseMoved" else {"button": "left", "clickCount": 1}
            self.send("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], **extra)

    def text(self) -> str:
        return str(self.evaluate("document.body ? document.body.innerText : ''") or "")

    def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        """A PNG of the viewport (or of the whole page)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})  # fmt: skip
        data = self.send("Page.captureScreenshot", **params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
