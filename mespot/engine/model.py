"""AUW-GCN (ICME 2023, arXiv 2303.09114), exactly the reference architecture (reference-model.md §4).

Input (B, T, 12, 2) raw ROI flow features; output (B, 10, T) logits. Channel meaning:
0-2 micro {start, end, none} (softmax), 3-5 macro {start, end, none}, 6 micro apex, 7 macro apex
(sigmoid), 8-9 micro/macro action (trained, unused at inference).

Unlike the reference, the input normalisation is part of the module (buffers `input_mean`,
`input_std`, per x/y channel), so a checkpoint or an ONNX file carries it and runtimes take raw
features. Parameters: 39,248, as the reference.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mespot.engine.priors import prior_adjacency

N_NODES = 12
NODE_DIM = 16
HIDDEN = 64
N_OUT = 10
RIGHT_CONTEXT = 5            # receptive field t-5..t+5 (reference-model.md §4)

# The reference's fixed normalisation (reference-model.md §2.4), used only for the authors' checkpoints.
REFERENCE_MEAN = (0.003463, 0.003873)
REFERENCE_STD = (0.548588, 0.645621)


class GraphConvolution(nn.Module):
    """H = A (X W) + b with a fixed adjacency A (not trained, no self-loops added)."""

    def __init__(self, adjacency: np.ndarray, in_dim: int = 2, out_dim: int = NODE_DIM) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(out_dim))
        self.register_buffer("adjacency", torch.as_tensor(np.asarray(adjacency, dtype=np.float32)))
        bound = 1.0 / out_dim ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # (N, 12, in) -> (N, 12, out)
        return torch.matmul(self.adjacency, torch.matmul(x, self.weight)) + self.bias


class AUWGCN(nn.Module):
    def __init__(self, adjacency: np.ndarray | None = None,
                 input_mean=(0.0, 0.0), input_std=(1.0, 1.0)) -> None:
        super().__init__()
        adj = prior_adjacency("casme2") if adjacency is None else np.asarray(adjacency, np.float32)
        if adj.shape != (N_NODES, N_NODES):
            raise ValueError(f"adjacency must be (12, 12), got {adj.shape}")
        self.register_buffer("input_mean", torch.tensor(input_mean, dtype=torch.float32))
        self.register_buffer("input_std", torch.tensor(input_std, dtype=torch.float32))
        self.gcn = GraphConvolution(adj)
        self.gcn_bn = nn.BatchNorm1d(NODE_DIM)
        self.temporal = nn.Sequential(
            nn.Conv1d(N_NODES * NODE_DIM, HIDDEN, 1, bias=False), nn.BatchNorm1d(HIDDEN), nn.ReLU(),
            nn.Conv1d(HIDDEN, HIDDEN, 3, padding=1, bias=False), nn.BatchNorm1d(HIDDEN), nn.ReLU(),
            nn.Conv1d(HIDDEN, HIDDEN, 3, padding=2, dilation=2, bias=False), nn.BatchNorm1d(HIDDEN), nn.ReLU(),
        )
        self.head = nn.Conv1d(HIDDEN, N_OUT, 3, padding=2, dilation=2, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight)

    @property
    def adjacency(self) -> np.ndarray:
        return self.gcn.adjacency.detach().cpu().numpy()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, t, n, c = features.shape
        x = (features - self.input_mean) / self.input_std
        x = self.gcn(x.reshape(b * t, n, c))                      # (B*T, 12, 16)
        x = self.gcn_bn(x.transpose(1, 2)).transpose(1, 2).relu()  # BN over the 16 features
        x = x.reshape(b, t, n * NODE_DIM).transpose(1, 2)          # node-major channels, (B, 192, T)
        return self.head(self.temporal(x))                         # (B, 10, T)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
