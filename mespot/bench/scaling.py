"""`spot-bench scaling`: streams against workers, and what the bus carries at 10 to 1,000 cameras.

Two kinds of figures, kept apart in the JSON and the plot (docs/scaling.md explains them):

- **measured**: the `spot-bench streams` JSON files given (`--measured`), each one run of the
  multi-stream modes (`spot-live`: a process per stream, `ray`: a Ray actor per stream) with the
  CPUs it could use (`cpus_usable`, e.g. 1 under `taskset -c 0`), and the bus measured here: how
  many realistic messages a second go through the proxy to one Python subscriber that decodes them
  (mespot.client.Subscriber) and to one that only receives them;
- **simulated**: streams = workers x (streams per CPU measured at the most CPUs here), per
  backend; messages and bytes per second = cameras x what one stream publishes (10 `score`
  batches and 1 `status` a second, message sizes from the real encoder).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

SCORE_RATE_HZ = 10.0          # spot-live's default --score-rate
STATUS_RATE_HZ = 1.0
INTERVALS_PER_S = 0.1         # generous: a face rarely shows more than one expression in 10 s
CAMERAS = (10, 100, 1000)
WORKERS = (1, 2, 4, 8, 16, 32, 64)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--measured", type=Path, nargs="*", default=[], metavar="JSON",
                        help="spot-bench streams JSON files of the spot-live and ray modes (any CPU counts)")
    parser.add_argument("--bus-seconds", type=float, default=3.0, metavar="S",
                        help="length of each bus throughput run (default 3 s; 0 skips it)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the figures as JSON")
    parser.add_argument("--plot", type=Path, metavar="OUT.png", help="draw streams against workers and the bus load")


def typical_messages(stream: str = "camera000") -> dict[str, bytes]:
    """One `score` batch (3 frames at 10 Hz), one `status` and one `interval`, as the encoder writes them."""
    from mespot.engine.probs import PROB_COLUMNS
    from mespot.stream.messages import encode
    from mespot.stream.pipeline import STAGES

    probs = [[round(0.123456789 * (k + 1) % 1, 5) for k in range(8)] for _ in range(3)]
    score = {"columns": list(PROB_COLUMNS), "frames": [1000, 1001, 1002], "valid": [True] * 3, "probs": probs}
    stage = {"p50": 12.345, "p95": 23.456, "p99": 34.567, "max": 45.678}
    status = {"state": "running", "time": 1796421252.123456, "uptime_s": 123.456, "frames": 3700, "valid_frames": 3650,
              "fps": 29.998, "latency_ms": {s: stage for s in STAGES}, "dropped": {"capture": 0, "publish": 0},
              "face_present": True, "intervals": {"micro": 3, "macro": 5},
              "source": {"description": "stream rtsp://10.0.0.5/stream1", "live": True, "frames_read": 3700,
                         "frames_out": 3700, "dropped": 0, "repeated": 0, "reconnects": 0, "errors": 0, "gaps": 0,
                         "duplicates": 0, "frozen": 0, "last_frame_age_s": 0.02, "healthy": True},
              "error": None, "run_streams": [f"camera{k:03d}" for k in range(8)], "restarts": 0}
    interval = {"kind": "micro", "type_idx": 2, "onset_frame": 990, "apex_frame": 995, "offset_frame": 1001,
                "onset_time": 1796421251.1, "apex_time": 1796421251.2, "offset_time": 1796421251.3,
                "onset_source_s": 33.0, "apex_source_s": 33.17, "offset_source_s": 33.37, "score": 0.412345,
                "emitted_time": 1796421251.5, "delay_ms": 201.234}
    return {t: encode(t, stream, 12345, b) for t, b in (("score", score), ("status", status), ("interval", interval))}


def per_camera_load() -> dict:
    sizes = {t: len(p) for t, p in typical_messages().items()}
    msgs = SCORE_RATE_HZ + STATUS_RATE_HZ + INTERVALS_PER_S
    bytes_s = SCORE_RATE_HZ * sizes["score"] + STATUS_RATE_HZ * sizes["status"] + INTERVALS_PER_S * sizes["interval"]
    return {"message_bytes": sizes, "messages_per_s": msgs, "bytes_per_s": round(bytes_s, 1)}


def _blast(endpoint: str, stream: str, seconds: float, sent) -> None:
    """A publisher process: realistic messages (score, status alternating 10:1) as fast as the bus takes them."""
    import zmq

    from mespot.stream.messages import routing_key

    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.SNDHWM, 1000)
    sock.setsockopt(zmq.XPUB_NODROP, 1)        # wait at the high-water mark instead of dropping
    sock.connect(endpoint)
    while not sock.poll(100):                 # the proxy forwards the subscriber's subscription
        pass
    sock.recv()
    key = routing_key("score", stream)
    payloads = [typical_messages(stream)["score"]]
    n, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(100):
            sock.send_multipart([key, payloads[n % len(payloads)]])      # waits at the HWM (NODROP)
            n += 1
    sent.put(n)
    sock.close(linger=2000)
    ctx.term()


def bus_throughput(seconds: float, publishers: int = 4, decode: bool = True) -> dict:
    """Messages a second through the proxy to ONE subscriber (decoding JSON, or only receiving)."""
    import zmq

    from mespot.serve.bus import BusProxy
    from mespot.stream.messages import decode as decode_message

    payload = typical_messages()["score"]          # the same size for every stream
    got = 0
    with BusProxy("tcp://127.0.0.1:*") as bus:
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 10000)
        sub.connect(bus.pub_endpoint)
        sub.setsockopt(zmq.SUBSCRIBE, b"score")
        spawn = mp.get_context("spawn")
        sent = spawn.Queue()
        procs = [spawn.Process(target=_blast, args=(bus.inner_endpoint, f"camera{k:03d}", seconds, sent), daemon=True)
                 for k in range(publishers)]
        for p in procs:
            p.start()
        first = None
        try:
            while True:
                if not sub.poll(3000):
                    break
                key, body = sub.recv_multipart()
                if first is None:
                    first = time.monotonic()
                if decode:
                    decode_message(key, body)
                got += 1
            last = time.monotonic() - 3.0
            total_sent = sum(sent.get(timeout=30) for _ in procs)
        finally:
            for p in procs:
                p.join(10)
                if p.is_alive():
                    p.terminate()
            sub.close(linger=0)
            ctx.term()
    elapsed = max(last - (first or last), 1e-9)
    return {"publishers": publishers, "decode": decode, "sent": total_sent, "received": got,
            "messages_per_s": round(got / elapsed), "megabytes_per_s": round(got * len(payload) / elapsed / 1e6, 2)}


def measured_points(paths: list[Path]) -> list[dict]:
    points = []
    for path in paths:
        result = json.loads(path.read_text())
        if "modes" not in result:          # --inference-only results: no camera streams to place
            continue
        if result.get("min_streams_tried", 1) > 1:    # a --min run continues another; its counts start there
            continue
        cpus = result.get("cpus_usable") or result["machine"]["cores"]
        for mode, m in result["modes"].items():
            trials = m["trials"]
            loads = [t["load_avg"][0] for t in trials if t.get("load_avg")]
            points.append({"file": str(path), "mode": mode, "cpus": cpus, "max_streams": m["max_streams"],
                           "max_streams_steady": m["max_streams_steady"], "limit_reached": m["limit_reached"],
                           "repeats": max((len(t.get("repeats", ())) for t in trials), default=0) or 1,
                           "load_1min": [min(loads), max(loads)] if loads else
                           [result["machine"]["load_avg"][0], result.get("load_avg_end", [0])[0]]})
    return points


def simulate(points: list[dict]) -> dict:
    """streams(workers) = workers x streams per CPU at the most CPUs measured (the run with the
    most repeats per N, then the lowest load among those), per mode."""
    curves = {}
    for mode in sorted({p["mode"] for p in points}):
        # At the most CPUs measured, the most repeated run, then the least disturbed one (lowest
        # peak load during its trials: the streams themselves raise it, so only among equals).
        best = min((p for p in points if p["mode"] == mode),
                   key=lambda p: (-p["cpus"], -p.get("repeats", 1), (p["load_1min"] or [0, 0])[1]))
        per_cpu = best["max_streams_steady"] / best["cpus"]
        curves[mode] = {"per_cpu": per_cpu, "from": best["file"], "limit_reached": best["limit_reached"],
                        "streams": {w: int(w * per_cpu) for w in WORKERS}}
    return curves


def at_scale(load: dict, curves: dict, bus: dict) -> list[dict]:
    rows = []
    decode_rate = bus.get("decode", {}).get("messages_per_s")
    for cams in CAMERAS:
        msgs = cams * load["messages_per_s"]
        row = {"cameras": cams, "messages_per_s": round(msgs), "megabytes_per_s": round(cams * load["bytes_per_s"] / 1e6, 2),
               "gpu_batch_per_step": cams}
        if decode_rate:
            row["python_subscribers_needed"] = round(msgs / decode_rate, 2)
        for mode, c in curves.items():
            if c["per_cpu"] > 0:
                row[f"cpus_{mode}"] = round(cams / c["per_cpu"])
        rows.append(row)
    return rows


def plot(path: Path, points: list[dict], curves: dict, load: dict, bus: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = {"spot-live": "tab:blue", "ray": "tab:orange", "process": "tab:green", "thread": "tab:grey"}
    for mode, c in curves.items():
        w = list(c["streams"])
        left.plot(w, [c["streams"][k] for k in w], "--", color=colours.get(mode), alpha=0.7,
                  label=f"{mode}: simulated ({c['per_cpu']:.1f} streams/CPU)")
    for mode in curves:
        mine = sorted((p for p in points if p["mode"] == mode), key=lambda p: p["cpus"])
        loads = [x for p in mine if p["load_1min"] for x in p["load_1min"]]
        load_text = f", load {min(loads):.1f}-{max(loads):.1f}" if loads else ""
        left.plot([p["cpus"] for p in mine], [p["max_streams_steady"] for p in mine], "o", ms=7,
                  color=colours.get(mode), label=f"{mode}: measured here{load_text}")
    from matplotlib.ticker import FuncFormatter

    left.set_xscale("log", base=2)
    left.set_yscale("log", base=2)
    for axis in (left.xaxis, left.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    left.set_xlabel("workers (CPU cores)")
    left.set_ylabel("30 fps 640x480 streams without drops")
    left.set_title("streams against workers (one node)")
    left.legend(fontsize=7)
    left.grid(alpha=0.3, which="both")
    cams = [1, 10, 100, 1000, 10000]
    right.plot(cams, [c * load["messages_per_s"] for c in cams], color="black", label="bus messages/s (simulated)")
    for key, label in (("decode", "one Python subscriber, decoding (measured)"),
                       ("raw", "one subscriber, receive only (measured)")):
        if key in bus:
            right.axhline(bus[key]["messages_per_s"], ls=":", color="tab:red" if key == "decode" else "tab:purple",
                          label=label)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("cameras")
    right.set_ylabel("messages per second")
    right.set_title("the bus: one proxy, one subscriber")
    right.legend(fontsize=7)
    right.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def run(args: argparse.Namespace) -> int:
    from mespot.bench.machine import describe_machine

    missing = [str(p) for p in args.measured if not p.is_file()]
    if missing:
        print(f"spot-bench scaling: --measured {missing[0]}: no such file", file=sys.stderr)
        return 2
    if args.plot is not None and args.plot.suffix.lower() != ".png":
        print(f"spot-bench scaling: --plot wants a .png file, got {args.plot}", file=sys.stderr)
        return 2
    load = per_camera_load()
    bus = {}
    if args.bus_seconds > 0:
        bus["decode"] = bus_throughput(args.bus_seconds, decode=True)
        bus["raw"] = bus_throughput(args.bus_seconds, decode=False)
    points = measured_points(args.measured)
    curves = simulate(points) if points else {}
    result = {"bench": "scaling", "machine": describe_machine(), "per_camera": load, "bus_measured": bus,
              "measured": points, "simulated": curves, "at_scale": at_scale(load, curves, bus)}
    print(f"one camera: {load['messages_per_s']:g} messages/s, {load['bytes_per_s'] / 1000:.1f} kB/s "
          f"(message bytes {load['message_bytes']})")
    for key, b in bus.items():
        print(f"bus, {key}: {b['messages_per_s']} messages/s ({b['megabytes_per_s']} MB/s) to one subscriber "
              f"({b['received']} received; the proxy dropped the rest of the {b['sent']} sent, as it does for a "
              f"subscriber that cannot keep up)")
    for mode, c in curves.items():
        print(f"{mode}: {c['per_cpu']:.2f} streams per CPU (measured); simulated {c['streams']}")
    for row in result["at_scale"]:
        print(f"{row['cameras']} cameras: {row}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        plot(args.plot, points, curves, load, bus)
        print(f"wrote {args.plot}")
    return 0
