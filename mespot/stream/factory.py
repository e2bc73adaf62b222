"""One factory for the live pipeline, so `spot-live`, the benchmarks and the tests run the same objects.

source -> CaptureThread -> FrontEnd (the model's own, mespot.stream.frontconfig) -> OnlineEngine ->
CausalPeakPicker -> MessageBus -> sinks, wired into a LivePipeline. The rate and decoding come from
the model's metadata unless a config is given, and a given config must keep the model's rate: a
figure measured by a benchmark then describes what `spot-live` runs with the same model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from mespot.config import Config, ConfigError
from mespot.engine.online import OnlineEngine
from mespot.engine.runtime.metadata import metadata_config, metadata_frontend
from mespot.stream.capture import CaptureThread
from mespot.stream.frontconfig import build_frontend
from mespot.stream.frontend import FrontEnd
from mespot.stream.peakpicker import CausalPeakPicker
from mespot.stream.pipeline import LivePipeline, PipelineObserver, RunSummary
from mespot.stream.sinks import MessageBus, Sink
from mespot.stream.sources import Source, open_source
from mespot.stream.stages import ScoreEngine


def pipeline_config(runtime, config: Config | None = None) -> Config:
    """The config a model runs with: its own (carried in its metadata) unless `config` is given,
    which may change the decoding but not the rate. ConfigError says what is wrong."""
    if config is None:
        try:
            config = metadata_config(runtime.metadata)
        except (KeyError, ConfigError) as exc:
            raise ConfigError(f"the model carries no usable config ({exc}); pass one") from None
    model_fps = float(runtime.metadata.get("fps", config.fps))
    if abs(model_fps - config.fps) > 1e-6:
        raise ConfigError(f"the model runs at {model_fps:g} fps but config {config.name!r} at {config.fps:g} fps; "
                          f"pick a config with the model's rate")
    return config


def model_frontend(runtime, fps: float, overrides: dict[str, Any] | None = None) -> FrontEnd:
    """The front-end the model's features came from (the default one for a model that does not say);
    FrontEndMismatch when `overrides` (explicit user options) contradict it."""
    return build_frontend(metadata_frontend(runtime.metadata), fps=fps, overrides=overrides)


@dataclass
class LiveStream:
    """The objects of one live stream. `run()` streams until the source ends or `pipeline.stop()`;
    `close()` releases the front-end's tracker (sinks belong to the caller)."""

    config: Config
    source: Source
    capture: CaptureThread
    frontend: FrontEnd
    engine: ScoreEngine
    picker: CausalPeakPicker
    bus: MessageBus
    pipeline: LivePipeline

    def run(self) -> RunSummary:
        return self.pipeline.run()

    def close(self) -> None:
        self.frontend.close()

    def __enter__(self) -> "LiveStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def build_pipeline(source: Source | str | int, runtime, *, config: Config | None = None,
                   sinks: Iterable[Sink] = (), stream: str = "stream", realtime: bool = False,
                   capture_policy: str | None = None, frontend_options: dict[str, Any] | None = None,
                   observers: Iterable[PipelineObserver] = (), score_rate_hz: float = 10.0,
                   run: int = 0, extra_status: dict[str, Any] | None = None,
                   engine: ScoreEngine | None = None) -> LiveStream:
    """Assemble the live pipeline for `runtime` (shared, not closed here) on `source`.

    source: an open Source, or a spec for mespot.stream.sources.open_source (opened at the config's
    rate; `realtime` paces a file as a camera would). config: None for the model's own
    (pipeline_config). frontend_options: explicit front-end options (mespot.stream.frontconfig).
    capture_policy: the CaptureThread's (None: its default for the source). run, extra_status: the
    MessageBus's (a supervised stream's restart count and status fields). engine: a ScoreEngine
    in place of an OnlineEngine over `runtime` (a shared engine's client, mespot.serve.shared); the
    runtime still gives the config and the front-end. Raises ConfigError,
    SourceError or FrontEndMismatch before anything runs.
    """
    config = pipeline_config(runtime, config)
    if not isinstance(source, Source):
        source = open_source(source, realtime=realtime, target_fps=config.fps)
    frontend = model_frontend(runtime, config.fps, frontend_options)
    engine = OnlineEngine(runtime) if engine is None else engine
    picker = CausalPeakPicker(config)
    bus = MessageBus(list(sinks), stream=stream, run=run, extra_status=extra_status)
    capture = CaptureThread(source, policy=capture_policy, start=False)     # starts with the run
    pipeline = LivePipeline(capture, frontend, engine, picker, bus, config=config, source=source,
                            score_rate_hz=score_rate_hz, observers=observers)
    return LiveStream(config, source, capture, frontend, engine, picker, bus, pipeline)
