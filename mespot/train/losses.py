"""The reference's losses (reference-model.md §5): a binary focal-like loss, a 3-class focal loss, their weighted sum.

All take logits and targets over (B, L) indices and average over the indices whose weight is 1
(with no weight: over all B*L, as the reference). Constants are the reference's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from mespot.train.targets import KIND_ROW

APEX_ALPHA, ACTION_ALPHA, START_END_ALPHA = 0.90, 0.80, 0.90
GAMMA = 1.0
LABEL_SMOOTH = 0.16           # binary losses only: negatives are pushed towards p = 0.16, not 0
BINARY_EPS = 1e-5             # inside the binary losses' logs, as the reference
APEX_WEIGHT, START_END_WEIGHT, ACTION_WEIGHT = 1.8, 1.0, 0.1   # micro terms; macro apex weight is 1.0

# Model output channels (mespot.engine.model): kind -> (start/end/none slice, apex, action).
CHANNELS = {"micro": (slice(0, 3), 6, 8), "macro": (slice(3, 6), 7, 9)}


def _masked_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return values.mean()
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def binary_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float, *, gamma: float = GAMMA,
                      label_smooth: float = LABEL_SMOOTH, weight: torch.Tensor | None = None) -> torch.Tensor:
    """-mean[m a |y-p|^g log(p+eps) + (1-m)(1-a) |y+ls-p|^g log(1-p+eps)], p = sigmoid, m = [y > 0].

    Soft positives (the apex Gaussian) count as positives with weight |y - p|.
    """
    p = torch.sigmoid(logits)
    positive = (target > 0).to(p.dtype)
    pos = alpha * (target - p).abs() ** gamma * torch.log(p + BINARY_EPS)
    neg = (1 - alpha) * (target + label_smooth - p).abs() ** gamma * torch.log(1 - p + BINARY_EPS)
    return -_masked_mean(positive * pos + (1 - positive) * neg, weight)


def start_end_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = START_END_ALPHA, *,
                         gamma: float = GAMMA, weight: torch.Tensor | None = None) -> torch.Tensor:
    """3-class focal loss: logits (B, 3, L), target (B, L) in {0 start, 1 end, 2 none}.

    Per index -w_c (1 - p_c)^g log p_c with class weights w = [a/2, a/2, 1-a]. log p comes from
    log_softmax (the reference takes log of the softmax: the same value, without its underflow).
    """
    # FIX (reference-model.md §10.2): the class-weight table is created on the target's device before indexing.
    class_weight = torch.tensor([alpha / 2, alpha / 2, 1 - alpha], dtype=logits.dtype, device=target.device)
    log_p = F.log_softmax(logits, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
    per_index = -class_weight[target] * (1 - log_p.exp()) ** gamma * log_p
    return _masked_mean(per_index, weight)


def kind_losses(logits: torch.Tensor, start_end: torch.Tensor, apex: torch.Tensor, action: torch.Tensor,
                kind: str, weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The three losses of one kind. logits (B, 10, L); start_end, apex, action (B, 2, L)."""
    se_slice, apex_ch, action_ch = CHANNELS[kind]
    row = KIND_ROW[kind]
    return {
        "apex": binary_focal_loss(logits[:, apex_ch], apex[:, row], APEX_ALPHA, weight=weight),
        "start_end": start_end_focal_loss(logits[:, se_slice], start_end[:, row], weight=weight),
        "action": binary_focal_loss(logits[:, action_ch], action[:, row], ACTION_ALPHA, weight=weight),
    }


def total_loss(logits: torch.Tensor, start_end: torch.Tensor, apex: torch.Tensor, action: torch.Tensor,
               macro_weight: float, weight: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """L = 1.8 apex_mi + se_mi + 0.1 act_mi + r (apex_ma + se_ma + 0.1 act_ma), r = macro_weight.

    Returns the loss and its six components (floats, for loss curves), keyed `micro_apex` etc.
    """
    parts = {kind: kind_losses(logits, start_end, apex, action, kind, weight) for kind in ("micro", "macro")}
    micro, macro = parts["micro"], parts["macro"]
    loss = (APEX_WEIGHT * micro["apex"] + START_END_WEIGHT * micro["start_end"] + ACTION_WEIGHT * micro["action"]
            + macro_weight * (macro["apex"] + START_END_WEIGHT * macro["start_end"]
                              + ACTION_WEIGHT * macro["action"]))
    components = {f"{kind}_{name}": float(v.detach()) for kind, d in parts.items() for name, v in d.items()}
    return loss, components
