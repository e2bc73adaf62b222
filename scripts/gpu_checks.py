"""Every GPU check of the GPU path (docs/gpu.md) in one run: fp32 parity, push latency, CUDA graphs, stream capacity.

Run from the repository root on the GPU machine (about 3-4 minutes on an H200):

    PYTHONPATH=. python scripts/gpu_checks.py --json bench/gpu.json

It imports only the source tree plus numpy, torch (a CUDA build) and onnxruntime (CPU is enough): no
mediapipe, OpenCV, ZeroMQ or PyYAML. `--device cpu` runs the same checks on CPU (how it is tested
where there is no GPU; the GPU-only ones are then reported as skipped). Every check runs even if an
earlier one fails; a failure is printed and kept in the JSON with its error.

Checks (targets: docs/gpu.md):
  parity     torch fp32 on the device against ONNX Runtime on CPU, shipped model, features at its
             input scale with gaps: offline, online (OnlineEngine per stream) and many-stream
             (MultiStreamEngine); target max |prob diff| <= 1e-5. Beside it, for contrast, the
             same with TF32 allowed, and the measured error of tf32/fp16/bf16 (describe()).
  graphs     CUDA-graph replay against eager on the same padded batch, bucket by bucket: must be
             bitwise equal.
  latency    one stream's OnlineEngine.push at steady state, p50/p99, CUDA graphs on and off, and
             ONNX Runtime CPU beside them; target p50 <= 0.15 ms with graphs. Also the model alone.
  capacity   inference-only 30 fps streams (mespot.bench.capacity: one MultiStreamEngine, step p99
             within 1/30 s) for torch on the device and ONNX Runtime on CPU, and the numpy
             IncrementalEngine on CPU; target >= 50,000 on an H200.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

PARITY_TARGET = 1e-5
PUSH_P50_TARGET_MS = 0.15
STREAMS_TARGET = 50_000


def features_at_input_scale(meta, shape, seed):
    rng = np.random.default_rng(seed)
    mean = np.asarray(meta["input_mean"], np.float32)
    std = np.asarray(meta["input_std"], np.float32)
    return (rng.normal(0.0, 1.0, (*shape, 12, 2)) * std + mean).astype(np.float32)


def gaps(rng, n, t):
    valid = rng.random((n, t)) > 0.04
    valid[:, :3] = True
    return valid


def max_diff(a, b):
    both = ~np.isnan(a) & ~np.isnan(b)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return float("inf")
    return float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0


def online_table(engine, features, valid):
    out = np.full((len(features), 8), np.nan, np.float32)
    for i in range(len(features)):
        for j, row in engine.push(i, features[i], bool(valid[i])):
            out[j] = row
    for j, row in engine.flush():
        out[j] = row
    return out


def multistream_tables(runtime, features, valid):
    from mespot.engine.multistream import MultiStreamEngine

    n, t = valid.shape
    engine = MultiStreamEngine(runtime, capacity=n)
    slots = engine.join(n)
    out = np.full((n, t, 8), np.nan, np.float32)
    for i in range(t):
        rows = engine.push(slots, np.full(n, i), features[:, i], valid[:, i])
        out[rows.stream, rows.index] = rows.probs
    rows = engine.leave(slots)
    out[rows.stream, rows.index] = rows.probs
    return out


def check_parity(ctx):
    from mespot.engine.online import OnlineEngine, offline_probs

    onnx_cpu, torch_dev = ctx["onnx_cpu"], ctx["torch"]
    rng = np.random.default_rng(1)
    n_seq, t = (2, 200) if ctx["quick"] else (3, 900)
    feats = features_at_input_scale(onnx_cpu.metadata, (n_seq, t), 1)
    valid = gaps(rng, n_seq, t)
    reference = np.stack([offline_probs(onnx_cpu, feats[k], valid[k]) for k in range(n_seq)])
    offline = np.stack([offline_probs(torch_dev, feats[k], valid[k]) for k in range(n_seq)])
    online = np.stack([online_table(OnlineEngine(torch_dev), feats[k], valid[k]) for k in range(n_seq)])
    n_multi, t_multi = (8, 60) if ctx["quick"] else (64, 300)
    mf = features_at_input_scale(onnx_cpu.metadata, (n_multi, t_multi), 2)
    mv = gaps(rng, n_multi, t_multi)
    multi_ref = np.stack([offline_probs(onnx_cpu, mf[k], mv[k]) for k in range(n_multi)])
    multi = multistream_tables(torch_dev, mf, mv)
    out = {"device": ctx["device"], "offline_max_abs_prob": max_diff(offline, reference),
           "online_max_abs_prob": max_diff(online, reference),
           "multistream_max_abs_prob": max_diff(multi, multi_ref),
           "sequences": [n_seq, t], "multistream": [n_multi, t_multi], "target": PARITY_TARGET,
           "runtime_precision_error": torch_dev.describe().get("precision_error")}
    out["pass"] = max(out["offline_max_abs_prob"], out["online_max_abs_prob"],
                      out["multistream_max_abs_prob"]) <= PARITY_TARGET
    reduced = {}
    for precision in ("tf32", "fp16", "bf16"):
        try:
            rt = ctx["open_torch"](precision=precision)
            rec = dict(rt.describe().get("precision_error") or {})
            rec["offline_max_abs_prob_vs_onnx_cpu"] = max_diff(
                np.stack([offline_probs(rt, feats[k], valid[k]) for k in range(n_seq)]), reference)
            reduced[precision] = rec
        except (ValueError, RuntimeError) as exc:
            reduced[precision] = {"refused": str(exc).splitlines()[0]}
    out["reduced_precision"] = reduced
    out["onnx_cuda"] = check_onnx_cuda(ctx, feats, valid, reference)
    return out


def check_onnx_cuda(ctx, feats, valid, reference):
    """ONNX Runtime's own CUDA provider, where this onnxruntime has one (onnxruntime-gpu)."""
    import onnxruntime

    from mespot.engine.online import offline_probs
    from mespot.engine.runtime import open_runtime

    if ctx["device"] != "cuda" or "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return {"skipped": "no CUDAExecutionProvider in this onnxruntime (onnxruntime-gpu not installed)"}
    rt = open_runtime(ctx["onnx_path"], "onnx", "cuda")
    got = np.stack([offline_probs(rt, feats[k], valid[k]) for k in range(len(feats))])
    diff = max_diff(got, reference)
    return {"offline_max_abs_prob": diff, "pass": diff <= PARITY_TARGET,
            "runtime_precision_error": rt.describe().get("precision_error"), "providers": rt.describe()["providers"]}


