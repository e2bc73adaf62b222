"""`spot-live --lsl` (mespot.view.lsl): an LSL inlet on the loopback interface receives every interval
as JSON stamped with its onset frame's capture time, and every valid frame's probabilities."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from live_fakes import ListCapture, TableEngine, TableFrontEnd, planted_probs
from mespot.config import load_config
from mespot.engine.probs import PROB_COLUMNS
from mespot.stream.peakpicker import CausalPeakPicker
from mespot.stream.pipeline import LivePipeline, PipelineObserver
from mespot.stream.sinks import MessageBus

pylsl = pytest.importorskip("pylsl", reason="pylsl is the 'lsl' extra: make test installs it")

from mespot.view.lsl import LslOutlets, lsl_offset  # noqa: E402

PLANTS = [("micro", 30, 34, 40), ("macro", 80, 100, 125), ("micro", 160, 164, 171)]
# liblsl reads this file at its first use: resolve and stream on 127.0.0.1 only, no multicast to the LAN.
LOOPBACK_CFG = """[multicast]
ResolveScope = machine
MachineAddresses = {127.0.0.1}
[lab]
KnownPeers = {127.0.0.1}
[ports]
IPv6 = disable
"""


@pytest.fixture(scope="module", autouse=True)
def loopback_only(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("lsl") / "lsl_api.cfg"
    cfg.write_text(LOOPBACK_CFG)
    old = os.environ.get("LSLAPICFG")
    os.environ["LSLAPICFG"] = str(cfg)
    yield
    if old is None:
        os.environ.pop("LSLAPICFG", None)
    else:
        os.environ["LSLAPICFG"] = old


class Stamps(PipelineObserver):
    def __init__(self):
        self.t = {}

    def on_frame(self, record):
        self.t[record.index] = record.t_monotonic


def _inlet(source_id: str):
    found = pylsl.resolve_byprop("source_id", source_id, timeout=10.0)
    assert len(found) == 1, f"no LSL stream {source_id} on loopback"
    inlet = pylsl.StreamInlet(found[0], max_buflen=60)
    inlet.open_stream(timeout=10.0)
    return inlet


def _pull(inlet, n: int, timeout_s: float = 10.0):
    samples, stamps = [], []
    deadline = time.monotonic() + timeout_s
    while len(samples) < n and time.monotonic() < deadline:
        chunk, ts = inlet.pull_chunk(timeout=0.5, max_samples=n - len(samples))
        samples += chunk
        stamps += ts
    return samples, stamps


def test_an_inlet_on_loopback_gets_each_interval_at_its_onset_capture_time():
    config = load_config("casme2")
    n = 220
    probs = planted_probs(n, PLANTS, noise=0.03, rng=np.random.default_rng(1))
    valid = np.ones(n, bool)
    valid[[0, 150]] = False
    outlets = LslOutlets("lsltest", fps=config.fps, probabilities=True)
    stamps = Stamps()
    markers = _inlet("mespot-lsltest-intervals")
    scores = _inlet("mespot-lsltest-probabilities")
    pipeline = LivePipeline(ListCapture(n), TableFrontEnd(valid), TableEngine(probs, config.model_delay),
                            CausalPeakPicker(config), MessageBus([], stream="lsltest"), config=config,
                            score_rate_hz=0.0, observers=[stamps, outlets])
    summary = pipeline.run()
    assert len(summary.intervals) == len(PLANTS)

    got, ts = _pull(markers, len(PLANTS))
    rows, row_ts = _pull(scores, int(valid.sum()))
    outlets.close()
    messages = [json.loads(s[0]) for s in got]
    assert [(m["kind"], m["onset_frame"], m["apex_frame"], m["offset_frame"]) for m in messages] == \
        [(i.kind, i.onset, i.apex, i.offset) for i in summary.intervals]
    assert outlets.offset_s == 0.0           # Linux: both clocks are CLOCK_MONOTONIC
    for m, t in zip(messages, ts):
        assert t == stamps.t[m["onset_frame"]] == m["onset_lsl_time"]     # not the (later) emission time
        assert t < m["emitted_time"] - time.time() + time.monotonic()

    assert len(rows) == valid.sum() == outlets.samples_sent
    frames = [index for index in range(n) if valid[index]]
    assert row_ts == [stamps.t[i] for i in frames]
    assert np.array(rows, np.float32) == pytest.approx(probs[frames])
    info = scores.info()
    labels = []
    channel = info.desc().child("channels").child("channel")
    while not channel.empty():
        labels.append(channel.child_value("label"))
        channel = channel.next_sibling()
    assert labels == list(PROB_COLUMNS) and info.nominal_srate() == config.fps


def test_lsl_offset_is_exactly_zero_for_the_same_clock_and_measured_otherwise():
    assert lsl_offset(time.monotonic) == 0.0
    assert lsl_offset(lambda: time.monotonic() + 100.0) == pytest.approx(100.0, abs=1e-3)
    assert lsl_offset(pylsl.local_clock) == 0.0
