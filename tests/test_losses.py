"""The reference's losses on hand-computed values (reference-model.md §5)."""
from __future__ import annotations

import math

import pytest
import torch

from mespot.train.losses import (binary_focal_loss, kind_losses, start_end_focal_loss, total_loss)

EPS = 1e-5


def test_binary_focal_loss_hand_values():
    logits = torch.tensor([[0.0, math.log(3.0), 0.0]])          # p = 0.5, 0.75, 0.5
    target = torch.tensor([[1.0, 0.0, 0.5]])
    pos_hard = 0.9 * 0.5 * math.log(0.5 + EPS)
    neg = 0.1 * abs(0.16 - 0.75) * math.log(0.25 + EPS)          # negatives aim at 0.16
    pos_soft = 0.9 * abs(0.5 - 0.5) * math.log(0.5 + EPS)         # soft apex target 0.5: weight |y-p| = 0
    expected = -(pos_hard + neg + pos_soft) / 3
    got = binary_focal_loss(logits, target, 0.9)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_binary_focal_loss_weight_masks_indices():
    logits = torch.tensor([[0.0, 5.0]])
    target = torch.tensor([[1.0, 0.0]])
    only_first = binary_focal_loss(logits, target, 0.8, weight=torch.tensor([[1.0, 0.0]]))
    assert float(only_first) == pytest.approx(-0.8 * 0.5 * math.log(0.5 + EPS), rel=1e-6)


def test_start_end_focal_loss_hand_values():
    logits = torch.zeros(1, 3, 3)                                 # p = 1/3 for every class
    logits[0, :, 2] = torch.tensor([0.0, 0.0, math.log(2.0)])     # p_none = 0.5 at index 2
    target = torch.tensor([[0, 1, 2]])
    expected = (0.45 * (2 / 3) * math.log(3) * 2 + 0.1 * 0.5 * math.log(2)) / 3
    assert float(start_end_focal_loss(logits, target)) == pytest.approx(expected, rel=1e-6)


def test_start_end_loss_is_finite_where_softmax_underflows():
    logits = torch.tensor([[[-200.0], [0.0], [0.0]]])
    loss = start_end_focal_loss(logits, torch.tensor([[0]]))
    assert torch.isfinite(loss) and float(loss) == pytest.approx(0.45 * (200 + math.log(2)), rel=1e-4)


def test_class_weights_follow_the_target_device():
    """FIX (reference-model.md §10.2): no CPU table indexed by a tensor on another device (meta stands in for GPU)."""
    logits = torch.zeros(2, 3, 5, device="meta")
    target = torch.zeros(2, 5, dtype=torch.long, device="meta")
    assert start_end_focal_loss(logits, target).device.type == "meta"


def test_total_loss_weights_components():
    torch.manual_seed(0)
    logits = torch.randn(2, 10, 16)
    start_end = torch.randint(0, 3, (2, 2, 16))
    apex = torch.rand(2, 2, 16) * (torch.rand(2, 2, 16) > 0.7)
    action = (torch.rand(2, 2, 16) > 0.5).float()
    loss, parts = total_loss(logits, start_end, apex, action, macro_weight=0.7)
    expected = (1.8 * parts["micro_apex"] + parts["micro_start_end"] + 0.1 * parts["micro_action"]
                + 0.7 * (parts["macro_apex"] + parts["macro_start_end"] + 0.1 * parts["macro_action"]))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # components read the right channels: micro start/end from 0..2 with target row 0
    micro = kind_losses(logits, start_end, apex, action, "micro")
    assert float(micro["start_end"]) == pytest.approx(
        float(start_end_focal_loss(logits[:, 0:3], start_end[:, 0])), rel=1e-6)
    macro = kind_losses(logits, start_end, apex, action, "macro")
    assert float(macro["apex"]) == pytest.approx(float(binary_focal_loss(logits[:, 7], apex[:, 1], 0.9)), rel=1e-6)


def test_loss_gradient_pushes_towards_targets():
    logits = torch.zeros(1, 10, 4, requires_grad=True)
    start_end = torch.tensor([[[0, 2, 2, 1], [2, 2, 2, 2]]])
    apex = torch.tensor([[[0.0, 1.0, 0.0, 0.0], [0.0] * 4]])
    action = torch.tensor([[[1.0, 1.0, 1.0, 1.0], [0.0] * 4]])
    loss, _ = total_loss(logits, start_end, apex, action, macro_weight=0.5)
    loss.backward()
    g = logits.grad[0]
    assert g[0, 0] < 0 and g[1, 3] < 0 and g[2, 1] < 0     # raise start at 0, end at 3, none at 1
    assert g[6, 1] < 0 and g[6, 0] > 0                      # raise micro apex at 1, lower elsewhere