def check_graphs(ctx):
    from mespot.engine.runtime.graphs import bucket_plan

    rt = ctx["torch"]
    if rt.graphs is None:
        return {"skipped": f"no CUDA graphs on {ctx['device']}"}
    rng = np.random.default_rng(3)
    results = {}
    for b in (1, 3, 4, 16, 100, 1000, 5000)[:4 if ctx["quick"] else None]:
        bucket = bucket_plan(b)[0][2]
        x = np.zeros((bucket, rt.window, 12, 2), np.float32)
        x[:b] = features_at_input_scale(rt.metadata, (b, rt.window), int(rng.integers(1 << 30)))
        replayed = rt.infer(x[:b])
        eager = rt._eager(x)[:b]
        results[str(b)] = {"bucket": bucket, "bitwise_equal": bool(np.array_equal(replayed, eager)),
                           "max_abs_logit": float(np.abs(replayed - eager).max())}
    return {"batches": results, "pass": all(r["bitwise_equal"] for r in results.values()),
            "captured": list(rt.graphs.captured)}


def time_pushes(runtime, pushes, seed=4):
    from mespot.engine.online import OnlineEngine

    engine = OnlineEngine(runtime)
    feats = features_at_input_scale(runtime.metadata, (1, pushes + 20), seed)[0]
    times = []
    for i in range(pushes + 20):
        t0 = time.perf_counter()
        engine.push(i, feats[i], True)
        if i >= 20:                                 # steady state: every push is a full window
            times.append((time.perf_counter() - t0) * 1e3)
    return summary(times)


