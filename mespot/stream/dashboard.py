"""The terminal dashboard of `spot-live`: fps, per-stage latency, face status, score trace, intervals.

A PipelineObserver: the pipeline thread only appends to small buffers under a lock; rich's own
refresh thread draws them four times a second, so drawing never sits in the frame loop.
"""
from __future__ import annotations

import threading
from collections import deque

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mespot.engine.probs import COL
from mespot.stream.pipeline import STAGES, FrameRecord, PipelineObserver
from mespot.types import Interval

TRACE_LEN = 64                 # frames in the rolling score trace (~2 s at 30 fps; fits 80 columns)
BLOCKS = " ▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None]) -> str:
    """One character per value in [0, 1]; None (no probabilities: invalid frame) is '·'."""
    out = []
    for v in values:
        if v is None:
            out.append("·")
        else:
            out.append(BLOCKS[min(int(max(v, 0.0) * (len(BLOCKS) - 1) + 0.5), len(BLOCKS) - 1)])
    return "".join(out)


class LiveDisplay:
    """A terminal display that rich redraws from `_render()` four times a second on its own
    thread, between `start()` and `stop()` (the single- and the multi-stream dashboards).
    Subclasses call `__init__` last: rich draws once while it is built."""

    def __init__(self, console=None) -> None:
        self._live = Live(get_renderable=self._render, refresh_per_second=4, console=console,
                          transient=False, redirect_stderr=False)

    def _render(self):
        raise NotImplementedError

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        self._live.stop()


class Dashboard(LiveDisplay, PipelineObserver):
    def __init__(self, *, title: str, thresholds: dict[str, float], console=None) -> None:
        self.title = title
        self.thresholds = thresholds
        self._lock = threading.Lock()
        self._trace: deque[tuple[int, float | None, float | None]] = deque(maxlen=TRACE_LEN)
        self._intervals: deque[tuple[Interval, dict]] = deque(maxlen=8)
        self._status: dict | None = None
        self._face = False
        super().__init__(console)                # last: rich draws once as it is built

    # -- observer side (pipeline thread) ----------------------------------------------------------
    def on_frame(self, record: FrameRecord) -> None:
        with self._lock:
            self._face = record.face_present
            if not record.valid:
                self._trace.append((record.index, None, None))
            for index, row in record.probs:
                self._trace.append((index, float(row[COL["micro_apex"]]), float(row[COL["macro_apex"]])))

    def on_interval(self, interval: Interval, message: dict) -> None:
        with self._lock:
            self._intervals.append((interval, message))

    def on_status(self, message: dict) -> None:
        with self._lock:
            self._status = message

    # -- drawing (rich's refresh thread) ----------------------------------------------------------
    def _render(self):
        with self._lock:
            status = self._status
            trace = sorted(self._trace)
            intervals = list(self._intervals)
            face = self._face
        tables = Table.grid(padding=(0, 2))
        tables.add_row(self._latency(status), self._recent(intervals))
        return Panel(Group(self._header(status, face), self._scores(trace), tables), title=self.title)

    def _header(self, status: dict | None, face: bool) -> Text:
        if status is None:
            return Text("starting...")
        text = Text()
        text.append(f"{status['state']}  ", style="bold")
        text.append(f"{status['fps']:.1f} fps  frames {status['frames']}  ")
        text.append("face " + ("present" if face else "absent") + "  ",
                    style="green" if face else "red")
        dropped = status["dropped"]
        text.append(f"dropped capture {dropped['capture']} publish {dropped['publish']}  ")
        source = status.get("source", {})
        if status["state"] == "running":
            healthy = source.get("healthy")
            text.append("source " + ("ok" if healthy else "stalled"), style="green" if healthy else "yellow")
        faults = [f"{source[k]} {k}" for k in ("gaps", "duplicates", "frozen", "reconnects") if source.get(k)]
        if faults:
            text.append("  " + ", ".join(faults), style="yellow")
        return text

    def _latency(self, status: dict | None) -> Table:
        table = Table(title="latency ms, last frames", expand=False, padding=(0, 1))
        table.add_column("stage", no_wrap=True)
        for col in ("p50", "p99", "max"):
            table.add_column(col, justify="right", no_wrap=True)
        stats = (status or {}).get("latency_ms", {})
        for stage in STAGES:
            s = stats.get(stage) or {}
            table.add_row(stage, *(f"{s[c]:.1f}" if c in s else "-" for c in ("p50", "p99", "max")))
        return table

    def _scores(self, trace) -> Text:
        text = Text("apex probability, oldest left (threshold micro "
                    f"{self.thresholds['micro']:.2f}, macro {self.thresholds['macro']:.2f})\n")
        text.append("micro " + sparkline([m for _, m, _ in trace]) + "\n", style="cyan")
        text.append("macro " + sparkline([m for _, _, m in trace]), style="magenta")
        return text

    def _recent(self, intervals) -> Table:
        table = Table(title="recent intervals", padding=(0, 1))
        for col in ("kind", "frames", "score", "delay"):
            table.add_column(col, justify="left" if col == "kind" else "right", no_wrap=True)
        for interval, message in intervals:
            delay = message.get("delay_ms")
            table.add_row(interval.kind, f"{interval.onset}-{interval.apex}-{interval.offset}",
                          f"{interval.score:.2f}", "-" if delay is None else f"{delay:.0f}ms")
        return table
