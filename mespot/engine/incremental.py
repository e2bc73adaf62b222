"""AUW-GCN evaluated incrementally for many streams: each layer's newest column from cached ones.

The window engines recompute an 11-index window for every arriving feature although only one
column of each layer is new. Here each stream keeps the last 8 columns of the three hidden layers;
a step computes, for every stream at once (numpy matrix products over the streams):

  h1[p]   = the per-index part (normalisation, graph convolution, batch norm, ReLU, 1x1 conv,
            batch norm, ReLU) of the new feature at run position p;
  h2[p-1] = conv k3 (dilation 1) of h1[p-2..p];   h3[p-3] = conv k3 (dilation 2) of h2[p-5, p-3, p-1];
  logits[p-5] = head conv k3 (dilation 2) of h3[p-7, p-5, p-3],

reading zeros outside the run, which is exactly the zero padding an offline pass over the run
gives every convolution's input. A run's end computes the remaining columns with zeros to its right.
About 43,000 multiply-adds a stream a step instead of about 470,000 for an 11-index window.

Batch norms (eval mode) and the input normalisation are folded into the matrices, so the sums are
ordered differently from ONNX Runtime's: results equal offline to 1e-5 (tested), not bitwise.
Needs the model's weights (from a torch AUWGCN, `IncrementalWeights.from_model`); running needs numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mespot.engine.multistream import Rows, StreamTable, _empty_rows
from mespot.engine.probs import logit_rows_to_probs
from mespot.engine.runtime.base import N_ROIS

HISTORY = 8          # columns kept per layer: enough for every tap (the oldest read is p-7 of h3)
RIGHT_CONTEXT = 5
TAPS = {"conv1": 1, "conv2": 2, "head": 2}      # dilation of each k=3 convolution


@dataclass(frozen=True)
class IncrementalWeights:
    """Folded float32 matrices; each k=3 convolution's three taps stacked (oldest tap first)."""

    gcn: np.ndarray          # (24, 192): raw features (node, x/y) -> node-major 16-feature blocks
    gcn_bias: np.ndarray     # (192,)
    conv0: np.ndarray        # (192, 64)
    conv0_bias: np.ndarray
    conv1: np.ndarray        # (192, 64)
    conv1_bias: np.ndarray
    conv2: np.ndarray        # (192, 64)
    conv2_bias: np.ndarray
    head: np.ndarray         # (192, 10)

    @classmethod
    def from_model(cls, model) -> "IncrementalWeights":
        """From a mespot AUWGCN (torch), in eval mode."""
        import torch

        def np64(t):
            return t.detach().cpu().to(torch.float64).numpy()

        def bn(m):
            scale = np64(m.weight) / np.sqrt(np64(m.running_var) + m.eps)
            return scale, np64(m.bias) - np64(m.running_mean) * scale

        conv0, bn0, _, conv1, bn1, _, conv2, bn2, _ = model.temporal
        for conv, dilation in ((conv1, TAPS["conv1"]), (conv2, TAPS["conv2"]), (model.head, TAPS["head"])):
            if conv.kernel_size != (3,) or conv.dilation != (dilation,) or conv.padding != (dilation,):
                raise ValueError(f"unexpected convolution {conv}: not the AUW-GCN this evaluator implements")
        mean, std = np64(model.input_mean), np64(model.input_std)
        adj, w, b = np64(model.gcn.adjacency), np64(model.gcn.weight), np64(model.gcn.bias)
        s, t = bn(model.gcn_bn)
        # y[i,f] = sum_{j,c} x[j,c] A[i,j] W[c,f] s[f] / std[c] + bias[i,f]
        gcn = np.einsum("ij,cf,f,c->jcif", adj, w, s, 1.0 / std).reshape(N_ROIS * 2, -1)
        shift = np.einsum("ij,c,cf,f->if", adj, mean / std, w, s)
        gcn_bias = (-shift + (b * s + t)[None, :]).reshape(-1)

        def folded(conv, norm):
            weight = np64(conv.weight)                     # (out, in, k)
            if norm is None:
                scale, shift = np.ones(weight.shape[0]), None
            else:
                scale, shift = bn(norm)
            stacked = np.concatenate([(weight[:, :, k] * scale[:, None]).T for k in range(weight.shape[2])])
            return stacked.astype(np.float32), (None if shift is None else shift.astype(np.float32))

        c0, c0b = folded(conv0, bn0)
        c1, c1b = folded(conv1, bn1)
        c2, c2b = folded(conv2, bn2)
        head, _ = folded(model.head, None)
        return cls(gcn.astype(np.float32), gcn_bias.astype(np.float32), c0, c0b, c1, c1b, c2, c2b, head)