def time_model(runtime, batch, calls):
    x = features_at_input_scale(runtime.metadata, (batch, runtime.window), 5)
    runtime.infer(x)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        runtime.infer(x)
        times.append((time.perf_counter() - t0) * 1e3)
    return summary(times)


def summary(times_ms):
    a = np.asarray(times_ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 4), "p99_ms": round(float(np.percentile(a, 99)), 4),
            "mean_ms": round(float(a.mean()), 4), "n": int(a.size)}


def check_latency(ctx):
    pushes = ctx["pushes"]
    out = {"onnx_cpu_push": time_pushes(ctx["onnx_cpu_1thread"], pushes)}
    eager = ctx["open_torch"](cuda_graphs=False) if ctx["device"] == "cuda" else ctx["torch"]
    out["torch_eager_push"] = time_pushes(eager, pushes)
    out["torch_eager_model_1"] = time_model(eager, 1, pushes)
    if ctx["torch"].graphs is not None:
        out["torch_graph_push"] = time_pushes(ctx["torch"], pushes)
        out["torch_graph_model_1"] = time_model(ctx["torch"], 1, pushes)
        out["torch_graph_model_16384"] = time_model(ctx["torch"], 1024 if ctx["quick"] else 16384, 50)
        out["pass"] = out["torch_graph_push"]["p50_ms"] <= PUSH_P50_TARGET_MS
    out["target_p50_ms"] = PUSH_P50_TARGET_MS
    return out


def check_capacity(ctx):
    import functools

    from mespot.bench.capacity import find_capacity, measure_step
    from mespot.engine.incremental import IncrementalEngine, IncrementalWeights

    from mespot.engine.checkpoint import load_checkpoint

    weights = IncrementalWeights.from_model(load_checkpoint(ctx["checkpoint"]).eval())
    incremental = functools.partial(measure_step, make_engine=lambda n: IncrementalEngine(weights, capacity=n))
    out = {}
    for name, rt, budget, measure in (("torch:" + ctx["device"], ctx["torch"], ctx["budget"], measure_step),
                                      ("onnx:cpu", ctx["onnx_cpu_all"], ctx["budget"] / 2, measure_step),
                                      ("incremental:cpu", ctx["onnx_cpu_all"], ctx["budget"] / 2, incremental)):
        t0 = time.monotonic()
        found = find_capacity(rt, start=16 if ctx["quick"] else 256, steps=5 if ctx["quick"] else 30, budget_s=budget,
                              measure=measure, progress=lambda t, n=name: print(
            f"    {n}: {t['streams']:>7} streams: step p99 {t['step_p99_ms']} ms (model {t['model_mean_ms']}, "
            f"staging {t['staging_mean_ms']}) {'ok' if t['carried'] else 'missed'}", flush=True))
        found["seconds"] = round(time.monotonic() - t0, 1)
        out[name] = found
    out["target"] = STREAMS_TARGET
    if ctx["device"] == "cuda":
        out["pass"] = out["torch:cuda"]["max_streams"] >= STREAMS_TARGET
    return out


