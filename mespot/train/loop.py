"""The training loop (reference-model.md §5): AdamW with decay on conv and GCN weights only, ExponentialLR per epoch.

CPU is enough for this 39 K-parameter model; everything runs in the calling thread. The input
normalisation is computed by the caller from the training features and lives in the model buffers.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from mespot.config import TrainConfig
from mespot.engine.model import AUWGCN, GraphConvolution
from mespot.train.augment import augment_windows
from mespot.train.losses import total_loss
from mespot.train.targets import Segments


@dataclass
class EpochStats:
    """One finished epoch: mean training loss over batches, its components, the lr it used."""

    epoch: int
    loss: float
    components: dict[str, float] = field(default_factory=dict)
    lr: float = 0.0
    seconds: float = 0.0


EpochCallback = Callable[[int, AUWGCN, EpochStats], None]


def parameter_groups(model: AUWGCN, weight_decay: float) -> list[dict]:
    """Weight decay on Conv1d weights and the GCN weight; none on biases and BatchNorm (reference-model.md §5)."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            is_weight = name == "weight" and isinstance(module, (nn.Conv1d, GraphConvolution))
            (decay if is_weight else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_model(train: TrainConfig, *, adjacency: np.ndarray, input_mean: tuple[float, float],
               input_std: tuple[float, float]) -> AUWGCN:
    """The freshly initialised model `train_model` starts from (seeded by train.seed)."""
    torch.manual_seed(train.seed)
    return AUWGCN(adjacency=adjacency, input_mean=input_mean, input_std=input_std)


def train_model(segments: Segments, train: TrainConfig, *, adjacency: np.ndarray,
                input_mean: tuple[float, float], input_std: tuple[float, float],
                macro_weight: float | None = None, epochs: int | None = None,
                on_epoch: EpochCallback | None = None, fps: float = 30.0) -> AUWGCN:
    """Train a fresh AUWGCN on `segments` for `epochs` (default train.epochs); returns it in eval mode.

    `on_epoch(epoch, model, stats)` runs after each epoch (0-based) with the model in eval mode;
    the model goes back to training mode afterwards. Seeded by train.seed (init and shuffling).
    With train.augment every batch's input is changed anew (mespot.train.augment) from its own
    random stream, so the shuffling order is the same with and without it; `fps` (the features'
    frame rate) times the added blinks.
    """
    if len(segments) == 0:
        raise ValueError("no training segments: no annotated expression inside the training videos "
                         "(or set train.use_neutral_segments)")
    epochs = train.epochs if epochs is None else int(epochs)
    macro_weight = train.macro_weight if macro_weight is None else macro_weight
    model = make_model(train, adjacency=adjacency, input_mean=input_mean, input_std=input_std)
    rng = np.random.default_rng(train.seed)
    augment_rng = np.random.default_rng([train.seed, 1]) if train.augment else None
    optimiser = torch.optim.AdamW(parameter_groups(model, train.weight_decay), lr=train.lr,
                                  betas=(0.9, 0.999), eps=1e-8)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=train.lr_gamma)
    features = torch.from_numpy(segments.features)
    start_end = torch.from_numpy(segments.start_end)
    apex = torch.from_numpy(segments.apex)
    action = torch.from_numpy(segments.action)
    weight = torch.from_numpy(segments.weight)
    c, length = train.context, segments.start_end.shape[-1]
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        lr = optimiser.param_groups[0]["lr"]
        order = torch.from_numpy(rng.permutation(len(segments)))
        losses, parts = [], []
        for batch in order.split(train.batch_size):
            x = features[batch]
            if augment_rng is not None:
                x = torch.from_numpy(augment_windows(x.numpy(), augment_rng, scale=train.augment_scale,
                                                     noise=train.augment_noise,
                                                     node_gain=train.augment_node_gain,
                                                     rotate_deg=train.augment_rotate_deg,
                                                     blink_rate=train.augment_blink_rate,
                                                     blink_px=train.augment_blink_px, fps=fps))
            logits = model(x)[:, :, c: c + length]
            loss, components = total_loss(logits, start_end[batch], apex[batch], action[batch],
                                          macro_weight, weight[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            parts.append(components)
        schedule.step()
        stats = EpochStats(epoch, float(np.mean(losses)),
                           {k: float(np.mean([p[k] for p in parts])) for k in parts[0]},
                           lr, time.perf_counter() - t0)
        model.eval()
        if on_epoch is not None:
            on_epoch(epoch, model, stats)
    return model.eval()
