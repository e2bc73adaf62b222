"""The incremental many-stream engine: each layer's new column from cached ones, equal to offline
within 1e-5 whatever the streams do (not bitwise: batch norms are folded into the matrices)."""
from __future__ import annotations

import numpy as np
import pytest

from engine_models import model_files
from mespot.engine.incremental import IncrementalEngine, IncrementalWeights
from mespot.engine.online import offline_probs
from mespot.engine.runtime import open_runtime
from test_multistream import random_scenario


@pytest.fixture(scope="module")
def weights():
    return IncrementalWeights.from_model(model_files()[0])


@pytest.mark.parametrize("seed", range(3))
def test_random_lives_equal_window_engine_within_1e_5(weights, seed):
    onnx = open_runtime(model_files()[2])
    engine = IncrementalEngine(weights, capacity=2)
    assert random_scenario(onnx, seed, n_logical=9, steps=120, atol=1e-5, multi=engine) > 300


def test_equals_offline_per_stream(weights):
    onnx = open_runtime(model_files()[2])
    rng = np.random.default_rng(8)
    n, t = 7, 70
    features = rng.normal(0.0, 0.5, (n, t, 12, 2)).astype(np.float32)
    valid = rng.random((n, t)) > 0.12
    valid[3, :] = True
    valid[4, 5:] = False                                    # a short run, then nothing
    engine = IncrementalEngine(weights)
    slots = engine.join(n)
    table = np.full((n, t, 8), np.nan, np.float32)
    for i in range(t):
        rows = engine.push(slots, np.full(n, i), features[:, i], valid[:, i])
        table[rows.stream, rows.index] = rows.probs
    rows = engine.leave(slots)
    table[rows.stream, rows.index] = rows.probs
    worst = 0.0
    for k in range(n):
        expected = offline_probs(onnx, features[k], valid[k])
        assert np.array_equal(np.isnan(table[k]), np.isnan(expected))
        worst = max(worst, float(np.nanmax(np.abs(table[k] - expected))))
    assert 0.0 < worst <= 1e-5


def test_not_an_auwgcn_is_refused():
    model = model_files()[0]
    import copy

    import torch
    odd = copy.deepcopy(model)
    odd.head = torch.nn.Conv1d(64, 10, 3, padding=1, bias=False)
    with pytest.raises(ValueError, match="unexpected convolution"):
        IncrementalWeights.from_model(odd)
