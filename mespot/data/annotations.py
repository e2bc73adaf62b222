"""Interval annotations in the benchmarks' CSV form, read as stored and checked row by row.

Columns: `subject, video_name, start_frame, apex_frame, end_frame, type_idx, au` (type_idx 1 = macro,
2 = micro). Evaluation uses the frame numbers exactly as stored (an unknown offset `end_frame = 0`
stays unmatchable, as in the reference); training asks `training_interval` for the repaired interval.
Every oddity of a row is named by `oddities` and listed in `AnnotationSet.issues`.
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from mespot.types import check_kind

COLUMNS = ("subject", "video_name", "start_frame", "apex_frame", "end_frame", "type_idx", "au")
KIND_OF_TYPE = {1: "macro", 2: "micro"}
TYPE_OF_KIND = {kind: idx for idx, kind in KIND_OF_TYPE.items()}

# Oddity codes, as they appear in issue lines and in AnnotationSet.issue_counts().
TWO_ZEROS = ">=2 zeros"
END_ZERO = "end 0"
APEX_ZERO = "apex 0"
APEX_UNKNOWN = "apex -1"
APEX_AFTER_END = "apex > end"
APEX_BEFORE_START = "apex < start"
START_ZERO = "start 0"
NEGATIVE = "negative frame"


@dataclass(frozen=True)
class Annotation:
    """One annotated interval, frame numbers exactly as stored in the CSV."""

    subject: str
    video: str
    onset: int         # the CSV's start_frame
    apex: int
    offset: int        # the CSV's end_frame
    kind: str          # "micro" | "macro"
    au: str

    def __post_init__(self) -> None:
        check_kind(self.kind, "Annotation")

    @property
    def type_idx(self) -> int:
        """The CSV code: 1 = macro, 2 = micro."""
        return TYPE_OF_KIND[self.kind]


def oddities(a: Annotation) -> list[str]:
    """The oddity codes of one row (empty for a clean row); see the module constants."""
    found = []
    zeros = (a.onset == 0) + (a.apex == 0) + (a.offset == 0)
    if zeros >= 2:
        found.append(TWO_ZEROS)
    if a.onset == 0:
        found.append(START_ZERO)
    if a.apex == 0:
        found.append(APEX_ZERO)
    if a.apex == -1:
        found.append(APEX_UNKNOWN)
    if a.offset == 0:
        found.append(END_ZERO)
    if a.offset > 0 and a.apex > a.offset:
        found.append(APEX_AFTER_END)
    if a.apex > 0 and a.apex < a.onset:
        found.append(APEX_BEFORE_START)
    if a.onset < 0 or a.offset < 0 or a.apex < -1:
        found.append(NEGATIVE)
    return found


@dataclass
class AnnotationSet:
    """All rows of one annotation file, in file order, with the oddities found while reading."""

    rows: list[Annotation]
    issues: list[str]

    def subjects(self) -> list[str]:
        return sorted({a.subject for a in self.rows})

    def videos(self, subject: str | None = None) -> list[str]:
        """Sorted names of the videos with at least one row (of `subject`, when given)."""
        return sorted({a.video for a in self.rows if subject is None or a.subject == subject})

    def for_video(self, video: str) -> list[Annotation]:
        return [a for a in self.rows if a.video == video]

    def for_subject(self, subject: str) -> list[Annotation]:
        return [a for a in self.rows if a.subject == subject]

    def subject_of(self, video: str) -> str | None:
        """The subject a video's rows name, or None when the video has no rows."""
        for a in self.rows:
            if a.video == video:
                return a.subject
        return None

    def issue_counts(self) -> Counter:
        """How many rows carry each oddity code."""
        return Counter(code for a in self.rows for code in oddities(a))


def _parse_int(value: str, column: str, where: str) -> int:
    try:
        return int(value.strip())
    except (ValueError, AttributeError):
        raise ValueError(f"{where}: column {column} is not an integer: {value!r}") from None


def load_annotations(path: str | Path) -> AnnotationSet:
    """Read an annotation CSV; a malformed file raises ValueError naming the file and line."""
    path = Path(path)
    try:
        fh = open(path, newline="")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read annotations ({exc.strerror})") from None
    with fh:
        try:
            return _read_rows(csv.DictReader(fh), path)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ValueError(f"{path}: not a readable CSV ({exc})") from None


def _read_rows(reader: csv.DictReader, path: Path) -> AnnotationSet:
    rows: list[Annotation] = []
    issues: list[str] = []
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}:1: not an annotation CSV, missing column(s) {', '.join(missing)}")
    for record in reader:
        where = f"{path}:{reader.line_num}"
        if None in record or any(record[c] is None for c in COLUMNS):
            raise ValueError(f"{where}: expected {len(COLUMNS)} columns")
        type_idx = _parse_int(record["type_idx"], "type_idx", where)
        if type_idx not in KIND_OF_TYPE:
            raise ValueError(f"{where}: type_idx must be 1 (macro) or 2 (micro), got {type_idx}")
        a = Annotation(
            subject=record["subject"].strip(),
            video=record["video_name"].strip(),
            onset=_parse_int(record["start_frame"], "start_frame", where),
            apex=_parse_int(record["apex_frame"], "apex_frame", where),
            offset=_parse_int(record["end_frame"], "end_frame", where),
            kind=KIND_OF_TYPE[type_idx],
            au=record["au"],
        )
        if not a.subject or not a.video:
            raise ValueError(f"{where}: empty subject or video_name")
        rows.append(a)
        for code in oddities(a):
            issues.append(f"{where}: {a.video} {a.kind} {a.onset}/{a.apex}/{a.offset}: {code}")
    return AnnotationSet(rows=rows, issues=issues)


def write_annotations(path: str | Path, rows: Iterable[Annotation]) -> None:
    """Write rows in the same CSV form `load_annotations` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for a in rows:
            writer.writerow([a.subject, a.video, a.onset, a.apex, a.offset, a.type_idx, a.au])


def training_interval(a: Annotation, length: int) -> tuple[int, int, int] | None:
    """(start, apex, end) for building training targets over `length` indices, or None to skip.

    The reference's repairs (reference-model.md §3.1): skip a row with >= 2 zeros among start/apex/end; an unknown
    offset (end 0) becomes 2*apex - start; an apex of 0 becomes the midpoint; the end is clipped to
    length - 1; a row whose apex is at or past the end of the video is skipped.
    """
    start, apex, end = a.onset, a.apex, a.offset
    if (start == 0) + (apex == 0) + (end == 0) >= 2:
        return None
    if end == 0:
        end = 2 * apex - start
    elif apex == 0 or apex == -1:
        # FIX (reference-model.md §10.6): the reference leaves apex -1 (SAMM's "unknown apex") as a negative index,
        # which writes the apex flag on the last index of the video; we treat it like apex 0.
        apex = (start + end) // 2
    end = min(end, length - 1)
    if apex >= length:
        return None
    # Like the reference, an apex outside [start, end] (3 CAS(ME)^2 rows) is kept as stored.
    return start, apex, end
