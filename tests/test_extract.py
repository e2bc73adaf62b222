"""spot-extract: one source, a dataset tree (parallel, resumable), and bad input (exit 2)."""
from __future__ import annotations

import pytest

from helpers import write_image_folder, write_video
from mespot.cli.extract import find_videos, main
from mespot.featurefile import load_features


def test_single_source_writes_a_feature_file(shared_path, tmp_path):
    out = tmp_path / "out" / "single.npz"
    assert main([str(shared_path("media", "single_face.mp4")), "-o", str(out), "--quiet"]) == 0
    ff = load_features(out)
    assert ff.features.shape == (72, 12, 2) and ff.valid.sum() == 71
    assert ff.fps == 30.0 and ff.meta["tool"] == "spot-extract"
    assert ff.meta["extractor"]["flow"]["method"] == "dis" and ff.meta["extractor"]["crop_size"] == 128


def test_fps_comes_from_the_config_unless_given(tmp_path):
    clip = write_video(tmp_path / "clip.avi", n=25, fps=25.0)
    assert main([str(clip), "-o", str(tmp_path / "a.npz"), "--config", "samm", "--quiet"]) == 0
    assert main([str(clip), "-o", str(tmp_path / "b.npz"), "--fps", "50", "--quiet"]) == 0
    a, b = load_features(tmp_path / "a.npz"), load_features(tmp_path / "b.npz")
    assert a.fps == 25.0 and len(a) == 25
    # Resampled by timestamps: frames at 0..0.96 s give ticks 0..48 at 50 fps (each frame twice,
    # the last once: no tick after it is nearer to it than half a tick period).
    assert b.fps == 50.0 and len(b) == 49
    assert not a.valid.any()                         # no face in a grey clip


def test_dataset_tree_parallel_and_resumable(tmp_path):
    data = tmp_path / "data"
    write_video(data / "s1" / "v_10.avi", 12)
    write_video(data / "s1" / "v_2.avi", n=8)
    write_image_folder(data / "s2" / "seq_a", 5)
    assert [p.name for p in find_videos(data)] == ["v_2.avi", "v_10.avi", "seq_a"]
    out = tmp_path / "features"
    assert main([str(data), "-o", str(out), "--workers", "2", "--quiet"]) == 0
    files = sorted(p.name for p in out.glob("*.npz"))
    assert files == ["seq_a.npz", "v_10.npz", "v_2.npz"]
    assert len(load_features(out / "v_2.npz")) == 8 and len(load_features(out / "seq_a.npz")) == 5
    stamp = (out / "v_10.npz").stat().st_mtime_ns
    (out / "v_2.npz").unlink()                       # as if the run had been interrupted
    assert main([str(data), "-o", str(out), "--workers", "1", "--quiet"]) == 0
    assert (out / "v_2.npz").exists() and (out / "v_10.npz").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("argv, message", [
    (["{tmp}/missing.mp4", "-o", "{tmp}/x.npz"], "not found"),
    (["{tmp}/text.mp4", "-o", "{tmp}/x.npz"], "cannot open video file"),
    (["{tmp}/clip.avi", "-o", "{tmp}/x.csv"], "must end in .npz"),
    (["{tmp}/data", "-o", "{tmp}/x.npz"], "must be a folder"),
    (["{tmp}/clip.avi", "-o", "{tmp}/x.npz", "--config", "nonsense"], "no config"),
    (["{tmp}/clip.avi", "-o", "{tmp}/x.npz", "--fps", "0"], "positive"),
    (["{tmp}/clip.avi", "-o", "{tmp}/x.npz", "--tracker", "{tmp}/none.task"], "not found"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "text.mp4").write_text("not a video")
    write_video(tmp_path / "clip.avi", n=3)
    write_video(tmp_path / "data" / "v.avi", n=3)
    code = main([a.format(tmp=tmp_path) for a in argv] + ["--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("spot-extract: error:") and message in err and "\n" not in err


def test_native_start_up_chatter_is_hidden_unless_verbose(tmp_path):
    """MediaPipe and TensorFlow Lite write to descriptor 2 as they start: hidden by default (in
    the pool's workers too, which inherit the descriptor), shown with --verbose."""
    import subprocess
    import sys

    write_video(tmp_path / "data" / "s1" / "v.avi", 6)

    def extract(*extra):
        return subprocess.run([sys.executable, "-m", "mespot.cli.extract", str(tmp_path / "data"), "-o",
                               str(tmp_path / f"out{len(extra)}"), "--quiet", "--workers", "1", *extra],
                              capture_output=True, text=True, timeout=300)

    verbose = extract("--verbose")
    assert verbose.returncode == 0 and "TensorFlow Lite" in verbose.stderr, verbose.stderr
    quiet = extract()
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
