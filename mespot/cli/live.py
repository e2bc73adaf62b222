"""`spot-live`: watch a face and publish every macro- and micro-expression interval over ZeroMQ.

Capture -> face landmarks -> aligned crop -> optical flow -> ROI features -> AUW-GCN (online, 5-frame
delay) -> causal peak-picker -> ZeroMQ PUB (+ optional JSONL recording). Ctrl-C or the end of a file
decides and publishes what is pending, sends a final status `ended` and exits 0. Bad arguments, a
missing model file, a port in use or a source that cannot be opened: one line on stderr, exit 2.
"""
from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from contextlib import ExitStack
from pathlib import Path

from mespot.cli import livemulti, liveviews
from mespot.cli.args import at_least
from mespot.cli.modelargs import load_model
from mespot.engine.runtime.base import FORMATS
from mespot.engine.runtime.precision import PRECISIONS
from mespot.errors import InputError
from mespot.stream.sinks import DEFAULT_ENDPOINT, DEFAULT_HWM

MATCH_IOU = 0.5      # a planted interval counts as found at IoU >= 0.5 (MEGC rule, inclusive frames)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spot-live", description=__doc__.splitlines()[0].replace("`", ""),
        epilog="Subscribe with `spot-sub` or any ZeroMQ SUB socket (docs/protocol.md). "
               "Example: spot-live --camera 0 --record run.jsonl. Several streams, one endpoint: "
               "spot-live --camera 0 --source rtsp://cam/1, or --streams FILE.yaml (docs/scaling.md)")
    what = p.add_argument_group("what to watch (one of)")
    what.add_argument("--camera", type=at_least(int, 0), action=livemulti.AddInput, metavar="N",
                      help="camera index (e.g. 0); repeat, or mix with --source, for several streams")
    what.add_argument("--source", metavar="URL|FILE|DIR", action=livemulti.AddInput,
                      help="an rtsp/http(s) URL, a video file, or a folder of images (natural order); "
                           "repeat for several streams")
    what.add_argument("--demo", action="store_true",
                      help="generate a clip with planted expressions (public-domain face), stream it "
                           "(at its own pace while the dashboard shows), and compare what was found "
                           "with what was planted; no camera needed")
    livemulti.add_arguments(p, what)
    p.add_argument("--model", type=Path, metavar="PATH",
                   help="model file: .onnx (onnx, tensorrt) or .pt checkpoint (torch); default: the shipped model")
    p.add_argument("--backend", choices=tuple(FORMATS), default="onnx",
                   help="runtime (default onnx: ONNX Runtime, no torch needed)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs (default cpu)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="model arithmetic: fp32 (default; IEEE float32, no TF32 on GPUs), tf32 (cuda), fp16 or "
                        "bf16 (torch; fp16 also tensorrt); anything but fp32 prints its measured error at start")
    p.add_argument("--config", metavar="NAME|PATH",
                   help="decoding/rate config: a name in configs/ (live, casme2, samm) or a YAML path "
                        "(default: the config the model was exported with)")
    p.add_argument("--pub", default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
                   help=f"ZeroMQ endpoint to publish on, tcp://HOST:PORT or ipc://PATH (default {DEFAULT_ENDPOINT})")
    p.add_argument("--hwm", type=at_least(int, 1), default=DEFAULT_HWM, metavar="N",
                   help=f"messages queued per subscriber before ZeroMQ drops its messages (default {DEFAULT_HWM})")
    p.add_argument("--record", type=Path, metavar="FILE.jsonl",
                   help="also write every published message, one JSON object per line")
    p.add_argument("--no-ui", action="store_true", help="no live dashboard (also off when stdout is not a terminal)")
    p.add_argument("--realtime", action="store_true",
                   help="play a file or folder at its own frame rate, as a camera would deliver it")
    p.add_argument("--stream-id", metavar="ID", help="name carried by every message (default: from the source)")
    p.add_argument("--score-rate", type=at_least(float, 0.0), default=10.0, metavar="HZ",
                   help="how often per-frame probabilities are published, batched (default 10; 0 = never)")
    p.add_argument("--wait-subscriber", type=at_least(float, 0.0), default=0.0, metavar="S",
                   help="wait up to S seconds for a subscriber before streaming, so it misses nothing")
    p.add_argument("--demo-seed", type=int, default=0, metavar="N", help="seed of the --demo clip (default 0)")
    p.add_argument("--verbose", action="store_true",
                   help="also show what the native libraries print (MediaPipe, TensorFlow Lite, FFmpeg, OpenCV)")
    liveviews.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from mespot.cli.quiet import native_quiet

    parser = build_parser()
    args = parser.parse_args(argv)
    livemulti.check_choice(parser, args)
    try:
        with native_quiet(not args.verbose):
            if livemulti.is_multi(args):
                liveviews.refuse_multi(args)
                return livemulti.run(args, _show_ui(args))
            return _run(args)
    except InputError as exc:
        print(f"spot-live: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spot-live: interrupted", file=sys.stderr)
        return 130


