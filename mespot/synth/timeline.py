"""What happens in one generated video, frame by frame, and the annotations that follow from it.

A `Timeline` is identity-independent: expression intensities in [0, 1] with their AUs and peak
displacement (pixels on a 224-px-wide face), plus the distractor tracks of mespot.synth.distractors.
The renderer scales pixel amounts to the identity's face width.

Annotation rule (documented in docs/synth.md): an expression's intensity profile rises, may hold,
and falls with raised-cosine ramps; intensities below ANNOTATION_FRACTION of the peak are set to
exactly zero. Then start = first frame with non-zero displacement, end = last such frame, apex =
the middle frame of the hold (the peak frame when there is no hold). Every planted interval is also
drawn so that the decoding of the given config can represent it (its start/end search ranges and
length limits), so no annotation is unreachable by construction.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from mespot.config import Config, DecodingConfig
from mespot.synth.aus import AuSampler, au_label
from mespot.types import Interval

ANNOTATION_FRACTION = 0.02
TALK_LIKE_AUS = frozenset({25, 26})   # a micro-expression of only these would look like one syllable


@dataclass(frozen=True)
class SynthParams:
    """Rates, durations and sizes of everything planted. Pixel sizes are on a 224-px-wide face."""

    micro_per_min: float = 2.5        # real: CAS(ME)^2 ~0.5/min, SAMM-LV ~4/min
    macro_per_min: float = 4.0        # real: CAS(ME)^2 ~3/min, SAMM-LV ~9/min
    micro_seconds: tuple[float, float] = (0.2, 0.5)
    macro_seconds: tuple[float, float] = (0.5, 4.0)
    macro_median_s: float = 1.2       # real CAS(ME)^2 median 34.5 frames at 30 fps
    micro_peak_px: tuple[float, float] = (1.0, 2.0)
    macro_peak_px: tuple[float, float] = (3.0, 8.0)
    lead_in_s: float = 1.0            # neutral start, so a tracker can lock on
    min_gap_s: float = 1.5            # neutral time between two expressions
    blink_per_min: float = 15.0
    talk_per_min: float = 1.5
    talk_px: tuple[float, float] = (1.0, 3.0)
    head_moves_per_min: float = 2.0
    head_drift_frac: float = 0.02     # std of slow head drift, face widths
    light_changes_per_min: float = 1.0
    noise_sigma: tuple[float, float] = (1.0, 3.0)   # grey levels
    distractor_margin_s: float = 0.3  # fast distractors (head moves, talk, light) keep this far from expressions
    jpeg_quality: tuple[int, int] | None = None   # per-frame JPEG re-encoding at a quality in this range
    # Wider nuisances (all off by default, so a seed renders as it always did; `wide()` turns them on).
    profile_shapes: str = "cosine"    # "cosine": raised-cosine rise/fall; "varied": asymmetric, held
    turn_deg: float = 0.0             # out-of-plane head turns and nods (yaw, pitch) up to this
    zoom_frac: float = 0.0            # slow zoom: std of the log scale drift added to the head track
    flicker: float = 0.0              # frame-to-frame illumination flicker (relative std)
    blur_px: tuple[float, float] | None = None   # per-video Gaussian blur sigma (224-face pixels)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def wide(cls, **overrides) -> "SynthParams":
        """Every nuisance drawn over a wider range than the annotated datasets imply (docs/synth.md)."""
        values = dict(micro_peak_px=(0.6, 3.0), macro_peak_px=(2.0, 12.0), blink_per_min=20.0,
                      talk_per_min=2.5, talk_px=(1.0, 5.0), head_moves_per_min=3.0,
                      head_drift_frac=0.03, light_changes_per_min=2.0, noise_sigma=(0.5, 5.0),
                      jpeg_quality=(35, 95), profile_shapes="varied", turn_deg=15.0, zoom_frac=0.04,
                      flicker=0.02, blur_px=(0.0, 1.5))
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class Expression:
    """One planted expression; frames are 0-based indices of the written video."""

    kind: str
    onset: int
    apex: int
    offset: int
    aus: tuple[int, ...]
    peak_px: float

    @property
    def interval(self) -> Interval:
        return Interval(self.kind, self.onset, self.apex, self.offset)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "onset": self.onset, "apex": self.apex, "offset": self.offset,
                "au": au_label(self.aus), "peak_px": round(self.peak_px, 4)}


@dataclass
class Timeline:
    """Per-frame plan of a video of `n_frames` frames at `fps`.

    expr_amp (T,) float32 in [0, 1] and expr_index (T,) int (-1 = none) into `expressions`;
    blink (T,) eyelid closure in [0, 1]; talk_px (T,) mouth opening in 224-face pixels;
    head (T, 4) = translation x, y (face widths), rotation (degrees), log scale;
    gain (T,) illumination multiplier; noise_sigma grey levels; noise_seed seeds the sensor noise;
    jpeg_quality (T,) int, 0 = no JPEG re-encoding of that frame; turn (T, 2) out-of-plane yaw and
    pitch in degrees (None: none); blur_px Gaussian blur sigma in 224-face pixels (0: none).
    """

    n_frames: int
    fps: float
    expressions: list[Expression]
    expr_amp: np.ndarray
    expr_index: np.ndarray
    blink: np.ndarray
    talk_px: np.ndarray
    head: np.ndarray
    gain: np.ndarray
    noise_sigma: float
    noise_seed: int
    jpeg_quality: np.ndarray | None = None
    events: dict[str, list[dict]] = field(default_factory=dict)
    turn: np.ndarray | None = None
    blur_px: float = 0.0

    def intervals(self) -> list[Interval]:
        return [e.interval for e in self.expressions]

    def describe(self) -> dict:
        """JSON-ready summary for a manifest."""
        return {"n_frames": self.n_frames, "fps": self.fps, "noise_sigma": round(self.noise_sigma, 4),
                "noise_seed": self.noise_seed, "blur_px": round(self.blur_px, 4),
                "expressions": [e.to_dict() for e in self.expressions],
                "distractors": self.events}


def raised_cosine_profile(frames: np.ndarray, t0: float, ta: float, th: float, t1: float) -> np.ndarray:
    """0 before t0, smooth rise to 1 at ta, 1 until th, smooth fall to 0 at t1 (times in frames)."""
    f = frames.astype(np.float64)
    amp = np.zeros_like(f)
    rise = (f > t0) & (f < ta)
    amp[rise] = 0.5 * (1 - np.cos(np.pi * (f[rise] - t0) / (ta - t0)))
    amp[(f >= ta) & (f <= th)] = 1.0
    fall = (f > th) & (f < t1)
    amp[fall] = 0.5 * (1 + np.cos(np.pi * (f[fall] - th) / (t1 - th)))
    return amp


def varied_profile(frames: np.ndarray, t0: float, ta: float, th: float, t1: float,
                   rise_power: float, fall_power: float) -> np.ndarray:
    """Like `raised_cosine_profile`, with each ramp bent by a power (< 1 fast start, > 1 slow start),
    so rise and fall differ in shape as well as in length."""
    amp = raised_cosine_profile(frames, t0, ta, th, t1)
    f = frames.astype(np.float64)
    rise, fall = (f > t0) & (f < ta), (f > th) & (f < t1)
    amp[rise] = amp[rise] ** rise_power
    amp[fall] = amp[fall] ** fall_power
    return amp


def decoding_limits(config: Config, kind: str, fps: float) -> DecodingConfig:
    """The config's decoding ranges for a kind, rescaled when the video's fps differs from the config's."""
    dec = config.decoding(kind)
    if abs(fps - config.fps) < 1e-6:
        return dec
    r = fps / config.fps

    def scale(pair: tuple[int, int]) -> tuple[int, int]:
        return max(1, int(np.ceil(pair[0] * r))), max(1, int(np.floor(pair[1] * r)))

    return DecodingConfig(start_range=scale(dec.start_range), end_range=scale(dec.end_range),
                          min_len=int(np.ceil(dec.min_len * r)), max_len=int(np.floor(dec.max_len * r)))


