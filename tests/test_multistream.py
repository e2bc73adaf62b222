"""The many-stream engine must give every stream exactly what its own OnlineEngine gives, bit for bit,
whatever the streams do: join, leave, lose the face, jump ahead, flush, or sit a step out.

Criterion. ONNX Runtime on CPU gives a window the same logits in any batch, so there the engine is
compared with OnlineEngine directly and bitwise. torch on CPU does not (oneDNN blocks its first
convolution differently per batch size: up to ~1e-6 in the logits), so there the engine's logic is
compared bitwise through `OneWindowAtATime` (the runtime called once per window, as OnlineEngine
calls it), and the real batched runtime is checked to stay within that rounding."""
from __future__ import annotations

import numpy as np
import pytest

from engine_models import model_files
from mespot.engine.multistream import MultiStreamEngine
from mespot.engine.online import OnlineEngine, offline_probs
from mespot.engine.runtime import open_runtime


@pytest.fixture(scope="module", params=["onnx", "torch"])
def runtime(request):
    model, ckpt, onnx_path = model_files()
    if request.param == "onnx":
        return open_runtime(onnx_path, "onnx")
    return open_runtime(ckpt, "torch", threads=1)


class CountingRuntime:
    """Wraps a runtime and counts its infer calls and batch sizes."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []
        self.right_context, self.window = inner.right_context, inner.window

    def infer(self, x):
        self.calls.append(np.shape(x))
        return self.inner.infer(x)


class OneWindowAtATime(CountingRuntime):
    """The runtime called with one window per call, whatever batch the engine hands it."""

    def infer(self, x):
        return np.stack([self.inner.infer(w[None])[0] for w in x])


def batch_invariant(runtime):
    return runtime if runtime.name == "onnx" else OneWindowAtATime(runtime)


def assert_same_rows(got, expected, where, atol=0.0):
    assert [i for i, _ in got] == [i for i, _ in expected], where
    for (_, a), (_, b) in zip(got, expected):
        if atol == 0.0:
            assert np.array_equal(a, b), (where, np.abs(a - b).max())
        else:
            np.testing.assert_allclose(a, b, atol=atol, rtol=0, err_msg=str(where))


def random_scenario(runtime, seed: int, n_logical: int, steps: int, window: int | None = None, atol: float = 0.0,
                    reference_runtime=None, multi=None):
    """Drive a MultiStreamEngine and one OnlineEngine per logical stream through the same random
    life (joins, leaves, rejoins, skipped steps, invalid features, index jumps, flushes) and compare
    every call's rows. Returns how many rows were compared."""
    rng = np.random.default_rng(seed)
    multi = multi or MultiStreamEngine(runtime, window=window, capacity=2)
    reference_runtime = reference_runtime or runtime
    joined: dict[int, tuple[int, OnlineEngine]] = {}       # logical stream -> (slot, reference engine)
    next_index = {k: int(rng.integers(0, 50)) for k in range(n_logical)}
    compared = 0
    for step in range(steps):
        for k in range(n_logical):                           # joins and leaves
            if k not in joined and rng.random() < 0.15:
                joined[k] = (int(multi.join()[0]), OnlineEngine(reference_runtime, window=window))
            elif k in joined and rng.random() < 0.02:
                slot, ref = joined.pop(k)
                assert_same_rows(multi.leave([slot]).for_stream(slot), ref.flush(), (seed, step, "leave", k), atol)
        if joined and rng.random() < 0.05:                    # flush some streams mid-stream
            who = [k for k in joined if rng.random() < 0.5]
            rows = multi.flush([joined[k][0] for k in who])
            for k in who:
                got = rows.for_stream(joined[k][0])
                assert_same_rows(got, joined[k][1].flush(), (seed, step, "flush", k), atol)
                compared += len(got)
        pushing = [k for k in joined if rng.random() < 0.9]  # the others sit this step out
        rng.shuffle(pushing)
        indices, features, valid = [], [], []
        for k in pushing:
            next_index[k] += 1 if rng.random() < 0.93 else int(rng.integers(2, 6))
            indices.append(next_index[k])
            features.append(rng.normal(0.0, 0.5, (12, 2)).astype(np.float32))
            valid.append(rng.random() < 0.88)
        rows = multi.push([joined[k][0] for k in pushing], indices, np.array(features).reshape(-1, 12, 2), valid)
        assert list(dict.fromkeys(rows.stream.tolist())) == [joined[k][0] for k in pushing
                                                              if joined[k][0] in set(rows.stream.tolist())]
        for k, i, f, v in zip(pushing, indices, features, valid):
            slot, ref = joined[k]
            got = rows.for_stream(slot)
            assert_same_rows(got, ref.push(i, f, v), (seed, step, "push", k), atol)
            compared += len(got)
    final = multi.flush()
    for k, (slot, ref) in joined.items():
        assert_same_rows(final.for_stream(slot), ref.flush(), (seed, "final", k), atol)
    return compared


