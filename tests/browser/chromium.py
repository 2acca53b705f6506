"""Headless Chromium driven through the DevTools protocol: one page, its
console errors and uncaught exceptions collected, its dialogs (confirm)
answered as the test says, JavaScript evaluated, waits that poll the page
until a deadline, and screenshots."""

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time

from websocket import WebSocket

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find():
    """$AGENTKV_CHROMIUM, else the first of NAMES on PATH; None if none."""
    explicit = os.environ.get("AGENTKV_CHROMIUM")
    if explicit:
        return explicit if shutil.which(explicit) else None
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(RuntimeError):
    pass


class Browser:
    """Starts `binary` headless on a fresh profile in `profile_dir`; its own
    output goes to `log_path`. Close() ends it."""

    def __init__(self, binary, profile_dir, log_path, timeout=60):
        self._log = open(log_path, "w")
        # The sandbox is off: the page is agentkv's own, on loopback, and
        # CI containers and root cannot run Chromium's sandbox.
        self._proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", "--mute-audio", "--window-size=1400,1000",
             "--user-data-dir=" + profile_dir, "--remote-debugging-port=0", "about:blank"],
            stdout=self._log, stderr=subprocess.PIPE, text=True)
        found = threading.Event()
        self._ws_url = None

        def read():  # Chromium says where DevTools listens on its stderr
            for line in self._proc.stderr:
                self._log.write(line)
                m = re.search(r"DevTools listening on (ws://\S+)", line)
                if m and not found.is_set():
                    self._ws_url = m.group(1)
                    found.set()
            found.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not found.wait(timeout) or not self._ws_url:
            self.close()
            raise RuntimeError(f"{binary} did not start DevTools within {timeout} s "
                               f"(its output is in {log_path})")
        self._ws = WebSocket(self._ws_url)
        self._next_id = 0
        self._session = None
        self.errors = []   # console errors, uncaught exceptions, failed loads
        self.dialogs = []  # messages of the dialogs the page opened
        self.accept_dialogs = True

    # --- protocol ---------------------------------------------------------

    def _send(self, method, params=None, session=True):
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self._session:
            msg["sessionId"] = self._session
        self._ws.send(json.dumps(msg))
        return self._next_id

    def call(self, method, params=None, session=True, timeout=60):
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError(f"{method}: no answer within {timeout} s")
            try:
                msg = json.loads(self._ws.recv(left))
            except socket.timeout:
                continue
            if msg.get("id") == wanted:
                if "error" in msg:
                    raise CdpError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self._event(msg["method"], msg.get("params", {}))

    def pump(self, seconds):
        """Handles the events that arrive within `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                msg = json.loads(self._ws.recv(left))
            except socket.timeout:
                return
            if "method" in msg:
                self._event(msg["method"], msg.get("params", {}))

    def _event(self, method, p):
        if method == "Page.javascriptDialogOpening":
            self.dialogs.append(p.get("message", ""))
            self._send("Page.handleJavaScriptDialog", {"accept": self.accept_dialogs})
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.errors.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            self.errors.append("console." + p["type"] + ": " + args)
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            self.errors.append("log: " + e.get("text", "") + " " + e.get("url", ""))

    # --- the page ---------------------------------------------------------

    def open(self, url, width=1400, height=1000):
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.call("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, session=False)
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(domain + ".enable")
        self.call("Emulation.setFocusEmulationEnabled", {"enabled": True})
        self.resize(width, height)
        self.call("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'", "the page to load")

    def resize(self, width, height):
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def evaluate(self, expression):
        r = self.call("Runtime.evaluate",
                      {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise CdpError("evaluate: " + json.dumps(r["exceptionDetails"])[:500])
        return r.get("result", {}).get("value")

    def wait_for(self, expression, what, timeout=30):
        """Polls `expression` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            self.pump(0.05)  # waits for events, not a sleep: returns early on one
        raise TimeoutError(f"waited {timeout} s for {what}; last value {value!r}")

    def type_into(self, selector, text):
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", {"text": text})

    def screenshot(self, path):
        height = self.evaluate("document.documentElement.scrollHeight")
        self.resize(1400, int(height))
        shot = self.call("Page.captureScreenshot", {"format": "png"})
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        self.resize(1400, 1000)

    def close(self):
        try:
            if getattr(self, "_ws", None):
                try:
                    self.call("Browser.close", session=False, timeout=10)
                except (CdpError, ConnectionError, OSError):
                    pass
                self._ws.close()
        finally:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._log.close()
