"""The causal peak-picker against the same rule run offline, its decision bound, and its rule."""
from __future__ import annotations

import numpy as np
import pytest

from live_fakes import planted_probs, random_probs
from mespot.config import Config, load_config
from mespot.engine.probs import COL
from mespot.intervals import propose_at_apex
from mespot.stream.peakpicker import CausalPeakPicker, decode_offline_same_rule
from mespot.types import Interval


def _run_online(probs: np.ndarray, valid: np.ndarray, config: Config, *, explicit_gaps: bool = True,
                peak_radius: int | None = None) -> list[tuple[int, Interval]]:
    """Feed rows as the live pipeline does; return (feature index at emission, interval) pairs."""
    picker = CausalPeakPicker(config, peak_radius=peak_radius)
    emitted = []
    for index in range(len(probs)):
        if valid[index]:
            emitted += [(index, iv) for iv in picker.push(index, probs[index])]
        elif explicit_gaps:
            emitted += [(index, iv) for iv in picker.end_run()]
    emitted += [(len(probs) - 1, iv) for iv in picker.flush()]
    return emitted


def _key(intervals):
    return sorted((iv.kind, iv.onset, iv.apex, iv.offset, round(iv.score, 6)) for iv in intervals)


def _gap_masks(t: int, rng: np.random.Generator) -> list[np.ndarray]:
    masks = [np.ones(t, bool)]
    one_gap = np.ones(t, bool)
    one_gap[t // 3: t // 3 + 4] = False
    masks.append(one_gap)
    many = rng.random(t) > 0.03          # short scattered gaps, some single frames
    many[:2] = False                     # the stream starts invalid (no predecessor frame)
    masks.append(many)
    short_runs = np.ones(t, bool)
    short_runs[::9] = False              # runs of 8, shorter than the search ranges
    masks.append(short_runs)
    return masks


@pytest.mark.parametrize("config_name", ["casme2", "live", "samm"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_online_equals_offline_on_random_sequences_with_gaps(config_name, seed):
    config = load_config(config_name)
    rng = np.random.default_rng(seed)
    smooth = random_probs(rng, 700)
    plateaus = np.round(smooth * 10) / 10        # coarse values: ties and plateaus everywhere
    total = 0
    for probs in (smooth, plateaus):
        for valid in _gap_masks(len(probs), rng):
            for explicit in (True, False):
                online = _run_online(probs, valid, config, explicit_gaps=explicit)
                offline = decode_offline_same_rule(probs, config, valid)
                assert _key(iv for _, iv in online) == _key(offline)
                keys = [(iv.kind, iv.apex) for _, iv in online]
                assert len(keys) == len(set(keys)), "an interval was emitted twice"
                total += len(offline)
    assert total > 50, "random sequences should produce intervals, or this test proves nothing"


@pytest.mark.parametrize("peak_radius", [0, 3, 7])
def test_online_equals_offline_for_other_peak_radii(peak_radius):
    config = load_config("casme2")
    rng = np.random.default_rng(10 + peak_radius)
    probs = random_probs(rng, 500)
    valid = _gap_masks(len(probs), rng)[2]
    online = _run_online(probs, valid, config, peak_radius=peak_radius)
    offline = decode_offline_same_rule(probs, config, valid, peak_radius=peak_radius)
    assert offline and _key(iv for _, iv in online) == _key(offline)


def test_nan_rows_are_gaps_offline():
    config = load_config("live")
    rng = np.random.default_rng(5)
    probs = random_probs(rng, 300)
    valid = _gap_masks(300, rng)[1]
    with_nan = probs.copy()
    with_nan[~valid] = np.nan
    assert _key(decode_offline_same_rule(with_nan, config)) == _key(decode_offline_same_rule(probs, config, valid))


@pytest.mark.parametrize("seed", [0, 1])
def test_every_emission_within_the_bound(seed):
    config = load_config("casme2")
    rng = np.random.default_rng(seed)
    probs = random_probs(rng, 800)
    for valid in _gap_masks(len(probs), rng):
        for at, iv in _run_online(probs, valid, config, explicit_gaps=True):
            bound = config.decoding(iv.kind).end_range[1]
            # Rows reach the picker model_delay indices late, so in feature indices the delay is
            # (at - apex) + model_delay <= end_range[1] + model_delay = config.decision_delay(kind).
            assert 0 <= at - iv.apex <= bound, (iv, at)
            assert at - iv.apex + config.model_delay <= config.decision_delay(iv.kind)


def test_planted_expressions_found_at_their_positions():
    config = load_config("casme2")
    plants = [("micro", 40, 45, 52), ("macro", 120, 140, 165), ("micro", 230, 234, 241),
              ("macro", 300, 318, 340)]
    probs = planted_probs(420, plants, noise=0.02, rng=np.random.default_rng(3))
    online = [iv for _, iv in _run_online(probs, np.ones(420, bool), config)]
    assert _key(online) == _key(decode_offline_same_rule(probs, config))
    assert sorted((iv.kind, iv.onset, iv.apex, iv.offset) for iv in online) == sorted(plants)


def test_flush_decides_pending_candidates():
    config = load_config("casme2")
    probs = planted_probs(60, [("micro", 48, 53, 58)], noise=0.0, rng=np.random.default_rng(0))
    picker = CausalPeakPicker(config)
    during = [iv for i in range(60) for iv in picker.push(i, probs[i])]
    assert during == [], "the apex is within end_range[1] of the last row, so nothing is decided yet"
    flushed = picker.flush()
    assert [(iv.kind, iv.onset, iv.apex, iv.offset) for iv in flushed] == [("micro", 48, 53, 58)]
    assert picker.flush() == []


def test_decided_exactly_when_the_right_search_range_is_complete():
    config = load_config("casme2")
    probs = planted_probs(100, [("micro", 40, 45, 50)], noise=0.0, rng=np.random.default_rng(0))
    picker = CausalPeakPicker(config)
    when = {i: picker.push(i, probs[i]) for i in range(100)}
    decided_at = [i for i, out in when.items() if out]
    assert decided_at == [45 + config.micro.end_range[1]]


def test_overlapping_later_candidate_is_suppressed_and_separate_one_kept():
    config = load_config("casme2")
    # Two micro apex peaks 3 apart (outside radius 2) find the same boundaries: IoU 1, second dropped;
    # with the default radius (7) the second is not even a candidate. A third, far away, is kept.
    plants = [("micro", 40, 44, 50), ("micro", 40, 47, 50), ("micro", 100, 104, 110)]
    probs = planted_probs(160, plants, noise=0.0, rng=np.random.default_rng(0))
    both = [propose_at_apex(probs, apex, "micro", config.micro) for apex in (44, 47)]
    assert [(iv.onset, iv.offset) for iv in both] == [(40, 50), (40, 50)]
    for radius in (2, None):
        out = [iv for _, iv in _run_online(probs, np.ones(160, bool), config, peak_radius=radius)]
        assert [(iv.apex, iv.onset, iv.offset) for iv in out] == [(44, 40, 50), (104, 100, 110)]


def test_score_threshold_and_apex_threshold_apply():
    base = load_config("casme2")
    probs = planted_probs(100, [("micro", 40, 45, 50)], noise=0.0, rng=np.random.default_rng(0))
    score = decode_offline_same_rule(probs, base)[0].score
    strict = Config(micro=base.micro.__class__(**{**base.micro.__dict__, "score_threshold": score}))
    assert decode_offline_same_rule(probs, strict) == []
    assert [iv for _, iv in _run_online(probs, np.ones(100, bool), strict)] == []
    high_apex = Config(micro=base.micro.__class__(**{**base.micro.__dict__, "apex_threshold": 0.96}))
    assert decode_offline_same_rule(probs, high_apex) == []


def test_rejects_bad_input():
    config = load_config("casme2")
    picker = CausalPeakPicker(config)
    with pytest.raises(ValueError, match="shape"):
        picker.push(0, np.zeros(7))
    bad = np.zeros(8)
    bad[COL["micro_apex"]] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        picker.push(0, bad)
    picker.push(3, np.zeros(8))
    with pytest.raises(ValueError, match="not after"):
        picker.push(3, np.zeros(8))
    with pytest.raises(ValueError, match="peak_radius"):
        CausalPeakPicker(config, peak_radius=8)
