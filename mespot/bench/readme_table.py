"""Regenerate the README's latency table from the recorded runs in bench/ (never typed by hand).

    python -m mespot.bench.readme_table            # rewrite the table in README.md
    python -m mespot.bench.readme_table --check    # exit 1 if README.md is not what bench/ says

Reads bench/latency.json (spot-bench latency --json; every backend it compared) and, when present,
bench/streams.json (spot-bench streams --json), and replaces everything between the two marker
lines below in README.md. Exit 2 when a file is missing or the markers are not there.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mespot.bench.machine import one_line
from mespot.paths import REPO_ROOT

BEGIN = "<!-- latency-table:begin (python -m mespot.bench.readme_table) -->"
END = "<!-- latency-table:end -->"
BACKEND_NAMES = {"onnx": "ONNX Runtime (CPU)", "torch": "PyTorch (CPU)", "tensorrt": "TensorRT",
                 "onnx:cuda": "ONNX Runtime (CUDA)", "torch:cuda": "PyTorch (CUDA)"}
STAGE_LABELS = (("capture", "capture queue wait"), ("landmarks", "landmarks (face-mesh model)"),
                ("align", "alignment"), ("flow", "flow (DIS)"), ("roi", "ROI features"),
                ("inference", "inference (online engine)"), ("peakpicker", "peak-picker"),
                ("publish", "publish (ZeroMQ)"))


def _p(p: dict | None, *keys: str) -> str:
    if not p or not p.get("n", 1) or any(k not in p for k in keys):
        return "-"
    return " / ".join(f"{p[k]:.2f}" for k in keys)


def latency_table(latency: dict, streams: dict | None = None) -> str:
    """The markdown block: per-backend table, floor and ratio, targets, streams, machine."""
    names = [k for k, b in latency["backends"].items() if "error" not in b]
    runs = {k: latency["backends"][k] for k in names}
    head = "| ms per frame | " + " | ".join(BACKEND_NAMES.get(k, k) for k in names) + " |"
    lines = [head, "|---|" + "---:|" * len(names)]

    def row(label: str, cell) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(runs[k]) for k in names) + " |")

    rt = "realtime"
    row("**whole loop, capture to publish** (camera-paced; p50 / p95 / p99 / max)",
        lambda b: "**" + _p(b.get(rt, {}).get("end_to_end"), "p50_ms", "p95_ms", "p99_ms", "max_ms") + "**")
    row("loop work without the queue wait (p50 / p99)", lambda b: _p(b.get(rt, {}).get("in_loop"), "p50_ms", "p99_ms"))
    row("landmarks + flow inside the loop (p50 / p99)",
        lambda b: _p(b.get(rt, {}).get("landmarks_plus_flow"), "p50_ms", "p99_ms"))
    row("everything else: whole loop - landmarks - flow (p50 / p99)",
        lambda b: _p(b.get(rt, {}).get("beyond_landmarks_flow"), "p50_ms", "p99_ms"))
    for stage, label in STAGE_LABELS:
        row(f"&nbsp;&nbsp;{label} (p50 / p99)", lambda b, s=stage: _p(b.get(rt, {}).get("stages", {}).get(s), "p50_ms", "p99_ms"))
    row("model alone, one 11-index window, back to back (p50 / p99)",
        lambda b: _p(b.get("model_alone"), "p50_ms", "p99_ms"))
    row("model alone, after a frame's idle time (p50 / p99)",
        lambda b: _p(b.get("model_alone_paced"), "p50_ms", "p99_ms"))
    row("frames / dropped (camera-paced)",
        lambda b: f"{b[rt]['frames']} / {b[rt]['dropped']}" if rt in b else "-")
    row("CPU time per frame, every thread of the process, camera-paced (ms)",
        lambda b: f"{b[rt]['cpu_ms_per_frame']:.2f}" if b.get(rt, {}).get("cpu_ms_per_frame") else "-")
    row("throughput as fast as possible, fps", lambda b: f"{b['fast']['fps']:.1f}" if "fast" in b else "-")
    row("interval delay after the offset frame (n; p50 / max)",
        lambda b: (f"{b[rt]['event_delay']['intervals']}; " + _p(b[rt]["event_delay"], "p50_ms", "max_ms"))
        if rt in b else "-")
    ph = latency["physical"]
    out = ["\n".join(lines), ""]
    missing = {k: b["error"] for k, b in latency["backends"].items() if "error" in b}
    if missing:
        out.append("Not measured here: " + "; ".join(f"{k} ({why})" for k, why in missing.items()) + ".")
    paced = ph.get("paced") or {}
    out.append(f"Physical floor on the same frames, landmark model alone + DIS flow alone, back to back: "
               f"p50 {_p(ph['floor'], 'p50_ms')} ms, p99 {_p(ph['floor'], 'p99_ms')} ms (landmarks p50 "
               f"{_p(ph['landmarks'], 'p50_ms')}, flow p50 {_p(ph['flow'], 'p50_ms')}); started on a camera's "
               f"30 fps schedule like the loop: p50 {_p(paced.get('floor'), 'p50_ms')} ms, p99 "
               f"{_p(paced.get('floor'), 'p99_ms')} ms. Decoding a frame (capture thread, before the stamp): "
               f"p50 {_p(ph['decode'], 'p50_ms')} ms. Whole loop / floor ({latency['floor_kind']}): "
               f"**{latency['ratio_to_floor']}x** at p50, {latency['ratio_to_floor_p99']}x at p99; against the "
               f"back-to-back floor {latency['ratio_to_unpaced_floor']}x at p50.")
    if len(latency.get("repeats", ())) > 1:
        out.append(f"The loop and its floor were measured in {len(latency['repeats'])} pairs, one after the "
                   "other; the table is the pair with the median ratio. Every pair, whole loop p50 / floor p50: "
                   + "; ".join(f"{r['end_to_end_p50_ms']:.2f} / {r['floor_p50_ms']:.2f} ms = {r['ratio_to_floor']}x"
                               + (" (the table's)" if r["reported"] else "") for r in latency["repeats"]) + ".")
    if ph["tvl1"].get("n"):
        out.append(f"Peer: the reference's TV-L1 flow on the same {ph['crop_px'][0]} px crops takes "
                   f"{ph['tvl1']['p50_ms']:.0f} ms per frame (p50, {ph['tvl1']['pairs']} pairs), "
                   f"{ph['tvl1']['ratio_to_dis']}x DIS.")
    out.append("")
    targets = ["| target (docs/benchmarks.md) | measured | verdict |", "|---|---:|---|"]
    for t in latency["targets"]:
        measured = f"{t['measured']} {t['unit']}" if t.get("measured") is not None else "-"
        # three decimals below 0.01, so a miss never prints as "-0.00"
        margin = (f" ({t['margin']:+.{3 if abs(t['margin']) < 0.01 else 2}f} {t['unit']})"
                  if "margin" in t else "")
        targets.append(f"| {t['target']} <= {t['limit']} {t['unit']} | {measured} | **{t['verdict']}**{margin} |")
    if latency.get("streams_by_cpu_time") is not None:
        out.append(f"By CPU time alone ({latency['cpu_ms_per_frame']} ms per frame, all threads), "
                   f"{latency['machine']['cores']} cores could carry {latency['streams_by_cpu_time']} such "
                   "30 fps streams: an upper bound, with no contention between them.")
        out.append("")
    if streams is not None:
        per_mode = ", ".join(f"{m['max_streams']} ({mode}; {m['max_streams_steady']} counting only drops after "
                             f"the first second)" for mode, m in streams["modes"].items())
        verdict = "PASS" if streams["target_met"] else "MISS"
        targets.append(f"| concurrent 30 fps 640x480 streams without drops >= {streams['target_streams']} | "
                       f"{per_mode} | **{verdict}** ({streams['max_streams'] - streams['target_streams']:+d}) |")
    out.append("\n".join(targets))
    out.append("")
    m = latency["machine"]
    out.append(f"Source: {latency['source']}; model: {latency['model']['note']}. Measured {m.get('when')} on "
               f"{one_line(m)} (load average at the end {latency.get('load_avg_end')})."
               + (f" Streams measured {streams['machine'].get('when')}, load at start "
                  f"{streams['machine'].get('load_avg')}, at the end {streams.get('load_avg_end')}."
                  if streams is not None else ""))
    return "\n".join(out)


def replace_block(text: str, block: str) -> str:
    """`text` with everything between BEGIN and END replaced by `block`; ValueError without markers."""
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise ValueError(f"markers not found: put the lines {BEGIN!r} and {END!r} where the table goes")
    return text[:start + len(BEGIN)] + "\n" + block.rstrip() + "\n" + text[stop:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mespot.bench.readme_table",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--bench-dir", type=Path, default=REPO_ROOT / "bench", help="recorded runs (default bench/)")
    parser.add_argument("--readme", type=Path, default=REPO_ROOT / "README.md", help="file to update")
    parser.add_argument("--check", action="store_true", help="only check that the table is current (exit 1 if not)")
    args = parser.parse_args(argv)
    latency_path, streams_path = args.bench_dir / "latency.json", args.bench_dir / "streams.json"
    try:
        latency = json.loads(latency_path.read_text())
        streams = json.loads(streams_path.read_text()) if streams_path.is_file() else None
        text = args.readme.read_text()
        new = replace_block(text, latency_table(latency, streams))
    except (OSError, ValueError, KeyError) as exc:
        print(f"readme_table: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if new != text:
            print(f"readme_table: {args.readme} is not current; run python -m mespot.bench.readme_table",
                  file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(new)
    print(f"updated the latency table in {args.readme} from {latency_path}"
          + (f" and {streams_path}" if streams is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
