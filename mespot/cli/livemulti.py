"""`spot-live` with several streams: repeated --source/--camera, or --streams FILE.yaml.

The arguments live here (added to spot-live's parser by `add_arguments`) and so does the run
(`run`); mespot/cli/live.py only hands over when `is_multi(args)`. The library is mespot.serve: a
worker per stream (a process, or a Ray actor with --cluster), one bus (a ZeroMQ XSUB/XPUB proxy
at --pub), one dashboard row per stream. One --source or --camera without --cluster is the
single-stream spot-live, unchanged.
"""
from __future__ import annotations

import argparse
import os
import signal
import threading

from mespot.cli.args import at_least
from mespot.cli.modelargs import load_model
from mespot.errors import InputError

RAY_ADDRESS_HINT = "ray (this machine, or RAY_ADDRESS) or ray://HOST:PORT"


class AddInput(argparse.Action):
    """--camera / --source: every use is kept, in order, in `inputs`; the option's own dest keeps
    the last value (what the single-stream path reads)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        inputs = list(getattr(namespace, "inputs", None) or [])
        inputs.append((self.dest, values))
        namespace.inputs = inputs


def add_arguments(parser: argparse.ArgumentParser, group) -> None:
    group.add_argument("--streams", metavar="FILE.yaml",
                       help="several streams from a YAML file: a list of {id, source|camera, realtime, "
                            "image_fps, drop_late} (docs/scaling.md); ids name the streams in every message")
    cluster = parser.add_argument_group("several streams")
    cluster.add_argument("--cluster", metavar="ray|ray://HOST:PORT",
                         help="run each stream as a Ray actor that restarts when it dies (needs "
                              "pip install 'mespot[ray]'): `ray` starts Ray on this machine (or joins the "
                              "cluster in RAY_ADDRESS when set), ray://HOST:PORT joins a cluster. "
                              "Default: a process per stream here")
    cluster.add_argument("--inference", choices=("per-stream", "shared"), default="per-stream",
                         help="per-stream: each stream's worker runs its own model (default); shared: one "
                              "batched engine serves every stream (one runtime, one model call per step for all "
                              "waiting streams; same results), in this process, or with --cluster in a Ray "
                              "actor (on a GPU node with --device cuda)")
    cluster.add_argument("--actor-cpus", type=at_least(float, 0.0, strict=True), default=0.25, metavar="N",
                         help="CPUs Ray reserves for each stream's actor (default 0.25: 8 streams on 2 cores)")
    cluster.add_argument("--max-restarts", type=at_least(int, 0), default=3, metavar="N",
                         help="times a stream's worker (process or Ray actor) that dies is started again, "
                              "resuming after a gap, before its stream is given up (default 3)")
    cluster.add_argument("--bus-in", metavar="ENDPOINT",
                         help="where stream workers connect to the bus (default tcp://127.0.0.1:* for "
                              "processes and local Ray, tcp://0.0.0.0:* when joining a cluster)")


def is_multi(args) -> bool:
    return bool(args.streams) or len(getattr(args, "inputs", None) or []) > 1 or bool(args.cluster)


def check_choice(parser: argparse.ArgumentParser, args) -> None:
    """Exactly one kind of input; options that name one stream are refused with several."""
    inputs = getattr(args, "inputs", None) or []
    kinds = sum([bool(inputs), bool(args.demo), bool(args.streams)])
    if kinds != 1:
        parser.error("give one of: --camera/--source (repeatable), --streams FILE, --demo")
    if is_multi(args):
        if args.stream_id:
            parser.error("--stream-id names one stream; with several, give ids in a --streams file")
        if args.demo:
            parser.error("--demo runs one stream; it cannot be combined with --cluster")


def _specs(args):
    from mespot.serve.specs import assign_ids, load_streams_file

    if args.streams:
        return load_streams_file(args.streams)
    entries = [(args.stream_id, value, {}) if len(args.inputs) == 1 else (None, value, {})
               for _, value in args.inputs]
    return assign_ids(entries)


def _backend(args, specs, job):
    if args.cluster:
        from mespot.serve.cluster import ClusterUnavailable, RayBackend

        try:
            return RayBackend(specs, job, address=args.cluster, actor_cpus=args.actor_cpus,
                              max_restarts=args.max_restarts, shared_engine=args.inference == "shared")
        except ClusterUnavailable as exc:
            raise InputError(str(exc)) from None
    from mespot.serve.supervisor import ProcessBackend

    return ProcessBackend(specs, job, max_restarts=args.max_restarts)


def _bus_in(args) -> str:
    if args.bus_in:
        return args.bus_in
    joining = args.cluster is not None and (args.cluster != "ray" or bool(os.environ.get("RAY_ADDRESS")))
    return "tcp://0.0.0.0:*" if joining else "tcp://127.0.0.1:*"


def run(args, show_ui: bool) -> int:
    """The multi-stream run: 0 when every stream ended cleanly, 1 if one stopped on an error."""
    from rich.console import Console

    from mespot.serve.bus import BusProxy
    from mespot.serve.worker import Job, StreamStartError
    from mespot.stream.sinks import JsonlRecorder, PublishError

    err, out = Console(stderr=True), Console(soft_wrap=True)
    if args.cluster is not None and args.cluster != "ray" and not args.cluster.startswith("ray://"):
        raise InputError(f"--cluster {args.cluster}: expected {RAY_ADDRESS_HINT}")
    specs = _specs(args)
    # Once here: a bad model is one line, not one per stream. With --cluster the model runs on the
    # cluster's nodes (a GPU node's, say), so here it is only read, on this CPU.
    _, runtime, model = load_model(_read_here(args) if args.cluster else args)
    model = model.resolve()
    try:
        recorder = JsonlRecorder(args.record) if args.record is not None else None
        proxy = BusProxy(args.pub, inner=_bus_in(args), hwm=args.hwm)
    except PublishError as exc:
        raise InputError(str(exc)) from None
    from mespot.serve.supervisor import Supervisor

    supervisor = None
    board = None
    server = None
    try:
        inner = proxy.inner_endpoint
        if args.inference == "shared" and not args.cluster:     # with --cluster, an actor (RayBackend)
            from mespot.serve.shared import EngineServer

            runtime.warm_up()
            server = EngineServer(runtime, "tcp://" + _bus_in(args)[len("tcp://"):].rsplit(":", 1)[0] + ":*")
        engine_endpoint = None if server is None else server.endpoint
        if inner.startswith("tcp://0.0.0.0:"):
            from mespot.serve.cluster import advertised_endpoint

            toward = args.cluster if args.cluster != "ray" else os.environ.get("RAY_ADDRESS")
            inner = advertised_endpoint(inner, toward)
            engine_endpoint = engine_endpoint and advertised_endpoint(engine_endpoint, toward)
        job = Job(model=str(model), bus=inner, engine=engine_endpoint, backend=args.backend, device=args.device, precision=args.precision,
                  config=args.config, hwm=args.hwm, score_rate_hz=args.score_rate, realtime=args.realtime,
                  run_streams=tuple(s.id for s in specs))
        backend = _backend(args, specs, job)
        observers = []
        if show_ui:
            from mespot.serve.board import StreamsBoard

            board = StreamsBoard([s.id for s in specs], title=f"spot-live: {len(specs)} streams on {proxy.pub_endpoint}"
                                 f" ({backend.name}) | {args.backend} {model.name}")
            observers.append(board)
        supervisor = Supervisor(specs, backend, proxy, record=recorder, observers=observers)
        with err.status(f"starting {len(specs)} streams ({backend.name}): models, face trackers, sources..."):
            try:
                supervisor.prepare()
            except StreamStartError as exc:
                raise InputError(str(exc)) from None
        if args.wait_subscriber > 0:
            with err.status(f"waiting up to {args.wait_subscriber:g} s for a subscriber on {proxy.pub_endpoint}..."):
                if not supervisor.wait_for_subscriber(args.wait_subscriber):
                    err.print(f"no subscriber after {args.wait_subscriber:g} s; streaming anyway")
        if board is not None:
            board.start()
        restore = _stop_on_signals(supervisor)
        try:
            outcomes = supervisor.run()
            counts = server.counts() if server is not None else backend.engine_counts() if args.cluster else None
        finally:
            restore()
            if board is not None:
                board.stop()
    finally:
        if supervisor is not None:
            supervisor.close()
        if server is not None:
            server.close()
        proxy.close()
        if recorder is not None:
            recorder.on_end()
    _print_summary(outcomes, specs, out)
    if counts and counts["steps"]:
        out.print(f"shared engine: {counts['batched']} pushes in {counts['steps']} steps (mean batch "
                  f"{counts['batched'] / counts['steps']:.2f}, largest {counts['max_batch']})")
    if args.record is not None:
        out.print(f"recorded every message of every stream to {args.record}")
    return 0 if all(o.state == "ended" for o in outcomes.values()) else 1


def _read_here(args):
    """args with the model opened on this machine's CPU (fp32): --cluster runs it elsewhere."""
    backend = "torch" if args.backend == "torch" else "onnx"        # tensorrt builds from the .onnx
    return argparse.Namespace(**{**vars(args), "backend": backend, "device": "cpu", "precision": "fp32"})


def _stop_on_signals(supervisor):
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def request_stop(signum, frame):
        supervisor.stop()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore():
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return restore


def _print_summary(outcomes, specs, out) -> None:
    for spec in specs:
        o = outcomes[spec.id]
        s = o.final_status
        if s is None:
            out.print(f"{spec.id}: {o.state}; no final status was published"
                      + (f" ({o.worker.get('error')})" if o.worker.get("error") else ""))
            continue
        e2e = s["latency_ms"].get("end_to_end") or {}
        out.print(f"{spec.id}: {s['state']}; {s['frames']} frames ({s['valid_frames']} with features), "
                  f"{s['fps']:.1f} fps; intervals: {s['intervals']['micro']} micro, {s['intervals']['macro']} macro; "
                  f"end-to-end ms p50 {e2e.get('p50', float('nan')):.1f} p99 {e2e.get('p99', float('nan')):.1f}; "
                  f"dropped capture {s['dropped']['capture']} publish {s['dropped']['publish']}"
                  + (f"; restarts {o.restarts}" if o.restarts else "")
                  + (f"; error: {s['error']}" if s.get("error") else ""))

