"""The description of the machine a benchmark ran on, stored with every recorded result.

A latency figure means nothing without the CPU, the core count, the load while it was measured and
the versions of the libraries that do the work, so every bench JSON carries `describe_machine()`.
Libraries that are not installed are reported as None (torch is optional for live spotting).
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import time

LIBRARIES = {"numpy": "numpy", "opencv": "opencv-contrib-python", "mediapipe": "mediapipe",
             "onnxruntime": "onnxruntime", "torch": "torch", "pyzmq": "pyzmq"}


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux; platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str | None]:
    """Installed distribution versions, None for a library that is absent (no import is done)."""
    versions = {}
    for name, dist in LIBRARIES.items():
        try:
            versions[name] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def describe_machine() -> dict:
    """CPU model, logical cores, OS, Python and library versions, load average and the time."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": library_versions(),
        "load_avg": load_average(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def one_line(machine: dict) -> str:
    """'AMD EPYC, 2 cores, Python 3.11.9, onnxruntime 1.32.0, ...' for tables and reports."""
    v = machine.get("versions", {})
    libs = ", ".join(f"{k} {v[k]}" for k in ("onnxruntime", "mediapipe", "opencv", "numpy", "torch") if v.get(k))
    load = machine.get("load_avg")
    load_text = f", load {load[0]:.2f} at start" if load else ""
    return f"{machine.get('cpu')}, {machine.get('cores')} cores, Python {machine.get('python')}, {libs}{load_text}"
