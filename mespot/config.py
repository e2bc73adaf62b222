"""Typed configuration, read from YAML and validated once.

One config describes a dataset or a live setting: the feature rate, the graph prior, the model's
right context and the decoding and training parameters. Everything downstream takes these objects,
never raw dicts, so a typo in a YAML file fails here with the key that broke it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mespot.types import KINDS  # noqa: F401 (re-exported: the kinds a config decodes)

# Inside the package, so an installed wheel has them; `configs/` at the repository root is a link to
# this folder, so paths like configs/live.yaml keep working in a checkout.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names the key."""


@dataclass(frozen=True)
class DecodingConfig:
    """Proposal decoding for one expression kind (reference-model.md §6), in feature indices."""

    apex_threshold: float = 0.5
    start_range: tuple[int, int] = (2, 7)   # apex - start in [lo, hi]
    end_range: tuple[int, int] = (2, 7)     # end - apex in [lo, hi]
    min_len: int = 5                        # on end - start
    max_len: int = 30
    top_k: int = 5                          # offline, per video (reference NMS)
    score_threshold: float = 0.0            # online replacement for top_k

    def __post_init__(self) -> None:
        for name in ("start_range", "end_range"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ConfigError(f"decoding.{name} must satisfy 0 < lo <= hi, got {lo}..{hi}")
            object.__setattr__(self, name, (int(lo), int(hi)))
        if not 0 <= self.min_len <= self.max_len:
            raise ConfigError(f"decoding min_len {self.min_len} / max_len {self.max_len} out of order")
        if not 0.0 <= self.apex_threshold < 1.0:
            raise ConfigError(f"decoding.apex_threshold must be in [0, 1), got {self.apex_threshold}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and label settings (reference-model.md §3 and §5)."""

    epochs: int = 100
    epoch_begin: int = 15
    fixed_epoch: int = 47
    batch_size: int = 128
    lr: float = 0.01
    weight_decay: float = 0.1
    lr_gamma: float = 0.96
    segment_length: int = 256
    context: int = 7
    macro_weight: float = 0.5
    micro_normal_range: int = 1
    macro_normal_range: int = 3
    use_neutral_segments: bool = False
    seed: int = 1
    # Training-time feature augmentation (mespot.train.augment); off = the reference's training.
    augment: bool = False
    augment_scale: tuple[float, float] = (0.6, 1.6)   # per-window amplitude factor, log-uniform
    augment_noise: float = 0.005                      # Gaussian noise std, pixels per frame
    augment_node_gain: float = 1.0                    # per-ROI factor in [1/g, g], log-uniform; 1 = off
    augment_rotate_deg: float = 0.0                   # per-ROI rotation within +-deg; 0 = off
    augment_blink_rate: float = 0.0                   # added blinks per second of window; 0 = off
    augment_blink_px: tuple[float, float] = (0.03, 0.4)   # their peak brow drag, log-uniform, pixels

    def __post_init__(self) -> None:
        lo, hi = self.augment_scale
        if not 0 < lo <= hi:
            raise ConfigError(f"train.augment_scale must satisfy 0 < lo <= hi, got {lo}..{hi}")
        object.__setattr__(self, "augment_scale", (float(lo), float(hi)))
        if self.augment_noise < 0:
            raise ConfigError(f"train.augment_noise must be >= 0, got {self.augment_noise}")
        if self.augment_node_gain < 1.0 or not 0.0 <= self.augment_rotate_deg <= 180.0:
            raise ConfigError(f"train.augment_node_gain must be >= 1 and train.augment_rotate_deg in "
                              f"0..180, got {self.augment_node_gain} and {self.augment_rotate_deg}")
        lo, hi = self.augment_blink_px
        if self.augment_blink_rate < 0 or not 0 < lo <= hi:
            raise ConfigError(f"train.augment_blink_rate must be >= 0 and train.augment_blink_px satisfy "
                              f"0 < lo <= hi, got {self.augment_blink_rate} and {lo}..{hi}")
        object.__setattr__(self, "augment_blink_px", (float(lo), float(hi)))
        if self.fixed_epoch >= self.epochs:
            raise ConfigError(f"train.fixed_epoch {self.fixed_epoch} must be < train.epochs {self.epochs}")
        if self.context < 5:
            raise ConfigError(f"train.context {self.context} is below the model's receptive half-width 5")


@dataclass(frozen=True)
class Config:
    """A dataset or live configuration."""

    name: str = "casme2"
    fps: float = 30.0
    adjacency: str = "casme2"
    model_delay: int = 5
    window: int = 64
    micro: DecodingConfig = field(default_factory=DecodingConfig)
    macro: DecodingConfig = field(default_factory=lambda: DecodingConfig(
        start_range=(7, 29), end_range=(7, 29), min_len=15, max_len=88))
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ConfigError(f"fps must be positive, got {self.fps}")
        if self.window < 2 * self.model_delay + 1:
            raise ConfigError(
                f"window {self.window} must be >= 2*model_delay+1 = {2 * self.model_delay + 1}")

    def decoding(self, kind: str) -> DecodingConfig:
        if kind not in KINDS:
            raise ConfigError(f"unknown expression kind {kind!r}; valid: {', '.join(KINDS)}")
        return getattr(self, kind)

    def decision_delay(self, kind: str) -> int:
        """Indices after an apex before an interval of this kind can be decided online."""
        return self.decoding(kind).end_range[1] + self.model_delay

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["decoding"] = {k: d.pop(k) for k in KINDS}
        return d


def _build(cls, raw: dict[str, Any], where: str):
    known = {f.name for f in fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {', '.join(sorted(unknown))}")
    try:
        return cls(**raw)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def config_from_dict(raw: dict[str, Any]) -> Config:
    raw = dict(raw)
    decoding = raw.pop("decoding", {}) or {}
    unknown = set(decoding) - set(KINDS)
    if unknown:
        raise ConfigError(f"unknown decoding kind(s): {', '.join(sorted(unknown))}")
    for kind in KINDS:
        if kind in decoding:
            raw[kind] = _build(DecodingConfig, dict(decoding[kind]), f"decoding.{kind}")
    if "train" in raw:
        raw["train"] = _build(TrainConfig, dict(raw["train"]), "train")
    return _build(Config, raw, "config")


def load_config(name_or_path: str | Path) -> Config:
    """Load a config by path, or by name from the package's `configs/` folder (mespot/configs)."""
    path = Path(name_or_path)
    if not path.exists():
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(f"no config {str(name_or_path)!r}; valid names: {', '.join(names)} or a YAML path")
    import yaml      # here, not at the top: models carry their config, so loading one needs no YAML

    try:
        with open(path, "rb") as fh:
            raw = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{path}: not valid YAML ({problem}{where})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:     # e.g. `decoding: 3`, `micro: [1]`
        raise ConfigError(f"{path}: {type(exc).__name__}: {exc}") from None
