"""The model carries its front-end: from the feature files through training and export to spot-live,
the benchmarks' factory and `spot-extract --model`; a contradiction is refused with one line."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import free_tcp_endpoint
from mespot.cli.extract import main as spot_extract
from mespot.cli.live import main as spot_live
from mespot.cli.train import main as spot_train
from mespot.data.annotations import write_annotations
from mespot.engine.checkpoint import checkpoint_info
from mespot.engine.runtime import open_runtime
from mespot.engine.runtime.metadata import read_sidecar
from mespot.featurefile import FeatureFile, load_features, save_features
from mespot.stream import factory
from mespot.stream.frontconfig import FrontEndMismatch, build_frontend
from mespot.stream.frontend import FrontEnd
from test_train_loso import make_dataset

# Not the default front-end in three settings that change the features.
OTHER = {"head_motion": "translation", "crop_size": 96, "flow": "dis"}


@pytest.fixture(scope="module")
def other_frontend() -> dict:
    frontend = FrontEnd(30.0, **OTHER)
    try:
        return frontend.config()
    finally:
        frontend.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from mespot.bench.liveloop import render_bench_clip

    path, _ = render_bench_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", 40)
    return path


def _feature_dir(folder, extractors):
    """A training set of generated features whose files say which front-end made them."""
    videos, annotations = make_dataset(seed=3, subjects=2, videos=1, length=300)
    for v, extractor in zip(videos, extractors):
        t = len(v.features)
        save_features(folder / f"{v.video}.npz", FeatureFile(
            v.features, v.valid, np.arange(t) / v.fps, np.zeros((t, 12, 2), np.float32),
            {"fps": v.fps, "subject": v.subject, "extractor": extractor}))
    write_annotations(folder / "ann.csv", annotations.rows)
    return ["--features", str(folder), "--annotations", str(folder / "ann.csv"), "--config", "live"]


@pytest.fixture(scope="module")
def other_model(tmp_path_factory, other_frontend):
    """spot-train fit on features of the non-default front-end, then spot-export to ONNX."""
    from mespot.cli.export import main as spot_export

    folder = tmp_path_factory.mktemp("train")
    args = _feature_dir(folder, [other_frontend] * 2)
    assert spot_train(["fit", *args, "--epochs", "1", "-o", str(folder / "m.pt"), "--quiet"]) == 0
    assert spot_export(["--checkpoint", str(folder / "m.pt"), "-o", str(folder / "m.onnx")]) == 0
    return folder / "m.pt", folder / "m.onnx"


def test_training_and_export_carry_the_feature_files_front_end(other_model, other_frontend):
    checkpoint, onnx_path = other_model
    assert checkpoint_info(checkpoint)["frontend"] == other_frontend
    assert read_sidecar(onnx_path)["frontend"] == other_frontend
    assert open_runtime(onnx_path, "onnx").metadata["frontend"] == other_frontend     # inside the ONNX file


def test_spot_live_and_spot_extract_build_the_model_front_end(other_model, other_frontend, clip, tmp_path,
                                                              monkeypatch, capsys):
    built = []

    def spy(*args, **kwargs):
        frontend = build_frontend(*args, **kwargs)
        built.append(frontend.config())
        return frontend

    monkeypatch.setattr(factory, "build_frontend", spy)
    _, onnx_path = other_model
    assert spot_live(["--source", str(clip), "--model", str(onnx_path), "--no-ui", "--pub", free_tcp_endpoint()]) == 0
    assert built == [other_frontend]
    assert "clip: ended; 40 frames" in capsys.readouterr().out

    out = tmp_path / "clip.npz"
    assert spot_extract([str(clip), "-o", str(out), "--model", str(onnx_path), "--quiet"]) == 0
    assert json.loads(json.dumps(load_features(out).meta["extractor"])) == other_frontend


def test_a_model_without_a_front_end_gets_the_default_one():
    class Bare:
        metadata = {"fps": 30.0}          # what older files and the authors' checkpoints carry

    frontend = factory.model_frontend(Bare(), 30.0)
    default = FrontEnd(30.0)
    try:
        assert frontend.config() == default.config()
    finally:
        frontend.close()
        default.close()


def test_contradictions_are_refused_with_one_line(other_model, other_frontend, clip, tmp_path, capsys):
    _, onnx_path = other_model
    for argv, expected in (
            (["--head-motion", "similarity-no-g"], "--head-motion similarity-no-g contradicts the model's front-end "
                                                   "(head_motion translation)"),
            (["--crop-size", "128"], "--crop-size 128 contradicts the model's front-end (crop_size 96)"),
            (["--fps", "25"], "--fps 25 contradicts the model")):
        assert spot_extract([str(clip), "-o", str(tmp_path / "x.npz"), "--model", str(onnx_path), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and "\n" not in err, err
        assert not (tmp_path / "x.npz").exists()

    # A description this installation cannot rebuild exactly is refused, not approximated.
    meta = read_sidecar(onnx_path)
    odd = tmp_path / "odd.onnx"
    odd.write_bytes(onnx_path.read_bytes())
    from mespot.export.metadata import write_onnx_with_metadata
    import onnx

    meta["frontend"] = {**other_frontend, "flow": {"method": "dis", "preset": "medium"}}
    write_onnx_with_metadata(onnx.load(str(onnx_path)), odd, meta)
    assert spot_live(["--source", str(clip), "--model", str(odd), "--no-ui", "--pub", free_tcp_endpoint()]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spot-live: ") and "flow.preset: 'medium' vs 'fast'" in err and "\n" not in err, err
    with pytest.raises(FrontEndMismatch, match="--flow tvl1 contradicts"):
        build_frontend(other_frontend, fps=30.0, overrides={"flow": "tvl1"})


def test_training_on_features_of_two_front_ends_is_refused(other_frontend, tmp_path, capsys):
    default = FrontEnd(30.0)
    try:
        args = _feature_dir(tmp_path, [other_frontend, default.config()])
    finally:
        default.close()
    assert spot_train(["fit", *args, "--epochs", "1", "-o", str(tmp_path / "m.pt"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "were extracted with different front-ends (crop_size, head_motion, reflow_px, roi_radius differ)" in err
    assert "\n" not in err and not (tmp_path / "m.pt").exists()