class IncrementalEngine(StreamTable):
    """MultiStreamEngine's contract (join, push, flush, leave -> Rows), evaluated incrementally."""

    def __init__(self, weights: IncrementalWeights, *, capacity: int = 16) -> None:
        self.weights = weights
        self.hidden = weights.conv0.shape[1]
        super().__init__(RIGHT_CONTEXT, capacity)

    def _new_state(self, capacity: int) -> dict[str, np.ndarray]:
        return {name: np.zeros((capacity, HISTORY, self.hidden), np.float32) for name in ("h1", "h2", "h3")}

    def _tap(self, layer: str, s: np.ndarray, q: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Column q of `layer` per stream, zero outside 0..last (the offline zero padding)."""
        cols = self._state[layer].reshape(-1, self.hidden)[s * HISTORY + q % HISTORY]
        outside = (q < 0) | (q > last)
        if outside.any():
            cols[outside] = 0.0
        return cols

    def _conv(self, layer: str, s, q, last, weight, bias, dilation, newest=None) -> np.ndarray:
        """Column q of the k=3 convolution over `layer` (newest: its column q+dilation, if at hand)."""
        right = self._tap(layer, s, q + dilation, last) if newest is None else newest
        x = np.concatenate([self._tap(layer, s, q - dilation, last), self._tap(layer, s, q, last), right], axis=1)
        y = x @ weight
        if bias is None:
            return y
        y += bias
        return np.maximum(y, 0.0, out=y)

    def _put(self, layer: str, s, q, columns) -> None:
        self._state[layer].reshape(-1, self.hidden)[s * HISTORY + q % HISTORY] = columns

    def _store(self, s: np.ndarray, features: np.ndarray) -> None:
        w = self.weights
        p = self._count[s]
        y = features.reshape(len(s), N_ROIS * 2) @ w.gcn
        y += w.gcn_bias
        np.maximum(y, 0.0, out=y)
        h1 = y @ w.conv0
        h1 += w.conv0_bias
        np.maximum(h1, 0.0, out=h1)
        self._put("h1", s, p, h1)
        k = p >= 1                                      # h2 at p-1, whose right tap is h1[p]
        if not k.all():
            s, p, h1 = s[k], p[k], h1[k]
        if len(s):
            h2 = self._conv("h1", s, p - 1, p, w.conv1, w.conv1_bias, 1, newest=h1)
            self._put("h2", s, p - 1, h2)
            k = p >= 3                                  # h3 at p-3, whose right tap is h2[p-1]
            if not k.all():
                s, p, h2 = s[k], p[k], h2[k]
            if len(s):
                self._put("h3", s, p - 3, self._conv("h2", s, p - 3, p - 1, w.conv2, w.conv2_bias, 2, newest=h2))

    def _rows(self, s, q, last, index, pos) -> tuple[Rows, np.ndarray]:
        logits = self._conv("h3", s, q, last, self.weights.head, None, 2)
        return Rows(s, index, logit_rows_to_probs(logits)), pos

    def _emit_steps(self, s: np.ndarray, pos: np.ndarray) -> tuple[Rows, np.ndarray]:
        if len(s) == 0:
            return _empty_rows()
        p = self._count[s] - 1
        return self._rows(s, p - RIGHT_CONTEXT, p - 3, self._last_valid[s] - RIGHT_CONTEXT, pos)

    def _emit_ends(self, s: np.ndarray, pos: np.ndarray) -> tuple[Rows, np.ndarray]:
        w = self.weights
        last = self._count[s] - 1
        self._put("h2", s, last, self._conv("h1", s, last, last, w.conv1, w.conv1_bias, 1))
        for back in (2, 1, 0):                          # h3 at last-2..last (computed so far: up to last-3)
            q = last - back
            k = q >= 0
            self._put("h3", s[k], q[k], self._conv("h2", s[k], q[k], last[k], w.conv2, w.conv2_bias, 2))
        n = np.minimum(self._count[s], RIGHT_CONTEXT)
        row = np.repeat(np.arange(len(s)), n)
        back = np.repeat(np.cumsum(n), n) - 1 - np.arange(len(row))        # n-1 .. 0 within a stream
        return self._rows(s[row], last[row] - back, last[row], self._last_valid[s][row] - back, pos[row])