def sample_profile(kind: str, fps: float, params: SynthParams, limits: DecodingConfig,
                   rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Draw one expression's intensity profile; returns (amp over start..end inclusive, apex - start).

    Redraws until the annotation (see the module docstring) satisfies the duration range of the kind
    and the decoding limits.
    """
    lo_s, hi_s = params.micro_seconds if kind == "micro" else params.macro_seconds
    min_d = max(limits.min_len, int(np.ceil(lo_s * fps)))
    max_d = min(limits.max_len, int(np.floor(hi_s * fps)), limits.start_range[1] + limits.end_range[1])
    if min_d > max_d:
        raise ValueError(f"no {kind} duration fits both {lo_s}-{hi_s} s at {fps} fps and the decoding limits")
    varied = params.profile_shapes == "varied"
    if params.profile_shapes not in ("cosine", "varied"):
        raise ValueError(f"profile_shapes must be 'cosine' or 'varied', got {params.profile_shapes!r}")
    for _ in range(1000):
        if kind == "micro":
            total = rng.uniform(lo_s, hi_s) * fps
            hold_frac, rise_frac = rng.uniform(0.0, 0.1), rng.uniform(0.35, 0.6)
        else:
            total = float(np.clip(params.macro_median_s * np.exp(rng.normal(0, 0.45)), lo_s, hi_s)) * fps
            hold_frac, rise_frac = rng.uniform(0.0, 0.35), rng.uniform(0.3, 0.55)
        if varied:   # asymmetric: fast or slow rise, a plateau of up to 40 % (25 % for a micro)
            hold_frac = rng.uniform(0.0, 0.25 if kind == "micro" else 0.4)
            rise_frac = rng.uniform(0.2, 0.75)
            powers = np.exp(rng.uniform(np.log(0.5), np.log(2.5), 2))
        t0 = rng.uniform(0.0, 1.0)
        moving = total * (1 - hold_frac)
        ta = t0 + rise_frac * moving
        th = ta + hold_frac * total
        t1 = t0 + total
        frames = np.arange(int(np.ceil(t1)) + 2)
        if varied:
            amp = varied_profile(frames, t0, ta, th, t1, float(powers[0]), float(powers[1]))
        else:
            amp = raised_cosine_profile(frames, t0, ta, th, t1)
        amp[amp < ANNOTATION_FRACTION] = 0.0
        nz = np.flatnonzero(amp)
        start, end = int(nz[0]), int(nz[-1])
        plateau = np.flatnonzero(amp >= 1.0)
        apex = int(plateau[len(plateau) // 2]) if len(plateau) else int(np.argmax(amp))
        d = end - start
        if (min_d <= d <= max_d
                and limits.start_range[0] <= apex - start <= limits.start_range[1]
                and limits.end_range[0] <= end - apex <= limits.end_range[1]):
            return amp[start:end + 1].astype(np.float32), apex - start
    raise RuntimeError(f"could not draw a {kind} profile within the limits after 1000 tries")


def plan_expressions(n_frames: int, fps: float, params: SynthParams, config: Config,
                     sampler: AuSampler, rng: np.random.Generator,
                     counts: dict[str, int] | None = None
                     ) -> tuple[list[Expression], np.ndarray, np.ndarray]:
    """Place non-overlapping expressions with random neutral gaps (at least `min_gap_s`).

    counts: exact number per kind; None draws Poisson counts from the per-minute rates. When they do
    not all fit the video, the last drawn are dropped until the rest fit. Returns the expressions in
    time order with expr_amp (T,) and expr_index (T,).
    """
    minutes = n_frames / fps / 60
    if counts is None:
        counts = {"micro": int(rng.poisson(params.micro_per_min * minutes)),
                  "macro": int(rng.poisson(params.macro_per_min * minutes))}
    kinds = ["micro"] * counts.get("micro", 0) + ["macro"] * counts.get("macro", 0)
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    drawn = []
    for kind in kinds:
        profile, apex_rel = sample_profile(kind, fps, params, decoding_limits(config, kind, fps), rng)
        aus = sampler.sample(kind, rng)
        while kind == "micro" and TALK_LIKE_AUS.issuperset(aus):
            aus = sampler.sample(kind, rng)
        lo, hi = params.micro_peak_px if kind == "micro" else params.macro_peak_px
        drawn.append((kind, profile, apex_rel, aus, float(rng.uniform(lo, hi))))
    lead = int(round(params.lead_in_s * fps))
    gap = int(round(params.min_gap_s * fps))
    while drawn and lead + sum(len(d[1]) + gap for d in drawn) > n_frames:
        drawn.pop()
    slack = n_frames - lead - sum(len(d[1]) + gap for d in drawn)
    shares = rng.dirichlet(np.ones(len(drawn) + 1)) if drawn else np.ones(1)
    extra = np.floor(shares * slack).astype(int)
    expr_amp = np.zeros(n_frames, np.float32)
    expr_index = np.full(n_frames, -1, np.int32)
    expressions = []
    pos = lead
    for k, (kind, profile, apex_rel, aus, peak) in enumerate(drawn):
        pos += int(extra[k]) + (gap if k else 0)
        start, end = pos, pos + len(profile) - 1
        expr_amp[start:end + 1] = profile
        expr_index[start:end + 1] = k
        expressions.append(Expression(kind, start, start + apex_rel, end, aus, peak))
        pos = end + 1
    return expressions, expr_amp, expr_index


def plan_timeline(n_frames: int, fps: float, seed: int, params: SynthParams | None = None,
                  config: Config | None = None, sampler: AuSampler | None = None,
                  expressions: bool = True, counts: dict[str, int] | None = None) -> Timeline:
    """Everything that happens in one video, drawn from `seed` alone (same seed -> same timeline).

    expressions=False gives a distractor-only timeline (no annotations). `config` supplies the
    decoding limits planted intervals must respect (default: the `live` config).
    """
    from mespot.config import load_config
    from mespot.synth import distractors

    params = params or SynthParams()
    config = config or load_config("live")
    sampler = sampler or AuSampler.default()
    rng = np.random.default_rng(seed)
    if expressions:
        planted, expr_amp, expr_index = plan_expressions(n_frames, fps, params, config, sampler, rng, counts)
    else:
        planted = []
        expr_amp = np.zeros(n_frames, np.float32)
        expr_index = np.full(n_frames, -1, np.int32)
    margin = int(round(params.distractor_margin_s * fps))
    busy = np.zeros(n_frames, bool)
    for e in planted:
        busy[max(0, e.onset - margin):e.offset + margin + 1] = True
    blink, blink_events = distractors.blink_track(n_frames, fps, params.blink_per_min, rng)
    talk, talk_events = distractors.talk_track(n_frames, fps, params.talk_per_min, params.talk_px, busy, rng)
    head, head_events = distractors.head_track(n_frames, fps, params.head_moves_per_min,
                                               params.head_drift_frac, busy, rng)
    gain, light_events = distractors.light_track(n_frames, fps, params.light_changes_per_min, busy, rng)
    noise_sigma = float(rng.uniform(*params.noise_sigma))
    noise_seed = int(rng.integers(2**31 - 1))
    jpeg = None   # drawn last, so enabling it leaves every other track of a seed unchanged
    if params.jpeg_quality is not None:
        jpeg = rng.integers(params.jpeg_quality[0], params.jpeg_quality[1] + 1, n_frames).astype(np.int32)
    events = {"blinks": blink_events, "talk": talk_events, "head_moves": head_events,
              "light_changes": light_events}
    # The wider nuisances are drawn after everything else, for the same reason.
    turn = None
    if params.turn_deg > 0:
        turn, events["turns"] = distractors.turn_track(n_frames, fps, params.head_moves_per_min,
                                                       params.turn_deg, busy, rng)
    if params.zoom_frac > 0:
        head[:, 3] += params.zoom_frac * distractors.smooth_noise(n_frames, fps, rng, 4.0)
    if params.flicker > 0:
        gain = (gain * (1.0 + params.flicker * rng.standard_normal(n_frames))).astype(np.float32)
    blur = float(rng.uniform(*params.blur_px)) if params.blur_px is not None else 0.0
    return Timeline(
        n_frames=n_frames, fps=fps, expressions=planted, expr_amp=expr_amp, expr_index=expr_index,
        blink=blink, talk_px=talk, head=head.astype(np.float32), gain=gain,
        noise_sigma=noise_sigma, noise_seed=noise_seed, jpeg_quality=jpeg, events=events,
        turn=turn, blur_px=blur)
