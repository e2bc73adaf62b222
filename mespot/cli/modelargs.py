"""The model a live CLI runs: --model/--backend/--device/--precision and --config, opened once, with
every user error turned into one InputError line (spot-live, one stream or several)."""
from __future__ import annotations

from mespot.errors import InputError


def load_model(args):
    """Config, runtime and model path.

    Without --config the model's own config (carried in its metadata) is used, so its rate and
    decoding parameters travel with it; --config overrides the decoding but must keep the rate.
    """
    from mespot.config import ConfigError, load_config
    from mespot.engine.runtime import RuntimeUnavailable, open_runtime
    from mespot.models import ModelNotFound, default_model_path
    from mespot.stream.factory import pipeline_config

    try:
        config = load_config(args.config) if args.config is not None else None
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    try:
        model_path = args.model if args.model is not None else default_model_path(args.backend)
        runtime = open_runtime(model_path, args.backend, args.device, precision=args.precision)
    except (ModelNotFound, FileNotFoundError, ValueError, RuntimeUnavailable) as exc:
        raise InputError(str(exc)) from None
    try:
        config = pipeline_config(runtime, config)
    except ConfigError as exc:
        raise InputError(f"model {model_path}: {exc}{'' if args.config is None else ' (--config)'}") from None
    return config, runtime, model_path
