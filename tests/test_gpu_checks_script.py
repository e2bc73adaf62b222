"""scripts/gpu_checks.py must run from the source tree alone (no mediapipe, OpenCV, ZeroMQ, PyYAML):
its CPU dry run, with those blocked, produces every section of the JSON."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine_models import model_files

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cpu_dry_run_without_the_live_stack(tmp_path):
    _, ckpt, onnx_path = model_files()
    out = tmp_path / "gpu.json"
    script = textwrap.dedent(f"""
        import runpy, sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("mediapipe", "cv2", "zmq", "yaml", "rich", "tflite_runtime"):
                    raise ImportError(name + " is blocked in this test")
        sys.meta_path.insert(0, Block())
        sys.argv = ["gpu_checks.py", "--device", "cpu", "--quick", "--checkpoint", {str(ckpt)!r},
                    "--onnx", {str(onnx_path)!r}, "--json", {str(out)!r}]
        runpy.run_path({str(ROOT / "scripts" / "gpu_checks.py")!r}, run_name="__main__")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    checks = result["checks"]
    assert not [k for k, v in checks.items() if "error" in v], checks
    assert checks["parity"]["pass"] and checks["parity"]["online_max_abs_prob"] <= 1e-5
    assert checks["parity"]["reduced_precision"]["tf32"]["refused"].startswith("backend torch on cpu")
    assert checks["graphs"]["skipped"] == "no CUDA graphs on cpu"
    assert checks["latency"]["torch_eager_push"]["n"] == 100
    assert set(checks["capacity"]) >= {"torch:cpu", "onnx:cpu", "incremental:cpu", "target"}
    assert "== summary" in done.stdout
