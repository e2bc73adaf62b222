"""A local MJPEG-over-HTTP server for tests (127.0.0.1 only), that can be cut and restored, and
whose frame size can be changed while it streams."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "mespotframe"


def _frame_jpeg(i: int, size: tuple[int, int] = (160, 120)) -> bytes:
    w, h = size
    img = np.full((h, w, 3), 40, np.uint8)
    cv2.circle(img, (20 + (i * 3) % (w - 40), h // 2), 12, (0, 200, 255), -1)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


class MjpegServer:
    """Serves `multipart/x-mixed-replace` JPEG frames at `fps` on 127.0.0.1:`port`.

    `cut()` closes every open stream and stops listening; `restore()` listens again on the same port.
    Setting `size` (width, height) changes the frames of every open stream from the next one on, as
    a camera switching resolution does.
    """

    def __init__(self, fps: float = 30.0, port: int = 0, size: tuple[int, int] = (160, 120)) -> None:
        self.fps = fps
        self.port = port
        self.size = size
        self.frames_sent = 0
        self._alive = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.restore()

    def _handler(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                i = 0
                try:
                    while outer._alive.is_set():
                        jpg = _frame_jpeg(outer.frames_sent, outer.size)
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                         f"Content-Length: {len(jpg)}\r\n\r\n".encode())
                        self.wfile.write(jpg + b"\r\n")
                        self.wfile.flush()
                        outer.frames_sent += 1
                        i += 1
                        time.sleep(1.0 / outer.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def restore(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._alive.set()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def cut(self) -> None:
        self._alive.clear()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def close(self) -> None:
        if self._alive.is_set():
            self.cut()
