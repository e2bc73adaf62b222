"""Offline inference for training-time evaluation: whole valid runs through the torch model.

Each valid run goes through the model in one pass (its edges see the convolutions' zero padding,
exactly what the online engine reproduces); invalid indices get probability 1 for "none" and 0
elsewhere, so no proposal can be anchored there.
"""
from __future__ import annotations

import numpy as np
import torch

from mespot.config import Config
from mespot.data.videos import VideoFeatures
from mespot.engine.model import AUWGCN
from mespot.engine.probs import COL, PROB_COLUMNS, logits_to_probs
from mespot.eval.metrics import Prediction
from mespot.eval.proposals import decode_offline
from mespot.featurefile import valid_runs


def predict_probs(model: AUWGCN, features: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T, 12, 2) raw features and (T,) validity -> (T, 8) probabilities (PROB_COLUMNS order)."""
    probs = np.zeros((len(features), len(PROB_COLUMNS)), np.float32)
    probs[:, [COL["micro_none"], COL["macro_none"]]] = 1.0
    model.eval()
    with torch.no_grad():
        for lo, hi in valid_runs(valid):
            x = torch.from_numpy(np.ascontiguousarray(features[lo:hi], dtype=np.float32))[None]
            probs[lo:hi] = logits_to_probs(model(x)[0].numpy())
    return probs


def predict_videos(model: AUWGCN, videos: list[VideoFeatures], config: Config) -> list[Prediction]:
    """Offline decoding (mespot.eval.proposals.decode_offline) of every video, as predictions."""
    out = []
    for v in videos:
        probs = predict_probs(model, v.features, v.valid)
        out.extend(Prediction.from_interval(v.video, i) for i in decode_offline(probs, config, v.valid))
    return out
