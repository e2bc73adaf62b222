"""The AUW-GCN architecture: parameter count, shapes, receptive field, normalisation buffers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mespot.engine.model import AUWGCN, RIGHT_CONTEXT, count_parameters
from mespot.engine.priors import prior_adjacency


def test_parameter_count_matches_reference():
    model = AUWGCN()
    assert count_parameters(model) == 39_248
    per_module = {name: sum(p.numel() for p in m.parameters()) for name, m in model.named_children()}
    assert per_module == {"gcn": 32 + 16, "gcn_bn": 32, "temporal": 3 * 12_288 + 3 * 128, "head": 1_920}


@pytest.mark.parametrize("b,t", [(1, 11), (3, 270), (2, 64)])
def test_output_shape(b, t):
    model = AUWGCN().eval()
    out = model(torch.randn(b, t, 12, 2))
    assert out.shape == (b, 10, t)
    assert torch.isfinite(out).all()


def test_default_and_custom_adjacency():
    assert np.array_equal(AUWGCN().adjacency, prior_adjacency("casme2"))
    custom = np.eye(12, dtype=np.float32)
    assert np.array_equal(AUWGCN(adjacency=custom).adjacency, custom)
    with pytest.raises(ValueError, match="12, 12"):
        AUWGCN(adjacency=np.eye(11))


def test_receptive_field_is_five_each_side():
    """Changing input index 40 changes exactly outputs 35..45 (eval mode)."""
    torch.manual_seed(0)
    model = AUWGCN().eval()
    x = torch.randn(1, 81, 12, 2)
    y = x.clone()
    y[0, 40] += 3.0
    with torch.no_grad():
        diff = (model(x) - model(y)).abs().amax(dim=1)[0]
    changed = torch.nonzero(diff > 1e-6).flatten().tolist()
    assert changed == list(range(40 - RIGHT_CONTEXT, 40 + RIGHT_CONTEXT + 1))


def test_normalisation_buffers_apply_to_raw_features():
    torch.manual_seed(0)
    plain = AUWGCN().eval()
    shifted = AUWGCN(input_mean=(0.5, -1.0), input_std=(2.0, 4.0)).eval()
    shifted.load_state_dict({**plain.state_dict(), "input_mean": shifted.input_mean,
                             "input_std": shifted.input_std})
    x = torch.randn(2, 20, 12, 2)
    raw = x * torch.tensor([2.0, 4.0]) + torch.tensor([0.5, -1.0])
    with torch.no_grad():
        assert torch.allclose(plain(x), shifted(raw), atol=1e-5)
    assert {"input_mean", "input_std", "gcn.adjacency"} <= set(plain.state_dict())
