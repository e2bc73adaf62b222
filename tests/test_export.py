"""ONNX export: numerically the PyTorch model on any length, self-describing, and a CLI that says why it fails."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from engine_models import CONFIG, make_model, model_files
from mespot.cli.export import main as spot_export
from mespot.engine.runtime import open_runtime
from mespot.engine.runtime.metadata import METADATA_KEY, sidecar_path


@pytest.mark.parametrize("t", [1, 11, 12, 300, 1000])
def test_onnx_round_trip_any_length_and_batch(t):
    model, _, onnx_path = model_files()
    x = np.random.default_rng(t).normal(0.0, 1.0, (2, t, 12, 2)).astype(np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    assert np.abs(open_runtime(onnx_path).infer(x) - expected).max() <= 1e-4


def test_export_report_and_metadata(tmp_path):
    model = make_model(seed=4)
    from mespot.export.onnx import export_onnx

    report = export_onnx(model, tmp_path / "m.onnx", config=CONFIG, fps=25.0, window=16)
    assert report["max_abs_diff"] <= 1e-4 and {11, 300} <= set(report["diff_by_length"])
    graph = onnx.load(str(tmp_path / "m.onnx"))
    dims = [d.dim_param or d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and isinstance(dims[1], str) and dims[2:] == [12, 2]
    props = {p.key: p.value for p in graph.metadata_props}
    embedded = json.loads(props[METADATA_KEY])
    assert embedded == json.loads(sidecar_path(tmp_path / "m.onnx").read_text())
    assert embedded["fps"] == 25.0 and embedded["window"] == 16 and embedded["right_context"] == 5
    np.testing.assert_allclose(np.array(embedded["adjacency"]), model.adjacency, atol=1e-7)
    assert embedded["config"]["decoding"]["micro"]["start_range"] == list(CONFIG.micro.start_range)
    # torch's per-node notes (stack traces with this machine's paths) are not shipped
    data = (tmp_path / "m.onnx").read_bytes()
    assert b"pkg.torch.onnx" not in data and str(Path(__file__).resolve().parents[1]).encode() not in data


def test_export_refuses_a_wrong_graph(tmp_path, monkeypatch):
    """The parity check compares numbers: a graph from another model must fail it."""
    import mespot.export.onnx as exporter

    model = make_model(seed=1)
    other = make_model(seed=2)
    real = exporter._torch_to_onnx
    monkeypatch.setattr(exporter, "_torch_to_onnx", lambda m: real(other))
    with pytest.raises(exporter.ExportError, match="differs from PyTorch"):
        exporter.export_onnx(model, tmp_path / "wrong.onnx", config=CONFIG)


def test_cli_exports_a_checkpoint(tmp_path, capsys):
    _, ckpt, _ = model_files()
    out = tmp_path / "cli.onnx"
    assert spot_export(["--checkpoint", str(ckpt), "-o", str(out), "--window", "13", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["max_abs_diff"] <= 1e-4 and report["window"] == 13
    assert open_runtime(out).window == 13


@pytest.mark.parametrize("args, message", [
    (["--format", "tflite", "--checkpoint", "{ckpt}", "-o", "{out}"], "unknown format 'tflite'; valid: onnx, engine"),
    (["--fp16", "--checkpoint", "{ckpt}", "-o", "{out}"], "--fp16: only for --format engine"),
    (["--checkpoint", "{ckpt}", "-o", "x.onx"], "writes .onnx files"),
    (["--checkpoint", "absent.pt", "-o", "{out}"], "checkpoint not found"),
    (["--window", "10", "--checkpoint", "{ckpt}", "-o", "{out}"], "below 11"),
    (["--config", "nonexistent", "--checkpoint", "{ckpt}", "-o", "{out}"], "no config 'nonexistent'"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    _, ckpt, _ = model_files()
    argv = [a.format(ckpt=ckpt, out=tmp_path / "x.onnx") for a in args]
    assert spot_export(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()


def test_cli_unreadable_checkpoint_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert spot_export(["--checkpoint", str(bad), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "not a readable torch checkpoint" in capsys.readouterr().err


@pytest.mark.skipif(__import__("importlib").util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
def test_cli_engine_without_tensorrt_exits_2(tmp_path, capsys):
    _, ckpt, _ = model_files()
    assert spot_export(["--format", "engine", "--checkpoint", str(ckpt), "-o", str(tmp_path / "m.engine")]) == 2
    assert "needs the tensorrt package" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()       # refused before any work


def test_authors_checkpoint_exports_with_its_dataset_config(tmp_path):
    """The authors' files carry no config: the exporter takes the dataset whose prior they hold."""
    from mespot.engine.priors import prior_adjacency
    from mespot.export.onnx import export_onnx

    model = make_model(seed=3)
    model.gcn.adjacency.copy_(torch.from_numpy(prior_adjacency("samm")))
    ours_to_authors = {"gcn.weight": "graph_embedding.0.gc1.weight", "gcn.bias": "graph_embedding.0.gc1.bias",
                       "gcn.adjacency": "graph_embedding.0.gc1.adj", "gcn_bn.": "graph_embedding.0.bn1.",
                       "temporal.": "_sequential.", "head.weight": "_classification.weight"}
    state = {}
    for key, value in model.state_dict().items():
        for ours, theirs in ours_to_authors.items():
            if key == ours or (ours.endswith(".") and key.startswith(ours)):
                state[theirs + key[len(ours):] if ours.endswith(".") else theirs] = value
    torch.save({"epoch": 12, "state_dict": state}, tmp_path / "authors.pth")
    report = export_onnx(tmp_path / "authors.pth", tmp_path / "authors.onnx")
    assert report["max_abs_diff"] <= 1e-4
    meta = open_runtime(tmp_path / "authors.onnx").metadata
    assert meta["config"]["name"] == "samm" and meta["fps"] == 25.0
    assert meta["input_mean"] == pytest.approx([0.003463, 0.003873])
