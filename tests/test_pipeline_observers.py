"""What an observer sees of the loop: every valid index's probabilities exactly once (frames, then
the end-of-stream flush), and each frame's image, mesh and ROI centres by reference."""
from __future__ import annotations

import numpy as np

from live_fakes import ListCapture, TableEngine, TableFrontEnd, planted_probs
from mespot.config import load_config
from mespot.stream.peakpicker import CausalPeakPicker
from mespot.stream.pipeline import LivePipeline, PipelineObserver
from mespot.stream.sinks import MessageBus
from mespot.types import FrameFeatures


class MeshFrontEnd(TableFrontEnd):
    """TableFrontEnd that also reports a face mesh for every valid frame."""

    def process(self, frame):
        f = super().process(frame)
        mesh = np.full((468, 2), frame.index, np.float32) if f.valid else None
        return FrameFeatures(f.index, f.features, f.valid, f.t_source, f.t_monotonic, f.roi_centres, f.stage_ms,
                             mesh=mesh)


class Seen(PipelineObserver):
    def __init__(self):
        self.rows, self.flushed, self.records = [], [], []

    def on_frame(self, record):
        self.records.append(record)
        self.rows += [i for i, _ in record.probs]

    def on_flush(self, probs):
        self.flushed += [i for i, _ in probs]


def test_observers_get_every_valid_row_once_and_the_frame_pictures():
    config = load_config("casme2")
    n = 120
    probs = planted_probs(n, [("micro", 30, 34, 40)], noise=0.03, rng=np.random.default_rng(3))
    valid = np.ones(n, bool)
    valid[[0, 60]] = False
    seen = Seen()
    capture = ListCapture(n)
    pipeline = LivePipeline(capture, MeshFrontEnd(valid), TableEngine(probs, config.model_delay),
                            CausalPeakPicker(config), MessageBus([], stream="t"), config=config,
                            score_rate_hz=0.0, observers=[seen])
    pipeline.run()
    assert len(seen.flushed) == config.model_delay          # the rows of the last frames come at the end
    assert sorted(seen.rows + seen.flushed) == [i for i in range(n) if valid[i]]
    assert all(r.image is capture._image for r in seen.records)           # by reference, never copied
    assert all((r.mesh is None) == (not r.valid) for r in seen.records)
    assert seen.records[5].mesh[0, 0] == 5 and seen.records[5].roi_centres is not None
