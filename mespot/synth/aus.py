"""Facial action units as motions of MediaPipe face-mesh points, and which AUs occur together.

Each supported AU is a list of moves: a group of mesh point indices (468-point MediaPipe topology),
the direction they move in FACS terms, a relative weight and the spatial reach of the motion. The
direction is in the face frame: +x towards the subject's left (image right for a frontal face), +y
towards the chin; `lateral` moves mirror across the midline (outward for a positive value). The
renderer turns these into a smooth displacement field (mespot.synth.warp).

AU combinations are sampled from the co-occurrence of the real annotations (CAS(ME)^2 and SAMM-LV
under ../shared/data/annotations) when present, otherwise from a built-in table of the same counts.
Only combinations that move at least one of the model's 12 regions (brows, nose, mouth) are kept:
an eye-only AU (5, 7, 43) cannot be seen by the ROI features, so such rows are dropped.
"""
from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mespot.paths import shared_file

# Mesh point groups (MediaPipe 468 topology). "r" = subject's right (image left), "l" = subject's left.
BROW_INNER = {"r": (107, 55, 66, 65), "l": (336, 285, 296, 295)}
BROW_MID = {"r": (105, 52, 63), "l": (334, 282, 293)}
BROW_OUTER = {"r": (70, 46, 53), "l": (300, 276, 283)}
UPPER_LID = {"r": (159, 158, 160, 161, 157), "l": (386, 385, 387, 388, 384)}
LOWER_LID = {"r": (145, 153, 144, 163, 154), "l": (374, 380, 373, 390, 381)}
CHEEK = {"r": (205, 50, 117, 118, 101, 36), "l": (425, 280, 346, 347, 330, 266)}
NOSE_WING = {"r": (129, 98, 64, 48, 102), "l": (358, 327, 294, 278, 331)}
MOUTH_CORNER = {"r": (61, 78), "l": (291, 308)}
UPPER_LIP_SIDE = {"r": (185, 40, 191, 80), "l": (409, 270, 415, 310)}
LOWER_LIP_SIDE = {"r": (146, 91, 95, 88), "l": (375, 321, 324, 318)}
UPPER_LIP_MID = (0, 37, 267, 13, 82, 312, 39, 269)
LOWER_LIP_MID = (17, 84, 314, 14, 87, 317, 181, 405)
CHIN = (152, 175, 199, 200, 18, 171, 396)
JAW_LOW = (148, 377, 176, 400, 149, 378)

# Eye-aperture pairs (upper lid point, lower lid point) used to close the eyes.
LID_PAIRS = ((159, 145), (158, 153), (160, 144), (161, 163), (157, 154),
             (386, 374), (385, 380), (387, 373), (388, 390), (384, 381))

# Reach of a move (Gaussian sigma) as a fraction of the face width.
REACH = {"brow": 0.07, "lid": 0.035, "cheek": 0.09, "nose": 0.05, "lip": 0.055, "chin": 0.08}


@dataclass(frozen=True)
class Move:
    """Points that move together: `dx` is lateral (mirrored, + = outward), `dy` + = towards the chin."""

    points: tuple[int, ...]
    dx: float
    dy: float
    reach: str
    mirrored: bool = True   # True: dx is outward on each side; False: dx is absolute (+ = subject's left)