@pytest.mark.parametrize("seed", range(4))
def test_random_lives_equal_separate_engines_bitwise(runtime, seed):
    assert random_scenario(batch_invariant(runtime), seed, n_logical=9, steps=120,
                           reference_runtime=runtime) > 300


def test_larger_window_equals_separate_engines(runtime):
    assert random_scenario(batch_invariant(runtime), 11, n_logical=5, steps=80, window=16,
                           reference_runtime=runtime) > 100


def test_batched_torch_stays_within_its_batch_rounding():
    _, ckpt, _ = model_files()
    assert random_scenario(open_runtime(ckpt, "torch", threads=1), 5, n_logical=9, steps=100, atol=5e-6) > 200


def test_equals_offline_per_stream(runtime):
    """Independent of OnlineEngine: each stream's table equals one offline pass per valid run."""
    rng = np.random.default_rng(7)
    n, t = 6, 90
    features = rng.normal(0.0, 0.5, (n, t, 12, 2)).astype(np.float32)
    valid = rng.random((n, t)) > 0.1
    valid[2] = True
    engine = MultiStreamEngine(runtime)
    slots = engine.join(n)
    table = np.full((n, t, 8), np.nan, np.float32)

    def take(rows):
        for s, i, p in zip(rows.stream, rows.index, rows.probs):
            assert np.isnan(table[s, i]).all(), "emitted twice"
            table[s, i] = p

    for i in range(t):
        take(engine.push(slots, np.full(n, i), features[:, i], valid[:, i]))
    take(engine.leave(slots))
    for k in range(n):
        expected = offline_probs(runtime, features[k], valid[k])
        assert np.array_equal(np.isnan(table[k]), np.isnan(expected))
        np.testing.assert_allclose(table[k][valid[k]], expected[valid[k]], atol=1e-5, rtol=0)


def test_one_model_call_per_step_at_steady_state():
    """Vectorised: 40 streams in steady state cost one batched infer per step, not one per stream."""
    _, _, onnx_path = model_files()
    counting = CountingRuntime(open_runtime(onnx_path))
    engine = MultiStreamEngine(counting)
    slots = engine.join(40)
    x = np.zeros((40, 12, 2), np.float32)
    for i in range(engine.window + 3):
        engine.push(slots, np.full(40, i), x)
    counting.calls.clear()
    rows = engine.push(slots, np.full(40, 100), x, np.ones(40, bool))     # a jump: every run ends
    assert len(rows) == 40 * engine.delay and rows.index.tolist()[:5] == list(range(engine.window + 3 - 5,
                                                                                    engine.window + 3))
    assert counting.calls == [(40, engine.window, 12, 2)]
    for i in range(101, 101 + engine.window):
        counting.calls.clear()
        engine.push(slots, np.full(40, i), x)
        assert len(counting.calls) <= 1
    assert counting.calls == [(40, engine.window, 12, 2)]


def test_slots_are_reused_fresh_and_capacity_grows():
    _, _, onnx_path = model_files()
    engine = MultiStreamEngine(open_runtime(onnx_path), capacity=1)
    a = engine.join(3)
    assert a.tolist() == [0, 1, 2] and engine.capacity >= 3
    x = np.ones((3, 12, 2), np.float32)
    for i in range(8):
        engine.push(a, [i, i, i], x)
    assert engine.pending(a).tolist() == [5, 5, 5]
    rows = engine.leave([1])
    assert rows.stream.tolist() == [1] * 5 and rows.index.tolist() == [3, 4, 5, 6, 7]
    b = engine.join(1)
    assert b.tolist() == [1] and engine.pending(b).tolist() == [0]
    assert engine.push(b, [0], x[:1]).index.size == 0            # index 0 is fine again: a new stream
    assert sorted(engine.streams.tolist()) == [0, 1, 2]


def test_bad_calls_are_refused_without_changing_state():
    _, _, onnx_path = model_files()
    engine = MultiStreamEngine(open_runtime(onnx_path))
    s = engine.join(2)
    x = np.zeros((2, 12, 2), np.float32)
    engine.push(s, [4, 9], x)
    with pytest.raises(ValueError, match="stream 1: feature index 9 not after the previous one 9"):
        engine.push(s, [5, 9], x)
    assert engine.push(s, [5, 10], x).index.size == 0           # the refused step changed nothing
    with pytest.raises(ValueError, match="not joined"):
        engine.push([0, 7], [6, 11], x)
    with pytest.raises(ValueError, match="twice"):
        engine.push([0, 0], [6, 7], x)
    with pytest.raises(ValueError, match=r"features \(2, 12, 2\)"):
        engine.push(s, [6, 11], np.zeros((2, 11, 2)))
    with pytest.raises(ValueError, match="window 10"):
        MultiStreamEngine(open_runtime(onnx_path), window=10)
    assert len(engine.push([], [], np.zeros((0, 12, 2)))) == 0