def machine(device):
    import onnxruntime
    import torch

    facts = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
             "onnxruntime": onnxruntime.__version__, "cpu_cores": os.cpu_count(), "device": device,
             "load_avg": [round(v, 2) for v in os.getloadavg()], "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if device == "cuda":
        facts["gpu"] = torch.cuda.get_device_name()
        facts["cuda"] = torch.version.cuda
    return facts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--json", type=Path, help="write every figure here (e.g. bench/gpu.json)")
    parser.add_argument("--checkpoint", type=Path, help="default: the shipped mespot/models/default.pt")
    parser.add_argument("--onnx", type=Path, help="default: the shipped mespot/models/default.onnx")
    parser.add_argument("--quick", action="store_true", help="short latency and capacity runs (a smoke test)")
    args = parser.parse_args(argv)

    import torch

    from mespot.engine.runtime import open_runtime
    from mespot.models import default_model_path

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_checks: torch.cuda.is_available() is False; use --device cpu for a CPU dry run", file=sys.stderr)
        return 2
    ckpt = args.checkpoint or default_model_path("torch")
    onnx_path = args.onnx or default_model_path("onnx")

    def open_torch(precision="fp32", cuda_graphs=None):
        return open_runtime(ckpt, "torch", args.device, precision=precision,
                            **({"cuda_graphs": cuda_graphs} if cuda_graphs is not None else {}))

    t_start = time.monotonic()
    ctx = {"device": args.device, "open_torch": open_torch, "torch": open_torch(), "checkpoint": ckpt, "onnx_path": onnx_path,
           "onnx_cpu": open_runtime(onnx_path, "onnx", "cpu", threads=1),
           "onnx_cpu_1thread": open_runtime(onnx_path, "onnx", "cpu", threads=1),
           "onnx_cpu_all": open_runtime(onnx_path, "onnx", "cpu", threads=None),
           "pushes": 100 if args.quick else 3000, "budget": 2.0 if args.quick else 75.0, "quick": args.quick}
    ctx["torch"].warm_up()
    result = {"script": "scripts/gpu_checks.py", "machine": machine(args.device),
              "models": {"checkpoint": str(ckpt), "onnx": str(onnx_path)}, "checks": {}}
    for name, check in (("parity", check_parity), ("graphs", check_graphs), ("latency", check_latency),
                        ("capacity", check_capacity)):
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        try:
            result["checks"][name] = check(ctx)
        except Exception as exc:            # reported and kept: one failed check must not lose the others
            traceback.print_exc()
            result["checks"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        result["checks"][name]["seconds"] = round(time.monotonic() - t0, 1)
    result["seconds"] = round(time.monotonic() - t_start, 1)
    print_summary(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def print_summary(result):
    c = result["checks"]
    m = result["machine"]
    print(f"\n== summary ({m['device']}: {m.get('gpu', 'CPU')}, torch {m['torch']}, numpy {m['numpy']}, "
          f"Python {m['python']}; {result['seconds']} s)")

    def verdict(check):
        return {True: "PASS", False: "MISS"}.get(check.get("pass"), "n/a")

    p = c.get("parity", {})
    if "error" in p:
        print(f"parity: ERROR {p['error']}")
    else:
        print(f"parity fp32 vs ONNX CPU (<= {PARITY_TARGET:g}): offline {p['offline_max_abs_prob']:.2g}, online "
              f"{p['online_max_abs_prob']:.2g}, many-stream {p['multistream_max_abs_prob']:.2g}: {verdict(p)}")
        oc = p.get("onnx_cuda", {})
        print("  onnx CUDA provider: " + (oc.get("skipped") or f"max |prob diff| {oc['offline_max_abs_prob']:.2g}: "
                                          f"{verdict(oc)}"))
        for k, v in p.get("reduced_precision", {}).items():
            print(f"  {k}: " + (v["refused"] if "refused" in v else
                                f"max |prob diff| {v.get('offline_max_abs_prob_vs_onnx_cpu', float('nan')):.2g}"))
    g = c.get("graphs", {})
    print("graphs replay = eager: " + (g.get("error") or g.get("skipped") or verdict(g)))
    lat = c.get("latency", {})
    if "error" in lat:
        print(f"latency: ERROR {lat['error']}")
    else:
        for k in ("torch_graph_push", "torch_eager_push", "onnx_cpu_push"):
            if k in lat:
                print(f"{k}: p50 {lat[k]['p50_ms']} ms, p99 {lat[k]['p99_ms']} ms")
        if "pass" in lat:
            print(f"  one stream's push p50 <= {PUSH_P50_TARGET_MS} ms with graphs: {verdict(lat)}")
    cap = c.get("capacity", {})
    if "error" in cap:
        print(f"capacity: ERROR {cap['error']}")
    else:
        for k, v in cap.items():
            if isinstance(v, dict):
                print(f"{k}: {v['max_streams']} streams at 30 fps (inference only)")
        if "pass" in cap:
            print(f"  >= {STREAMS_TARGET} streams on the GPU: {verdict(cap)}")


if __name__ == "__main__":
    sys.exit(main())
