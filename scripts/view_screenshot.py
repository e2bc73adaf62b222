#!/usr/bin/env python3
"""Screenshot `spot-live --demo --view web` in headless Chromium: what a user sees in the browser.

Starts `spot-live --demo --view web --no-ui` (its face, regions, curves and intervals served by
rerun's web viewer from the process itself), opens the printed address in headless Chromium with
every host but localhost unresolvable (so nothing can be fetched from the internet), waits, and
saves a screenshot; then stops spot-live with Ctrl-C (SIGINT) and checks that it ended cleanly.

    python scripts/view_screenshot.py --out docs/img/view-web.png [--wait 14] [--port 9090]

Chromium is driven over its DevTools pipe (--remote-debugging-pipe: JSON messages on file
descriptors 3 and 4), so only the standard library is needed. Exit 0 with the screenshot written;
2 when Chromium is not installed (Debian: apt-get install chromium) or spot-live did not start.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
URL_LINE = re.compile(r"view: open (http://\S+)")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class DevToolsPipe:
    """Chromium's DevTools protocol over --remote-debugging-pipe (NUL-terminated JSON messages)."""

    def __init__(self, chromium: str, width: int, height: int, profile: str) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4: a shell puts the pipes there.
        self.proc = subprocess.Popen(
            ["sh", "-c", f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}', chromium, "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--remote-debugging-pipe",
             "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-first-run", "--mute-audio",
             f"--window-size={width},{height}", f"--user-data-dir={profile}",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost", "about:blank"],
            pass_fds=(to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed its DevTools pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def screenshot(chromium: str, url: str, out: Path, *, wait_s: float, width: int = 1400, height: int = 850) -> None:
    with tempfile.TemporaryDirectory(prefix="mespot-chromium-") as profile:
        pipe = DevToolsPipe(chromium, width, height, profile)
        try:
            target = pipe.call("Target.createTarget", {"url": url})["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            time.sleep(wait_s)                  # the viewer compiles its wasm, connects, and plays the data
            data = pipe.call("Page.captureScreenshot", {"format": "png"}, session)["data"]
        finally:
            pipe.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(data))


def start_demo(port: int, extra: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    """spot-live --demo --view web in the background; returns it and the address it printed."""
    cmd = [sys.executable, "-m", "mespot.cli.live", "--demo", "--view", "web", "--view-port", str(port),
           "--view-keep", "--no-ui", *extra]
    err = open(log, "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True)
    deadline = time.monotonic() + 300            # rendering the demo clip takes a while on a busy machine
    while time.monotonic() < deadline:
        match = URL_LINE.search(log.read_text())
        if match:
            return proc, match.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"spot-live printed no view address: {log.read_text()[-800:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0].replace("`", ""))
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    p.add_argument("--wait", type=float, default=40.0,
                   help="seconds from opening the page to the shot (default 40: the 24 s demo, and time for a "
                        "busy machine's browser to catch up; spot-live keeps serving with --view-keep)")
    p.add_argument("--port", type=int, default=9090, help="the web viewer's port (default 9090)")
    p.add_argument("--log", type=Path, help="where spot-live's stderr goes (default: a temporary file)")
    p.add_argument("live_args", nargs="*", help="more spot-live arguments, after --")
    args = p.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("view_screenshot: no Chromium found (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mespot-view-") as tmp:
        log = args.log or Path(tmp) / "spot-live.err"
        try:
            proc, url = start_demo(args.port, args.live_args, log)
        except RuntimeError as exc:
            print(f"view_screenshot: {exc}", file=sys.stderr)
            return 2
        try:
            screenshot(chromium, url, args.out, wait_s=args.wait)
        finally:
            proc.send_signal(signal.SIGINT)          # a clean end: pending intervals, final status
            code = proc.wait(timeout=120)
        print(f"wrote {args.out} from {url}; spot-live exited {code}")
        return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
