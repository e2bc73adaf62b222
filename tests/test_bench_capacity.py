"""`spot-bench streams --inference-only`: the search for the largest N, and one real short run."""
from __future__ import annotations

import json

from engine_models import model_files
from mespot.bench.capacity import FRAME_PERIOD_MS, find_capacity, measure_step
from mespot.cli.bench import main as bench_main
from mespot.engine.runtime import open_runtime


def fake_measure(limit: int):
    """A machine whose step takes exactly FRAME_PERIOD_MS at `limit` streams, linear in N."""
    def measure(runtime, n, steps):
        ms = FRAME_PERIOD_MS * n / max(limit, 0.5)
        return {"streams": n, "step_p50_ms": ms, "step_p99_ms": ms, "step_mean_ms": ms, "carried": n <= limit}
    return measure


def test_search_doubles_then_bisects_to_within_five_percent():
    found = find_capacity(None, start=64, measure=fake_measure(1000))
    assert 950 <= found["max_streams"] <= 1000 and found["first_missed"] > 1000
    assert found["first_missed"] - found["max_streams"] <= max(1, found["max_streams"] // 20)
    assert not found["limit_reached"] and found["by_mean_throughput"] == 1000
    sizes = [t["streams"] for t in found["trials"]]
    assert sizes == sorted(sizes) and {64, 128, 256, 512, 1024} <= set(sizes)


def test_search_goes_down_from_start_and_stops_at_the_limit():
    down = find_capacity(None, start=64, measure=fake_measure(10))
    assert down["max_streams"] == 10 and [t["streams"] for t in down["trials"]][:3] == [8, 10, 11]
    assert find_capacity(None, start=64, measure=fake_measure(0))["max_streams"] == 0
    capped = find_capacity(None, start=64, max_streams=300, measure=fake_measure(10_000))
    assert capped["max_streams"] == 300 and capped["limit_reached"]


def test_measure_step_runs_the_multistream_engine():
    _, _, onnx_path = model_files()
    t = measure_step(open_runtime(onnx_path), 7, steps=3)
    assert t["streams"] == 7 and t["steps"] == 3
    assert t["step_mean_ms"] >= t["model_mean_ms"] > 0 and isinstance(t["carried"], bool)


def test_cli_writes_json(tmp_path, capsys):
    _, ckpt, onnx_path = model_files()
    out = tmp_path / "cap.json"
    rc = bench_main(["streams", "--inference-only", "--backend", "onnx,torch:cuda,incremental", "--model", str(onnx_path),
                     "--checkpoint", str(ckpt), "--max-streams", "8", "--steps", "2", "--budget", "5", "--threads", "1", "--json", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["bench"] == "streams-inference" and result["precision"] == "fp32"
    onnx = result["backends"]["onnx"]
    assert onnx["runtime"]["backend"] == "onnx" and onnx["max_streams"] <= 8 and onnx["trials"]
    assert "error" in result["backends"]["torch:cuda"]
    incremental = result["backends"]["incremental"]
    assert incremental["trials"] and incremental["trials"][0]["model_mean_ms"] is None
    assert list(result["backends"]) == ["onnx", "torch:cuda", "incremental"]
    assert "onnx: " in capsys.readouterr().out
    assert bench_main(["streams", "--inference-only", "--backend", "tflite"]) == 2


def test_reduced_precision_is_in_the_json(tmp_path):
    _, ckpt, onnx_path = model_files()
    out = tmp_path / "cap.json"
    rc = bench_main(["streams", "--inference-only", "--backend", "torch,onnx", "--precision", "bf16",
                     "--model", str(onnx_path), "--checkpoint", str(ckpt), "--max-streams", "4", "--steps", "2",
                     "--budget", "2", "--threads", "1", "--json", str(out)])
    assert rc == 0
    backends = json.loads(out.read_text())["backends"]
    measured = backends["torch"]["runtime"]["precision_error"]
    assert measured["precision"] == "bf16" and measured["max_abs_prob"] > 0
    assert "runs precision fp32, not bf16" in backends["onnx"]["error"]
