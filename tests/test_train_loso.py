"""LOSO on a small generated feature set learns; resume, selection and `spot-train` behave."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from mespot.config import load_config
from mespot.data.adjacency import build_adjacency
from mespot.data.annotations import Annotation, AnnotationSet, write_annotations
from mespot.data.videos import VideoFeatures
from mespot.engine.checkpoint import checkpoint_info, load_checkpoint
from mespot.engine.model import AUWGCN
from mespot.engine.priors import prior_adjacency
from mespot.engine.probs import logits_to_probs
from mespot.featurefile import FeatureFile, save_features
from mespot.train import loso
from mespot.train.inference import predict_probs
from mespot.train.loso import Selection, run_loso
from mespot.train.results import RunDirError, oracle_epoch

from mespot.cli.train import main as spot_train

BROWS, MOUTH_CORNERS = [0, 1, 2, 3, 4, 5], [8, 10]


def _plant(feats, start, apex, end, amplitude, nodes, axis, signs):
    """Add a smooth onset-apex-offset motion: flow out until the apex, back to rest by the end."""
    t = np.arange(start, end + 1)
    rise = amplitude * np.sin(np.pi * (t - start) / (apex - start))
    fall = -amplitude * (apex - start) / (end - apex) * np.sin(np.pi * (t - apex) / (end - apex))
    flow = np.where(t <= apex, rise, fall)
    for node, sign in zip(nodes, signs):
        feats[start:end + 1, node, axis] += sign * flow


def make_video(rng, subject, video, length=600, n_macro=2, n_micro=2):
    """Noise plus planted macro (mouth corners, long, large) and micro (brows, short, small) moves."""
    feats = rng.normal(0, 0.12, (length, 12, 2)).astype(np.float32)
    valid = np.ones(length, bool)
    valid[0] = False                                   # the first feature of a track has no flow
    kinds = ["macro"] * n_macro + ["micro"] * n_micro
    rng.shuffle(kinds)
    slot = (length - 40) // len(kinds)
    rows = []
    for i, kind in enumerate(kinds):
        if kind == "macro":
            dur, amp, nodes, axis, signs = int(rng.integers(26, 40)), rng.uniform(0.5, 0.8), MOUTH_CORNERS, 0, (-1, 1)
        else:
            dur, amp, nodes, axis, signs = int(rng.integers(8, 12)), rng.uniform(0.2, 0.3), BROWS, 1, (-1,) * 6
        start = 20 + i * slot + int(rng.integers(0, slot - dur - 5))
        end = start + dur
        apex = start + int(round(dur * rng.uniform(0.4, 0.6)))
        _plant(feats, start, apex, end, amp, nodes, axis, signs)
        rows.append(Annotation(subject, video, start, apex, end, kind, "12" if kind == "macro" else "1+2"))
    return VideoFeatures(video, subject, feats, valid, 30.0), rows


def make_dataset(seed=0, subjects=4, videos=2, length=600):
    rng = np.random.default_rng(seed)
    out, rows = [], []
    for s in range(1, subjects + 1):
        for v in range(1, videos + 1):
            video, r = make_video(rng, f"s{s}", f"s{s}_v{v}", length)
            out.append(video)
            rows += r
    return out, AnnotationSet(rows, [])


def small_config(epochs=12):
    cfg = load_config("casme2")
    train = dataclasses.replace(cfg.train, epochs=epochs, fixed_epoch=epochs - 1, epoch_begin=4, batch_size=4)
    return dataclasses.replace(cfg, train=train)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine, two spinning threads slow this model ~15x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def loso_run(tmp_path_factory, one_torch_thread):
    videos, annotations = make_dataset()
    cfg = small_config()
    out = tmp_path_factory.mktemp("loso")
    folds = run_loso(videos, annotations, cfg, out, show_progress=False)
    return videos, annotations, cfg, out, folds


def test_loso_learns_far_above_the_untrained_model(loso_run):
    _, _, _, out, folds = loso_run
    summary = json.loads((out / "summary.json").read_text())
    honest, untrained = summary["honest"]["overall"], summary["untrained"]["overall"]
    assert honest["m"] == untrained["m"] == 32
    assert untrained["f1"] < 0.35
    assert honest["f1"] >= 0.75 and honest["f1"] >= untrained["f1"] + 0.4
    assert summary["honest"]["micro"]["tp"] >= 8 and summary["honest"]["macro"]["tp"] >= 12
    assert summary["oracle"]["overall"]["f1"] >= honest["f1"]     # oracle can only look better
    assert {f.subject for f in folds} == {"s1", "s2", "s3", "s4"}
    assert all(f.honest_epoch == 11 for f in folds)
    first, last = folds[0].losses[0]["loss"], folds[0].losses[-1]["loss"]
    assert last < 0.7 * first


def test_loso_writes_results_and_report(loso_run):
    _, _, _, out, _ = loso_run
    lines = (out / "per_subject.csv").read_text().splitlines()
    assert lines[0].startswith("subject,videos,gt_micro,gt_macro,untrained_f1,honest_epoch")
    assert [line.split(",")[0] for line in lines[1:]] == ["s1", "s2", "s3", "s4"]
    report = (out / "report.md").read_text()
    assert "| honest |" in report and "| oracle |" in report and "| untrained |" in report
    for png in ("loss_curves.png", "per_subject_f1.png", "f1_by_epoch.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    for s in ("s1", "s2", "s3", "s4"):
        info = checkpoint_info(out / "folds" / f"{s}.pt")
        assert info["epoch"] == 11 and info["extra"]["loso_held_out"] == s


def test_fold_normalisation_comes_from_training_subjects(loso_run):
    videos, _, _, out, _ = loso_run
    model = load_checkpoint(out / "folds" / "s2.pt")
    train = np.concatenate([v.features[v.valid].reshape(-1, 2) for v in videos if v.subject != "s2"])
    np.testing.assert_allclose(model.input_mean.numpy(), train.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(model.input_std.numpy(), train.std(axis=0), rtol=1e-4)


def test_resume_skips_finished_folds(loso_run, monkeypatch):
    videos, annotations, cfg, out, folds = loso_run
    before = (out / "summary.json").read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(loso, "run_fold", no_training)
    again = run_loso(videos, annotations, cfg, out, resume=True, show_progress=False)
    assert [f.to_json() for f in again] == [f.to_json() for f in folds]
    assert (out / "summary.json").read_text() == before
    with pytest.raises(RunDirError, match="--resume"):
        run_loso(videos, annotations, cfg, out, show_progress=False)
    with pytest.raises(RunDirError, match="epochs"):
        run_loso(videos, annotations, cfg, out, epochs=5, resume=True, show_progress=False)


def test_selection_and_oracle_rules():
    cfg = load_config("casme2")                       # epochs 100, fixed 47, begin 15
    assert Selection.for_run(cfg, None) == Selection(100, 47, 15)
    assert Selection.for_run(cfg, 20) == Selection(20, 19, 15)
    assert list(Selection.for_run(cfg, 10).evaluated()) == list(range(9, 10))

    def counts(tp):
        return {"micro": {"tp": 0, "n": 2, "m": 2}, "macro": {"tp": tp, "n": 2, "m": 2}}
    table = {-1: counts(2), 3: counts(0), 4: counts(1), 5: counts(2), 6: counts(2), 7: counts(1)}
    assert oracle_epoch(table, begin=4) == 5            # best F1, earliest of the tied epochs
    assert oracle_epoch(table, begin=6) == 6


def _write_feature_dir(folder, videos):
    for v in videos:
        t = len(v.features)
        save_features(folder / f"{v.video}.npz", FeatureFile(
            v.features, v.valid, np.arange(t) / v.fps, np.zeros((t, 12, 2), np.float32),
            {"fps": v.fps, "subject": v.subject}))


def test_cli_fit_and_loso(tmp_path):
    videos, annotations = make_dataset(seed=1, subjects=2, videos=1, length=400)
    _write_feature_dir(tmp_path / "features", videos)
    write_annotations(tmp_path / "ann.csv", annotations.rows)
    model_path = tmp_path / "model.pt"
    assert spot_train(["fit", "--features", str(tmp_path / "features"), "--annotations",
                       str(tmp_path / "ann.csv"), "--config", "live", "--epochs", "2", "-o",
                       str(model_path), "--quiet"]) == 0
    info = checkpoint_info(model_path)
    assert info["fps"] == 30.0 and info["config"].name == "live" and info["epoch"] == 1
    assert info["extra"]["trained_on_subjects"] == ["s1", "s2"]

    run_dir = tmp_path / "run"
    args = ["loso", "--features", str(tmp_path / "features"), "--annotations", str(tmp_path / "ann.csv"),
            "--epochs", "2", "-o", str(run_dir), "--rule", "reference", "--subjects", "s2",
            "--adjacency-from-training", "--quiet"]
    assert spot_train(args) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["subjects"] == ["s2"] and summary["rule"] == "reference"
    fold_prior = checkpoint_info(run_dir / "folds" / "s2.pt")["adjacency"]
    np.testing.assert_array_equal(fold_prior, build_adjacency(annotations.for_subject("s1")))
    assert fold_prior[8, 8] > 0.9 and not fold_prior[8, 2]        # s1 only: AU12 alone, no brow-mouth pairs
    assert spot_train(args) == 2                         # exists, no --resume
    assert spot_train(args + ["--resume"]) == 0


def test_cli_reference_segments(tmp_path):
    videos, annotations = make_dataset(seed=2, subjects=2, videos=1, length=512)
    for v in videos:
        padded = np.zeros((512 + 14, 12, 2), np.float32)
        padded[7:519] = v.features
        for s in range(2):
            np.savez(tmp_path / f"{v.video}_{256 * s:04d}.npz", feature=padded[256 * s: 256 * s + 270],
                     label=np.zeros((270, 8), np.int64), video_name=v.video)
    write_annotations(tmp_path / "ann.csv", annotations.rows)
    out = tmp_path / "ref.pt"
    assert spot_train(["fit", "--reference-segments", str(tmp_path), "--annotations", str(tmp_path / "ann.csv"),
                       "--epochs", "1", "-o", str(out), "--quiet"]) == 0
    assert checkpoint_info(out)["extra"]["videos"] == 2


def test_cli_adjacency(tmp_path, shared_path):
    csv = shared_path("data", "annotations", "casme2.csv")
    assert spot_train(["adjacency", str(csv), "-o", str(tmp_path / "adj.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "adj.npy"), prior_adjacency("casme2"), atol=1e-6)


def test_cli_bad_input_exits_2(tmp_path, capsys):
    write_annotations(tmp_path / "ann.csv", make_dataset(subjects=2, videos=1)[1].rows)
    base = ["fit", "--annotations", str(tmp_path / "ann.csv"), "-o", str(tmp_path / "m.pt")]
    assert spot_train(base + ["--features", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert spot_train(base + ["--features", str(tmp_path), "--config", "nope"]) == 2
    assert "no config 'nope'" in capsys.readouterr().err
    assert spot_train(["adjacency", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "a.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spot-train: ") and err.count("\n") == 1


def test_predict_probs_runs_are_independent_and_gaps_are_none():
    torch.manual_seed(0)
    model = AUWGCN().eval()
    feats = np.random.default_rng(0).normal(size=(80, 12, 2)).astype(np.float32)
    valid = np.ones(80, bool)
    valid[30:35] = False
    probs = predict_probs(model, feats, valid)
    with torch.no_grad():
        second_run = model(torch.from_numpy(feats[35:])[None])[0].numpy()
    np.testing.assert_allclose(probs[35:], logits_to_probs(second_run), atol=1e-6)
    assert (probs[30:35] == [0, 0, 1, 0, 0, 0, 1, 0]).all()
    changed = feats.copy()
    changed[25:30] += 5.0                          # the first run's tail must not reach the second run
    np.testing.assert_array_equal(predict_probs(model, changed, valid)[35:], probs[35:])
