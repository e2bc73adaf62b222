"""StageLog: the status and summary percentiles of the live loop's stage times."""
import numpy as np

from mespot.stream.pipeline import STAGES, StageLog


def _expected(history: list[dict], last: int) -> dict:
    out = {}
    for s in STAGES:
        values = np.array([h[s] for h in history[-last:]])
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        out[s] = {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3),
                  "max": round(float(values.max()), 3)}
    return out


def test_percentiles_cover_exactly_the_newest_frames_across_the_ring_wrap():
    rng = np.random.default_rng(3)
    log = StageLog(size=50)
    history = []
    assert log.percentiles() == {s: {} for s in STAGES}
    for n in range(1, 131):
        # A stage's time grows with the frame number, so a window that is off by one frame shows.
        frame = {s: float(n * (k + 1) + rng.random()) for k, s in enumerate(STAGES)}
        log.add(frame)
        history.append(frame)
        if n in (1, 7, 49, 50, 51, 99, 100, 101, 130):
            assert log.percentiles() == _expected(history, 50)
            assert log.percentiles(last=10) == _expected(history, 10)
            assert log.percentiles(last=500) == _expected(history, 50)