def _both(groups: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    return groups["r"] + groups["l"]


# FACS directions per AU (Ekman & Friesen's descriptions of the appearance changes).
AU_MOVES: dict[int, tuple[Move, ...]] = {
    1: (Move(_both(BROW_INNER), 0.0, -1.0, "brow"), Move(_both(BROW_MID), 0.0, -0.4, "brow")),
    2: (Move(_both(BROW_OUTER), 0.0, -1.0, "brow"), Move(_both(BROW_MID), 0.0, -0.5, "brow")),
    4: (Move(_both(BROW_INNER), -0.5, 0.85, "brow"), Move(_both(BROW_MID), -0.2, 0.5, "brow")),
    5: (Move(_both(UPPER_LID), 0.0, -1.0, "lid"),),
    6: (Move(_both(CHEEK), 0.1, -1.0, "cheek"), Move(_both(LOWER_LID), 0.0, -0.4, "lid")),
    7: (Move(_both(LOWER_LID), 0.0, -1.0, "lid"), Move(_both(UPPER_LID), 0.0, 0.3, "lid")),
    43: (Move(_both(UPPER_LID), 0.0, 1.0, "lid"), Move(_both(LOWER_LID), 0.0, -0.2, "lid")),
    9: (Move(_both(NOSE_WING), -0.2, -1.0, "nose"), Move(UPPER_LIP_MID[:3], 0.0, -0.4, "lip"),
        Move(_both(BROW_INNER), -0.2, 0.3, "brow")),
    10: (Move(UPPER_LIP_MID, 0.0, -1.0, "lip"), Move(_both(UPPER_LIP_SIDE), 0.0, -0.7, "lip"),
         Move(_both(NOSE_WING), 0.0, -0.3, "nose")),
    12: (Move(_both(MOUTH_CORNER), 0.6, -0.8, "lip"), Move(_both(UPPER_LIP_SIDE), 0.35, -0.45, "lip"),
         Move(_both(LOWER_LIP_SIDE), 0.35, -0.35, "lip"), Move(_both(CHEEK), 0.1, -0.3, "cheek")),
    14: (Move(_both(MOUTH_CORNER), 0.9, -0.15, "lip"), Move(_both(UPPER_LIP_SIDE), 0.4, 0.0, "lip"),
         Move(_both(LOWER_LIP_SIDE), 0.4, 0.0, "lip")),
    15: (Move(_both(MOUTH_CORNER), 0.2, 1.0, "lip"), Move(_both(LOWER_LIP_SIDE), 0.1, 0.5, "lip")),
    17: (Move(CHIN, 0.0, -1.0, "chin", mirrored=False), Move(LOWER_LIP_MID, 0.0, -0.6, "lip", mirrored=False)),
    20: (Move(_both(MOUTH_CORNER), 1.0, 0.2, "lip"), Move(_both(LOWER_LIP_SIDE), 0.5, 0.15, "lip")),
    23: (Move(_both(MOUTH_CORNER), -0.6, 0.0, "lip"), Move(UPPER_LIP_MID, 0.0, 0.3, "lip", mirrored=False),
         Move(LOWER_LIP_MID, 0.0, -0.3, "lip", mirrored=False)),
    24: (Move(UPPER_LIP_MID, 0.0, 0.6, "lip", mirrored=False), Move(LOWER_LIP_MID, 0.0, -0.8, "lip", mirrored=False),
         Move(_both(MOUTH_CORNER), -0.2, 0.0, "lip")),
    25: (Move(LOWER_LIP_MID, 0.0, 1.0, "lip", mirrored=False), Move(_both(LOWER_LIP_SIDE), 0.0, 0.6, "lip"),
         Move(UPPER_LIP_MID, 0.0, -0.25, "lip", mirrored=False)),
    26: (Move(LOWER_LIP_MID, 0.0, 1.0, "lip", mirrored=False), Move(CHIN, 0.0, 1.0, "chin", mirrored=False),
         Move(JAW_LOW, 0.0, 0.7, "chin", mirrored=False), Move(_both(LOWER_LIP_SIDE), 0.0, 0.7, "lip")),
}
SUPPORTED_AUS = tuple(sorted(AU_MOVES))
# AUs whose motion reaches the model's regions (brows, nose, mouth); 5, 6, 7, 43 move eyes/cheeks only.
REGION_AUS = frozenset({1, 2, 4, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26})

# Fallback co-occurrence table: counts of region-visible combinations in CAS(ME)^2 + SAMM-LV
# (computed with `combination_counts` on ../shared/data/annotations; used when it is absent).
# Rows are "kind combo:count ..."; only combinations seen at least twice are listed.
_BUILTIN_ROWS = """\
macro 12:86 4:84 14:37 6+12:30 24:28 2:18 1+2:15 4+7:13 25+26:10 12+14:8 12+14+24:7 12+24:7 6+12+14:5
macro 7+12:5 10+12:5 26:5 1+2+5:4 4+7+9:4 4+9:4 4+14:4 6+12+15:4 14+24:4 17:4 23:4 4+7+17:3
macro 6+7+12+25+26:3 6+12+24:3 6+12+25+26:3 10:3 24+25:3 1+2+12:2 1+2+25:2 2+25:2 4+5:2 4+7+12:2
macro 4+7+43:2 4+12:2 4+17:2 5+17:2 6+7+12:2 6+7+12+24:2 6+12+25:2 6+25:2 20:2 25:2
micro 4:26 12:23 2:16 1+2:11 14:8 24:7 4+7:6 20:6 10:4 4+5:3 4+7+43:3 7+12:3 17:3 1:2 4+14:2 9:2
micro 14+17:2 15:2 25:2
"""


def _parse_builtin(rows: str) -> dict[str, dict[tuple[int, ...], int]]:
    table: dict[str, dict[tuple[int, ...], int]] = {"macro": {}, "micro": {}}
    for line in rows.splitlines():
        kind, *items = line.split()
        for item in items:
            combo, count = item.split(":")
            table[kind][tuple(int(a) for a in combo.split("+"))] = int(count)
    return table


BUILTIN_COMBOS = _parse_builtin(_BUILTIN_ROWS)


_TOKEN = re.compile(r"\s*[LRAUB]?(\d+)")


def parse_au_string(au: str) -> tuple[int, ...]:
    """The supported AU numbers in a free FACS string ('4(B/C)+7B', 'L12A', '12A or 14A' -> 12).

    Intensity letters, side prefixes (L/R/A/U/B) and notes are ignored; unknown AUs are dropped.
    """
    found: set[int] = set()
    for token in (au or "").split("+"):
        m = _TOKEN.match(token)
        if m and int(m.group(1)) in AU_MOVES:
            found.add(int(m.group(1)))
    return tuple(sorted(found))


def combination_counts(csv_paths: list[Path]) -> dict[str, Counter]:
    """Count region-visible AU combinations per kind over annotation CSVs (type_idx 1 macro, 2 micro)."""
    counts: dict[str, Counter] = {"macro": Counter(), "micro": Counter()}
    for path in csv_paths:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                kind = {"1": "macro", "2": "micro"}.get(row["type_idx"].strip())
                combo = parse_au_string(row.get("au", ""))
                if kind and combo and REGION_AUS.intersection(combo):
                    counts[kind][combo] += 1
    return counts


class AuSampler:
    """Draws AU combinations for an expression kind with the frequencies of a count table."""

    def __init__(self, counts: dict[str, dict[tuple[int, ...], int]], source: str) -> None:
        self.source = source
        self._table = {}
        for kind in ("micro", "macro"):
            items = sorted(counts[kind].items())
            if not items:
                raise ValueError(f"AU table from {source} has no {kind} combinations")
            combos = [c for c, _ in items]
            weights = np.array([n for _, n in items], dtype=float)
            self._table[kind] = (combos, weights / weights.sum())

    @classmethod
    def default(cls) -> "AuSampler":
        """From the real annotations in ../shared when present, else the built-in table."""
        paths = [p for p in (shared_file("data", "annotations", "casme2.csv"),
                             shared_file("data", "annotations", "samm_lv_25fps.csv")) if p is not None]
        if paths:
            return cls(combination_counts(paths), source="+".join(p.name for p in paths))
        return cls(BUILTIN_COMBOS, source="builtin")

    def sample(self, kind: str, rng: np.random.Generator) -> tuple[int, ...]:
        combos, probs = self._table[kind]
        return combos[int(rng.choice(len(combos), p=probs))]


def au_label(aus: tuple[int, ...]) -> str:
    """The CSV form of a combination: '1+2'."""
    return "+".join(str(a) for a in aus)