def _open_sinks(args, stack: ExitStack):
    from mespot.stream.sinks import JsonlRecorder, PublishError, ZmqPublisher

    try:
        publisher = ZmqPublisher(args.pub, hwm=args.hwm)
        stack.callback(publisher.close)
        sinks = [publisher]
        if args.record is not None:
            recorder = JsonlRecorder(args.record)
            stack.callback(recorder.close)
            sinks.append(recorder)
    except PublishError as exc:
        raise InputError(str(exc)) from None
    return publisher, sinks


def _show_ui(args) -> bool:
    return not args.no_ui and sys.stdout.isatty()


def _stream_id(args, spec) -> str:
    from mespot.serve.specs import derived_id
    from mespot.stream.messages import check_stream_id

    if args.stream_id:
        try:
            return check_stream_id(args.stream_id)
        except ValueError as exc:
            raise InputError(f"--stream-id: {exc}") from None
    if args.demo:
        return f"demo_seed{args.demo_seed}"
    return derived_id(args.camera if args.camera is not None else str(spec))


def _run(args) -> int:
    from rich.console import Console

    err = Console(stderr=True)
    out = Console(soft_wrap=True)
    with ExitStack() as stack:
        liveviews.check(args)
        publisher, sinks = _open_sinks(args, stack)       # first: a busy port fails before slow loading
        config, runtime, model_path = load_model(args)
        measured = runtime.describe().get("precision_error")
        if measured is not None and measured["precision"] == "fp32":   # a reduced one is logged as a warning
            err.print(f"{runtime.name} on {runtime.device} in {measured['precision']}: probabilities within "
                      f"{measured['max_abs_prob']:.2g} of fp32 on CPU (measured at start)")
        planted = None
        if args.demo:
            from mespot.synth.demo import make_demo_clip

            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="mespot-demo-"))
            with err.status("rendering the demo clip (planted expressions on a public-domain face)..."):
                spec, planted = make_demo_clip(folder, seed=args.demo_seed)
            liveviews.write_demo_gt(args, spec)
        else:
            spec = args.camera if args.camera is not None else args.source
        summary, stream, views = _stream(args, config, runtime, model_path, spec, publisher, sinks, err, stack)
        _print_summary(summary, stream, args, out)
        if planted is not None:
            _print_demo(planted, summary.intervals, out)
        views.linger(err)
        return 0 if summary.state == "ended" else 1


def _stream(args, config, runtime, model_path, spec, publisher, sinks, err, stack: ExitStack):
    from mespot.stream.factory import build_pipeline
    from mespot.stream.frontconfig import FrontEndMismatch
    from mespot.stream.sources import SourceError, open_source
    from mespot.stream.tracker import TrackerError

    try:
        # A person watching the demo's dashboard sees it at the clip's own pace.
        realtime = args.realtime or (args.demo and (_show_ui(args) or liveviews.wants_pacing(args)))
        source = open_source(spec, realtime=realtime, target_fps=config.fps)
    except SourceError as exc:
        raise InputError(str(exc)) from None
    stream = _stream_id(args, spec)
    observers = []
    dashboard = None
    if _show_ui(args):
        from mespot.stream.dashboard import Dashboard

        dashboard = Dashboard(title=f"spot-live {stream}: {source.describe()} | {runtime.name} {model_path.name}",
                              thresholds={k: config.decoding(k).apex_threshold for k in ("micro", "macro")})
        observers.append(dashboard)
    with err.status(f"loading the face tracker and warming up {runtime.name}..."):
        try:
            live = build_pipeline(source, runtime, config=config, sinks=sinks, stream=stream,
                                  score_rate_hz=args.score_rate, observers=observers)
        except FrontEndMismatch as exc:
            source.close()
            raise InputError(f"model {model_path}: {exc}") from None
        except TrackerError as exc:
            source.close()
            raise InputError(f"cannot build the face tracker: {exc}") from None
        runtime.warm_up()
    pipeline = live.pipeline
    views = liveviews.open_views(args, stream=stream, config=config, frontend=live.frontend.config(), err=err)
    stack.callback(views.shutdown)
    pipeline.observers += views.observers
    if args.wait_subscriber > 0:
        with err.status(f"waiting up to {args.wait_subscriber:g} s for a subscriber on {args.pub}..."):
            if not publisher.wait_for_subscriber(args.wait_subscriber, stream=stream):
                err.print(f"no subscriber after {args.wait_subscriber:g} s; streaming anyway")
    if dashboard is not None:
        dashboard.start()
    failure: list[BaseException] = []

    def work():
        try:
            pipeline.run()
        except BaseException as exc:      # reported below; the pipeline already told the sinks
            failure.append(exc)

    worker = threading.Thread(target=work, name="mespot-pipeline")
    # Handlers stay until the summary is printed: a late signal must not cut that short either.
    stack.callback(_stop_on_signals(pipeline))
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    finally:
        if dashboard is not None:
            dashboard.stop()
        live.close()
        views.close(err)
    if failure:
        exc = failure[0]
        err.print(f"[red]spot-live: stopped by an error: {type(exc).__name__}: {exc}[/red]")
    return pipeline.summary, stream, views


