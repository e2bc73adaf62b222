"""The online engine must reproduce one offline pass per valid run exactly, gaps included."""
from __future__ import annotations

import numpy as np
import pytest

from engine_models import WINDOW, model_files
from mespot.engine.online import OnlineEngine, offline_probs
from mespot.engine.runtime import open_runtime

T = 160


@pytest.fixture(scope="module", params=["onnx", "torch"])
def runtime(request):
    model, ckpt, onnx_path = model_files()
    if request.param == "onnx":
        return open_runtime(onnx_path, "onnx")
    return open_runtime(ckpt, "torch")


def random_features(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.5, (T, 12, 2)).astype(np.float32)


def structured_features() -> np.ndarray:
    """Neutral noise with a smile-like and a brow-like bump (smooth onsets and offsets)."""
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 0.02, (T, 12, 2)).astype(np.float32)
    t = np.arange(T)
    x[:, [8, 10], 1] += (-0.8 * np.exp(-0.5 * ((t - 40) / 6.0) ** 2))[:, None]
    x[:, [0, 1, 4, 5], 1] += (0.4 * np.exp(-0.5 * ((t - 100) / 2.0) ** 2))[:, None]
    return x


def gaps(pattern: str) -> np.ndarray:
    valid = np.ones(T, bool)
    if pattern == "none":
        pass
    elif pattern == "first_frame":           # a track's feature 0 has no predecessor
        valid[0] = False
    elif pattern == "single_gaps":
        valid[[0, 30, 31, 77, 140]] = False
    elif pattern == "short_runs":            # runs of 1, 2, 4, 5, 6 and 11 indices between gaps
        valid[:] = False
        for start, length in ((3, 1), (6, 2), (10, 4), (16, 5), (23, 6), (31, 11), (50, 100)):
            valid[start:start + length] = True
    elif pattern == "alternating":
        valid[1::2] = False
    elif pattern == "ends_invalid":
        valid[-7:] = False
        valid[:9] = False
    else:
        raise ValueError(pattern)
    return valid


def run_online(engine: OnlineEngine, features: np.ndarray, valid: np.ndarray, indices=None):
    """Push everything, flush; return the (T, 8) table and the push step at which each index came out."""
    indices = np.arange(len(features)) if indices is None else indices
    out = np.full((len(features), 8), np.nan, np.float32)
    emitted_at = {}
    for step, (i, f, v) in enumerate(zip(indices, features, valid)):
        for j, row in engine.push(int(i), f, bool(v)):
            assert j not in emitted_at, f"index {j} emitted twice"
            emitted_at[j] = int(i)
            out[np.searchsorted(indices, j)] = row
    for j, row in engine.flush():
        assert j not in emitted_at, f"index {j} emitted twice"
        emitted_at[j] = None
        out[np.searchsorted(indices, j)] = row
    return out, emitted_at


@pytest.mark.parametrize("pattern", ["none", "first_frame", "single_gaps", "short_runs", "alternating",
                                     "ends_invalid"])
@pytest.mark.parametrize("kind", ["random", "structured"])
def test_online_equals_offline(runtime, pattern, kind):
    features = random_features(hash(pattern) % 1000) if kind == "random" else structured_features()
    valid = gaps(pattern)
    offline = offline_probs(runtime, features, valid)
    online, emitted_at = run_online(OnlineEngine(runtime), features, valid)
    assert np.array_equal(np.isnan(online), np.isnan(offline))
    assert np.isnan(offline[~valid]).all() and not np.isnan(offline[valid]).any()
    np.testing.assert_allclose(online[valid], offline[valid], atol=1e-5, rtol=0)
    assert sorted(emitted_at) == list(np.flatnonzero(valid))


def test_emission_delay_is_right_context(runtime):
    """Index j comes out exactly when j+5 arrives; the last 5 of a run at the gap or at flush()."""
    valid = gaps("single_gaps")
    _, emitted_at = run_online(OnlineEngine(runtime), random_features(1), valid)
    run_end = {}
    for start, stop in [(1, 30), (32, 77), (78, 140), (141, T)]:
        for j in range(start, stop):
            run_end[j] = stop
    for j, at in emitted_at.items():
        if j + 5 < run_end[j]:
            assert at == j + 5, (j, at)
        else:        # decided by the next invalid index (the gap) or by flush() at the end
            assert at == (run_end[j] if run_end[j] < T else None), (j, at)


def test_index_jump_is_a_gap(runtime):
    """Missing indices end the run just like an invalid feature would."""
    features = random_features(5)
    indices = np.concatenate([np.arange(0, 40), np.arange(45, 90), np.arange(91, 130)])
    online, _ = run_online(OnlineEngine(runtime), features[:len(indices)], np.ones(len(indices), bool), indices)
    full = np.zeros((130, 12, 2), np.float32)
    full[indices] = features[:len(indices)]
    valid = np.zeros(130, bool)
    valid[indices] = True
    np.testing.assert_allclose(online, offline_probs(runtime, full, valid)[indices], atol=1e-5, rtol=0)


@pytest.mark.parametrize("window", [12, 16, 64])
def test_larger_windows_are_also_exact(runtime, window):
    features, valid = random_features(9), gaps("short_runs")
    online, _ = run_online(OnlineEngine(runtime, window=window), features, valid)
    np.testing.assert_allclose(online[valid], offline_probs(runtime, features, valid)[valid], atol=1e-5, rtol=0)


def test_one_model_call_per_valid_feature_plus_one_per_run():
    model, ckpt, onnx_path = model_files()
    engine = OnlineEngine(open_runtime(onnx_path))
    valid = gaps("single_gaps")
    run_online(engine, random_features(2), valid)
    n_runs, n_long_enough = 4, int(valid.sum()) - 4 * 5
    assert engine.window == WINDOW
    assert engine.model_calls == n_long_enough + n_runs


def test_engine_rejects_bad_input():
    model, ckpt, onnx_path = model_files()
    runtime = open_runtime(onnx_path)
    with pytest.raises(ValueError, match="window 10"):
        OnlineEngine(runtime, window=10)
    engine = OnlineEngine(runtime)
    engine.push(4, np.zeros((12, 2)), True)
    with pytest.raises(ValueError, match="not after"):
        engine.push(4, np.zeros((12, 2)), True)
    with pytest.raises(ValueError, match=r"\(12, 2\)"):
        engine.push(5, np.zeros((11, 2)), True)


def test_offline_probs_fills_invalid_with_nan():
    _, _, onnx_path = model_files()
    runtime = open_runtime(onnx_path)
    valid = np.zeros(20, bool)
    probs = offline_probs(runtime, np.zeros((20, 12, 2)), valid)
    assert probs.shape == (20, 8) and np.isnan(probs).all()
    with pytest.raises(ValueError, match="valid"):
        offline_probs(runtime, np.zeros((20, 12, 2)), np.ones(19, bool))
