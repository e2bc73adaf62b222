"""Checkpoints: the authors' format against an independent numpy forward pass, and our round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mespot.config import load_config
from mespot.engine.checkpoint import checkpoint_info, load_checkpoint, save_checkpoint
from mespot.engine.model import REFERENCE_MEAN, REFERENCE_STD, AUWGCN, count_parameters
from mespot.engine.priors import prior_adjacency

EPS = 1e-5


def _bn_params(rng, n):
    return {"weight": rng.uniform(0.5, 1.5, n), "bias": rng.normal(0, 0.2, n),
            "running_mean": rng.normal(0, 0.3, n), "running_var": rng.uniform(0.5, 2.0, n)}


def _authors_state(seed: int = 0, adjacency=None) -> dict[str, np.ndarray]:
    """Random weights under the reference's module names (reference-model.md §4), float64 numpy."""
    rng = np.random.default_rng(seed)
    s = {"graph_embedding.0.gc1.weight": rng.uniform(-0.25, 0.25, (2, 16)),
         "graph_embedding.0.gc1.bias": rng.uniform(-0.25, 0.25, 16),
         "graph_embedding.0.gc1.adj": prior_adjacency("samm") if adjacency is None else adjacency}
    for k, v in _bn_params(rng, 16).items():
        s[f"graph_embedding.0.bn1.{k}"] = v
    for conv, (c_in, k) in zip((0, 3, 6), ((192, 1), (64, 3), (64, 3))):
        s[f"_sequential.{conv}.weight"] = rng.normal(0, np.sqrt(2 / (c_in * k)), (64, c_in, k))
        for name, v in _bn_params(rng, 64).items():
            s[f"_sequential.{conv + 1}.{name}"] = v
    s["_classification.weight"] = rng.normal(0, np.sqrt(2 / (64 * 3)), (10, 64, 3))
    return s


def _to_torch(state, prefix=""):
    out = {prefix + k: torch.tensor(np.asarray(v), dtype=torch.float32) for k, v in state.items()}
    for k in list(out):
        if k.endswith("running_var"):
            out[k[: -len("running_var")] + "num_batches_tracked"] = torch.tensor(7)
    return out


def _conv1d(x, w, pad, dil):
    """x (C_in, T), w (C_out, C_in, K): zero-padded dilated cross-correlation, output (C_out, T)."""
    t = x.shape[1]
    xp = np.pad(x, ((0, 0), (pad, pad)))
    return sum(w[:, :, k] @ xp[:, k * dil: k * dil + t] for k in range(w.shape[2]))


def _bn(x, s, prefix, axis):
    shape = [1] * x.ndim
    shape[axis] = -1
    g = lambda n: np.asarray(s[prefix + n]).reshape(shape)   # noqa: E731
    return (x - g("running_mean")) / np.sqrt(g("running_var") + EPS) * g("weight") + g("bias")


def _reference_forward(s, features):
    """reference-model.md §4 in plain numpy for one sequence (T, 12, 2) -> logits (10, T)."""
    x = (features - np.array(REFERENCE_MEAN)) / np.array(REFERENCE_STD)
    h = s["graph_embedding.0.gc1.adj"] @ (x @ s["graph_embedding.0.gc1.weight"]) + s["graph_embedding.0.gc1.bias"]
    h = np.maximum(_bn(h, s, "graph_embedding.0.bn1.", axis=2), 0)      # (T, 12, 16)
    h = h.reshape(len(features), 192).T                                   # channel = node*16 + k
    for conv, pad, dil in ((0, 0, 1), (3, 1, 1), (6, 2, 2)):
        h = _conv1d(h, s[f"_sequential.{conv}.weight"], pad, dil)
        h = np.maximum(_bn(h, s, f"_sequential.{conv + 1}.", axis=0), 0)
    return _conv1d(h, s["_classification.weight"], 2, 2)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_authors_checkpoint_matches_functional_reference(tmp_path, prefix):
    state = _authors_state(seed=3)
    path = tmp_path / "checkpoint_epoch_047.pth.tar"
    torch.save({"epoch": 47, "state_dict": _to_torch(state, prefix)}, path)

    model = load_checkpoint(path)
    assert not model.training
    assert count_parameters(model) == 39_248
    np.testing.assert_allclose(model.adjacency, prior_adjacency("samm"), atol=1e-7)

    rng = np.random.default_rng(1)
    features = rng.normal(0, 0.5, (2, 270, 12, 2))
    with torch.no_grad():
        got = model(torch.tensor(features, dtype=torch.float32)).numpy()
    assert got.shape == (2, 10, 270)
    for b in range(2):
        np.testing.assert_allclose(got[b], _reference_forward(state, features[b]), rtol=1e-5, atol=1e-5)

    info = checkpoint_info(path)
    assert info["format"] == "authors" and info["epoch"] == 47 and info["fps"] is None
    assert info["input_mean"] == REFERENCE_MEAN and info["input_std"] == REFERENCE_STD


def test_functional_reference_is_sensitive_to_the_checkpoint(tmp_path):
    """Guard against a vacuous comparison: a different seed gives clearly different logits."""
    features = np.random.default_rng(1).normal(0, 0.5, (40, 12, 2))
    a = _reference_forward(_authors_state(seed=3), features)
    b = _reference_forward(_authors_state(seed=4), features)
    assert np.abs(a - b).max() > 0.1


def test_own_checkpoint_round_trip(tmp_path):
    torch.manual_seed(5)
    cfg = load_config("samm")
    model = AUWGCN(adjacency=prior_adjacency("samm"), input_mean=(0.01, -0.02), input_std=(0.3, 0.4))
    model.train()
    with torch.no_grad():   # move BN running statistics away from their defaults
        model(torch.randn(4, 30, 12, 2))
    model.eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, config=cfg, fps=25.0, epoch=12, extra={"note": "test"})

    loaded = load_checkpoint(path)
    x = torch.randn(1, 50, 12, 2)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    info = checkpoint_info(path)
    assert info["format"] == "mespot" and info["fps"] == 25.0 and info["epoch"] == 12
    assert info["config"] == cfg
    assert info["input_mean"] == pytest.approx((0.01, -0.02)) and info["input_std"] == pytest.approx((0.3, 0.4))
    np.testing.assert_array_equal(info["adjacency"], prior_adjacency("samm"))
    assert info["extra"] == {"note": "test"}


def test_unknown_file_names_missing_keys(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"epoch": 1, "state_dict": {"_sequential.0.weight": torch.zeros(64, 192, 1)}}, path)
    with pytest.raises(ValueError, match="graph_embedding.0.gc1.weight") as err:
        load_checkpoint(path)
    assert "input_mean" in str(err.value)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="expected a dict"):
        checkpoint_info(tmp_path / "list.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
