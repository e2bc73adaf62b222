"""CUDA-graph replay: buckets, padding and slicing on CPU (eager stand-in for the capture); the
capture itself, and replay = eager bit for bit, only on CUDA."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine_models import model_files
from mespot.engine.runtime import open_runtime
from mespot.engine.runtime.graphs import GRAPH_BUCKETS, GraphSet, bucket_plan, eager_capture


def test_bucket_plan():
    assert bucket_plan(1) == [(0, 1, 1)]
    assert bucket_plan(5) == [(0, 5, 16)]
    assert bucket_plan(64) == [(0, 64, 64)]
    assert bucket_plan(65) == [(0, 65, 256)]
    big = GRAPH_BUCKETS[-1]
    assert bucket_plan(2 * big + 3) == [(0, big, big), (big, 2 * big, big), (2 * big, 2 * big + 3, 4)]
    assert bucket_plan(10, (2, 8)) == [(0, 8, 8), (8, 10, 2)]
    for bad in (0, -1):
        with pytest.raises(ValueError, match="batch must be >= 1"):
            bucket_plan(bad)
    with pytest.raises(ValueError, match="ascending"):
        bucket_plan(3, (4, 2))


def model_forward():
    model = model_files()[0]

    def forward(x):
        return model(x).float()
    return forward


def test_graph_set_equals_eager_for_every_batch_size():
    forward = model_forward()
    graphs = GraphSet(eager_capture(torch, forward, 11, "cpu"), 11, buckets=(1, 4, 16))
    rng = np.random.default_rng(0)
    for b in (1, 3, 4, 5, 16, 17, 40, 2, 1):
        x = rng.normal(0.0, 0.5, (b, 11, 12, 2)).astype(np.float32)
        got = graphs.run(x)
        with torch.inference_mode():
            expected = forward(torch.from_numpy(x)).numpy()
        assert got.shape == (b, 10, 11)
        np.testing.assert_allclose(got, expected, atol=5e-6, rtol=0)
    assert graphs.captured == (1, 4, 16)
    with pytest.raises(ValueError, match="11-index"):
        graphs.run(np.zeros((2, 12, 12, 2), np.float32))


def test_padding_rows_are_zero_after_a_larger_batch():
    """A stand-in 'model' that mixes its batch shows any stale row left from an earlier call."""
    def batch_sum(x):
        return x.sum(dim=(0, 2, 3))[None, None, :].expand(x.shape[0], 10, x.shape[1]).clone()

    graphs = GraphSet(eager_capture(torch, batch_sum, 3, "cpu"), 3, buckets=(8,))
    big = np.ones((7, 3, 12, 2), np.float32)
    assert graphs.run(big)[0, 0, 0] == 7 * 24
    small = np.full((2, 3, 12, 2), 0.5, np.float32)
    assert graphs.run(small)[0, 0, 0] == 2 * 24 * 0.5


def test_results_are_caller_owned():
    graphs = GraphSet(eager_capture(torch, model_forward(), 11, "cpu"), 11, buckets=(4,))
    x = np.random.default_rng(1).normal(size=(2, 11, 12, 2)).astype(np.float32)
    first = graphs.run(x)
    kept = first.copy()
    graphs.run(np.zeros_like(x))
    assert np.array_equal(first, kept)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU (scripts/gpu_checks.py "
                                                           "runs this check on a GPU machine)")
def test_cuda_graph_replay_equals_eager_exactly():
    _, ckpt, _ = model_files()
    runtime = open_runtime(ckpt, "torch", "cuda")
    assert runtime.graphs is not None
    rng = np.random.default_rng(0)
    for b in (1, 3, 16, 100):
        bucket = bucket_plan(b)[0][2]
        x = np.zeros((bucket, runtime.window, 12, 2), np.float32)
        x[:b] = rng.normal(0.0, 0.5, (b, runtime.window, 12, 2))
        replayed = runtime.infer(x[:b])
        eager = runtime._eager(x)[:b]                    # the same padded batch, run eagerly
        assert np.array_equal(replayed, eager), np.abs(replayed - eager).max()
    assert set(runtime.describe()["cuda_graphs"]["captured"]) >= {1, 4, 16, 256}


def test_torch_runtime_routes_window_batches_through_the_graphs():
    """The runtime's own routing, with the eager stand-in in place of CUDA capture: window-length
    batches replay (buckets captured on first use), other lengths run eagerly, same numbers."""
    _, ckpt, _ = model_files()
    runtime = open_runtime(ckpt, "torch")
    plain = open_runtime(ckpt, "torch")
    runtime.graphs = GraphSet(eager_capture(torch, runtime._forward_scoped, runtime.window, "cpu"), runtime.window)
    rng = np.random.default_rng(2)
    for shape in ((3, runtime.window), (1, runtime.window), (2, 7), (20, runtime.window)):
        x = rng.normal(0.0, 0.5, (*shape, 12, 2)).astype(np.float32)
        np.testing.assert_allclose(runtime.infer(x), plain.infer(x), atol=5e-6, rtol=0)
    assert runtime.graphs.captured == (1, 4, 64)
    assert runtime.describe()["cuda_graphs"]["captured"] == [1, 4, 64]
