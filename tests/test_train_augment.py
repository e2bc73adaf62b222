"""Training-time augmentation: label-free input changes, reproducible, and off = the reference loop."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mespot.config import ConfigError, TrainConfig, config_from_dict
from mespot.engine.priors import prior_adjacency
from mespot.train.augment import MIRROR_ROIS, augment_windows, blink_track, mirror_features
from mespot.train.loop import train_model
from mespot.train.targets import Segments


def test_mirror_swaps_the_pairs_and_negates_x():
    f = np.zeros((3, 12, 2), np.float32)
    f[:, 0] = (1.0, 2.0)          # image-left outer brow moves right and down
    f[:, 9] = (0.5, -1.0)         # upper-lip centre
    m = mirror_features(f)
    np.testing.assert_array_equal(m[:, 5], np.tile([-1.0, 2.0], (3, 1)))
    np.testing.assert_array_equal(m[:, 0], 0.0)
    np.testing.assert_array_equal(m[:, 9], np.tile([-0.5, -1.0], (3, 1)))
    np.testing.assert_array_equal(mirror_features(m), f)
    assert sorted(MIRROR_ROIS) == list(range(12))
    assert all(MIRROR_ROIS[MIRROR_ROIS[i]] == i for i in range(12))


def _windows(rng, n=64):
    x = rng.normal(0, 0.1, (n, 40, 12, 2)).astype(np.float32)
    x[:, 30:] = 0.0               # past the end of the run
    return x


def test_augment_scales_within_range_mirrors_some_and_keeps_padding_zero():
    x = _windows(np.random.default_rng(0))
    y = augment_windows(x, np.random.default_rng(1), scale=(0.6, 1.6), noise=0.0)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_array_equal(y[:, 30:], 0.0)
    mirrored = 0
    for xi, yi in zip(x, y):
        plain = np.linalg.norm(yi) / np.linalg.norm(xi)
        assert 0.6 - 1e-5 <= plain <= 1.6 + 1e-5
        if np.allclose(yi, plain * xi, atol=1e-6):
            continue
        np.testing.assert_allclose(yi, plain * mirror_features(xi), atol=1e-6)
        mirrored += 1
    assert 10 < mirrored < 54             # a fair coin over 64 windows
    np.testing.assert_array_equal(x, _windows(np.random.default_rng(0)))   # input untouched


def test_augment_noise_only_on_frames_with_features_and_reproducible():
    x = _windows(np.random.default_rng(0))
    a = augment_windows(x, np.random.default_rng(5), scale=(1.0, 1.0), noise=0.01)
    b = augment_windows(x, np.random.default_rng(5), scale=(1.0, 1.0), noise=0.01)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, 30:], 0.0)
    clean = augment_windows(x, np.random.default_rng(5), scale=(1.0, 1.0), noise=0.0)
    resid = (a - clean)[:, :30]
    assert 0.008 < resid.std() < 0.012


def test_config_reads_augment_and_rejects_bad_values():
    assert TrainConfig().augment is False          # the reference path by default
    cfg = config_from_dict({"train": {"augment": True, "augment_scale": [0.5, 2], "augment_noise": 0.01}})
    assert cfg.train.augment and cfg.train.augment_scale == (0.5, 2.0)
    with pytest.raises(ConfigError, match="augment_scale"):
        TrainConfig(augment_scale=(1.5, 1.0))
    with pytest.raises(ConfigError, match="augment_noise"):
        TrainConfig(augment_noise=-0.1)


def _segments(rng, n=8, length=32, context=7):
    return Segments(rng.normal(0, 0.1, (n, length + 2 * context, 12, 2)).astype(np.float32),
                    rng.integers(0, 3, (n, 2, length)).astype(np.int64),
                    rng.random((n, 2, length)).astype(np.float32),
                    (rng.random((n, 2, length)) < 0.2).astype(np.float32),
                    np.ones((n, length), np.float32))


def test_augment_changes_training_and_off_stays_deterministic():
    seg = _segments(np.random.default_rng(0))
    base = TrainConfig(epochs=2, epoch_begin=0, fixed_epoch=1, batch_size=4, segment_length=32)
    kw = dict(adjacency=prior_adjacency("casme2"), input_mean=(0.0, 0.0), input_std=(0.1, 0.1))

    def weights(train):
        return torch.cat([p.detach().flatten() for p in train_model(seg, train, **kw).parameters()])

    off = weights(base)
    torch.testing.assert_close(weights(base), off, rtol=0, atol=0)
    on = weights(dataclasses.replace(base, augment=True))
    assert not torch.allclose(on, off)
    torch.testing.assert_close(weights(dataclasses.replace(base, augment=True)), on, rtol=0, atol=0)


def test_node_gain_and_rotation_change_each_roi_alone_and_keep_empty_frames_empty():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.2, (16, 30, 12, 2)).astype(np.float32)
    x[:, :5] = 0.0                                      # outside the run
    plain = augment_windows(x, np.random.default_rng(7), scale=(1.0, 1.0), noise=0.0)
    turned = augment_windows(x, np.random.default_rng(7), scale=(1.0, 1.0), noise=0.0, rotate_deg=40.0)
    # rotation keeps every vector's length, changes directions, one angle per window and ROI
    np.testing.assert_allclose(np.hypot(*turned.transpose(3, 0, 1, 2)), np.hypot(*plain.transpose(3, 0, 1, 2)),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(turned, plain)
    gained = augment_windows(x, np.random.default_rng(7), scale=(1.0, 1.0), noise=0.0, node_gain=2.0)
    ratio = np.hypot(*gained[:, 5:].transpose(3, 0, 1, 2)) / np.hypot(*plain[:, 5:].transpose(3, 0, 1, 2))
    per_roi = ratio.reshape(16, -1, 12)
    np.testing.assert_allclose(per_roi, per_roi[:, :1, :].repeat(per_roi.shape[1], axis=1), rtol=1e-4)
    assert 0.5 - 1e-6 <= per_roi.min() and per_roi.max() <= 2.0 + 1e-6 and per_roi.std() > 0.1
    for out in (turned, gained):
        assert not out[:, :5].any()
    with pytest.raises(ConfigError, match="augment_node_gain"):
        TrainConfig(augment_node_gain=0.5)


def test_blink_track_closes_then_opens_and_returns_the_lid():
    for seed in range(20):
        track = blink_track(np.random.default_rng(seed), 30.0)
        assert abs(track.sum()) < 1e-9                     # the lid ends where it began
        closing = np.flatnonzero(track > 0)
        opening = np.flatnonzero(track < 0)
        assert closing.size and opening.size and closing.max() < opening.min()
        assert 4 <= len(track) <= 15                       # 0.15-0.47 s at 30 fps
        assert track.max() <= 1.0 + 1e-9


def test_blinks_move_only_brows_and_nose_root_inside_the_run():
    x = np.zeros((32, 270, 12, 2), np.float32)
    x[:, 20:250] = 0.01                                    # the run; outside it the window is empty
    plain = augment_windows(x, np.random.default_rng(4), scale=(1.0, 1.0), noise=0.0)
    blinked = augment_windows(x, np.random.default_rng(4), scale=(1.0, 1.0), noise=0.0,
                              blink_rate=0.4, blink_px=(0.1, 0.3))
    added = blinked - plain
    # the mouth ROIs move only by the head-motion leak, the same vector for all five
    np.testing.assert_allclose(added[:, :, 7:], added[:, :, 7:8].repeat(5, axis=2), atol=1e-7)
    assert np.abs(added[:, :, 7]).max() < np.abs(added[:, :, :7]).max()
    assert not added[:, :20].any() and not added[:, 250:].any()
    moved = np.abs(added[:, :, :7]).max(axis=(1, 2, 3))
    assert (moved > 0).mean() > 0.8                        # about 3.6 blinks a window at this rate
    assert moved.max() <= 0.3 + 1e-6
    assert np.abs(added[..., 1]).sum() > 2 * np.abs(added[..., 0]).sum()   # mostly vertical
    # draws come after the other augmentations: with blinks off the output is the old one
    np.testing.assert_array_equal(augment_windows(x, np.random.default_rng(4), scale=(1.0, 1.0), noise=0.0,
                                                  blink_rate=0.0), plain)
    with pytest.raises(ConfigError, match="augment_blink"):
        TrainConfig(augment_blink_rate=-1.0)
    with pytest.raises(ConfigError, match="augment_blink"):
        TrainConfig(augment_blink_px=(0.4, 0.1))
