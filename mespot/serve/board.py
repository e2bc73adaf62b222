"""The dashboard of a multi-stream `spot-live`: one row per stream, drawn from the bus.

It reads only the `status` and `interval` messages the supervisor's monitor receives, so a row
shows what every subscriber could see: state, restarts, rate, frames, face, drops, end-to-end
latency, intervals found and the source's health. rich's refresh thread draws it four times a
second from a snapshot taken under a lock.
"""
from __future__ import annotations

import threading

from rich.table import Table

from mespot.serve.supervisor import BusObserver
from mespot.stream.dashboard import LiveDisplay


class StreamsBoard(LiveDisplay, BusObserver):
    def __init__(self, stream_ids: list[str], *, title: str, console=None) -> None:
        self.ids = list(stream_ids)
        self.title = title
        self._lock = threading.Lock()
        self._status: dict[str, dict] = {}
        self._last_interval: dict[str, dict] = {}
        super().__init__(console)                # last: rich draws once as it is built

    def on_message(self, message: dict) -> None:
        with self._lock:
            if message["topic"] == "status":
                self._status[message["stream"]] = message
            elif message["topic"] == "interval":
                self._last_interval[message["stream"]] = message

    def rows(self) -> list[list[str]]:
        """The table's cells, one list per stream in the order given (also what tests read)."""
        with self._lock:
            status, last = dict(self._status), dict(self._last_interval)
        out = []
        for sid in self.ids:
            s = status.get(sid)
            if s is None:
                out.append([sid, "starting"] + ["-"] * 9)
                continue
            e2e = s.get("latency_ms", {}).get("end_to_end") or {}
            source = s.get("source", {})
            i = last.get(sid)
            out.append([
                sid, s["state"], str(s.get("restarts", 0)), f"{s['fps']:.1f}", str(s["frames"]),
                "yes" if s.get("face_present") else "no",
                f"{s['dropped']['capture']}/{s['dropped']['publish']}",
                f"{e2e['p50']:.0f}/{e2e['p99']:.0f}" if e2e else "-",
                f"{s['intervals']['micro']}/{s['intervals']['macro']}",
                "-" if i is None else f"{i['kind']} {i['onset_frame']}-{i['offset_frame']}",
                ("ok" if source.get("healthy") else "stalled") if s["state"] == "running" else "-",
            ])
        return out

    def _render(self) -> Table:
        table = Table(title=self.title, padding=(0, 1))
        for col in ("stream", "state", "restarts", "fps", "frames", "face", "dropped cap/pub", "e2e ms p50/p99",
                    "micro/macro", "last interval", "source"):
            table.add_column(col, no_wrap=True, justify="left" if col in ("stream", "state", "last interval") else "right")
        for row in self.rows():
            table.add_row(*row)
        return table