def _stop_on_signals(pipeline):
    """Ctrl-C / SIGTERM ask the pipeline to finish cleanly; a second one also stops waiting for a
    source blocked in a read, so the run ends at once. Either way the loop still publishes (and
    records) its final status, so the last message is `ended` whatever the number of signals.

    A handler, not a caught KeyboardInterrupt: the exception could land anywhere in the waiting
    code (even inside Thread.join) and abandon the loop with its sinks. Returns a function that
    restores the previous handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    count = [0]

    def request_stop(signum, frame):
        count[0] += 1
        pipeline.stop(wait_for_source=count[0] == 1)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore():
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return restore


def _print_summary(summary, stream, args, err) -> None:
    e2e = summary.latency_ms.get("end_to_end", {})
    counts = {k: sum(i.kind == k for i in summary.intervals) for k in ("micro", "macro")}
    err.print(f"{stream}: {summary.state}; {summary.frames} frames ({summary.valid_frames} with features) "
              f"in {summary.seconds:.1f} s, {summary.fps:.1f} fps; intervals: {counts['micro']} micro, "
              f"{counts['macro']} macro; end-to-end ms p50 {e2e.get('p50', float('nan')):.1f} "
              f"p99 {e2e.get('p99', float('nan')):.1f}; dropped capture {summary.dropped.get('capture', 0)} "
              f"publish {summary.dropped.get('publish', 0)}")
    if args.record is not None:
        err.print(f"recorded every message to {args.record}")


def demo_matches(planted, found) -> list[tuple[object, object | None, float]]:
    """For each planted interval, the found one of the same kind with the highest IoU (MEGC rule)."""
    from mespot.intervals import iou

    rows = []
    for p in planted:
        best, best_iou = None, 0.0
        for f in found:
            if f.kind == p.kind:
                value = iou((p.onset, p.offset), (f.onset, f.offset), "megc")
                if value > best_iou:
                    best, best_iou = f, value
        rows.append((p, best, best_iou))
    return rows


def _print_demo(planted, found, err) -> None:
    from rich.table import Table

    table = Table(title="demo: planted vs found (feature index = frame number)")
    for col in ("kind", "planted onset-apex-offset", "found onset-apex-offset", "score", "IoU", "match"):
        table.add_column(col)
    rows = demo_matches(planted, found)
    for p, f, value in rows:
        table.add_row(p.kind, f"{p.onset}-{p.apex}-{p.offset}",
                      "-" if f is None else f"{f.onset}-{f.apex}-{f.offset}",
                      "-" if f is None else f"{f.score:.3f}", f"{value:.2f}",
                      "yes" if value >= MATCH_IOU else "no")
    used = {id(f) for _, f, v in rows if f is not None and v >= MATCH_IOU}
    extra = [f for f in found if id(f) not in used]
    err.print(table)
    err.print(f"{sum(v >= MATCH_IOU for _, _, v in rows)}/{len(planted)} planted expressions found "
              f"(IoU >= {MATCH_IOU}); {len(extra)} other interval(s) reported"
              + (": " + ", ".join(f"{f.kind} {f.onset}-{f.offset}" for f in extra) if extra else ""))


if __name__ == "__main__":
    sys.exit(main())
