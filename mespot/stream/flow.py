"""Dense optical flow between two aligned grey crops, as strategy objects (mespot.stream.strategies).

`dis` (default, live): OpenCV DIS with its FAST preset, well under a millisecond on a 128 px crop.
`tvl1` (offline comparison only): OpenCV-contrib's CPU Dual TV-L1 with its defaults, which match
the CUDA defaults the reference's denseflow used (tau 0.25, lambda 0.15, theta 0.3, 5 scales,
5 warps, epsilon 0.01; 10 outer x 30 inner = 300 iterations, scale step 0.8; the CPU version also
median-filters the flow), hundreds of times slower. Output: (H, W, 2) float32, pixels of the crop per frame, +x right, +y down.
"""
from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np


class FlowMethod(Protocol):
    """The flow stage: `method(prev, cur)` is the flow that moves `prev` onto `cur`,
    cur(x + flow(x)) ~ prev(x); `config()` names it and every parameter that changes its output."""

    name: str

    def __call__(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray: ...

    def config(self) -> dict: ...


class DisFlow:
    """OpenCV DIS, FAST preset (the live default)."""

    name = "dis"

    def __init__(self) -> None:
        self._impl = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)

    def __call__(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        return self._impl.calc(prev, cur, None)

    def config(self) -> dict:
        return {"method": self.name, "preset": "fast"}


class TvL1Flow:
    """OpenCV-contrib's CPU Dual TV-L1 with its defaults (offline comparison with the reference)."""

    name = "tvl1"

    def __init__(self) -> None:
        self._impl = cv2.optflow.DualTVL1OpticalFlow_create()

    def __call__(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        return self._impl.calc(prev, cur, None)

    def config(self) -> dict:
        t = self._impl
        return {"method": self.name, "tau": t.getTau(), "lambda": t.getLambda(), "theta": t.getTheta(),
                "nscales": t.getScalesNumber(), "warps": t.getWarpingsNumber(), "epsilon": t.getEpsilon(),
                "iterations": t.getOuterIterations() * t.getInnerIterations()}
