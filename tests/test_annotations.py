"""Annotation CSV loading: oddities reported per row, raw values kept, training repairs."""
from __future__ import annotations

import re

import pytest

from mespot.data.annotations import (
    Annotation, load_annotations, oddities, training_interval, write_annotations)

HEADER = "subject,video_name,start_frame,apex_frame,end_frame,type_idx,au\n"


def _csv(tmp_path, body: str, name: str = "gt.csv"):
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def _row(start, apex, end, kind="macro"):
    return Annotation("s1", "s1_v1", start, apex, end, kind, "12")


def test_rows_kept_as_stored_and_oddities_listed(tmp_path):
    path = _csv(tmp_path, "s01,s01_a,10,15,0,1,4\n"      # end 0
                          "s01,s01_a,20,0,30,2,12\n"     # apex 0
                          "s02,s02_a,5,-1,9,2,14\n"      # apex -1
                          "s02,s02_b,0,4,8,1,1+2\n"      # start 0
                          "s02,s02_b,40,50,45,1,25\n"    # apex > end
                          "s02,s02_b,50,52,60,1,26\n")   # clean
    ann = load_annotations(path)
    assert [(a.onset, a.apex, a.offset) for a in ann.rows] == [
        (10, 15, 0), (20, 0, 30), (5, -1, 9), (0, 4, 8), (40, 50, 45), (50, 52, 60)]
    assert [a.kind for a in ann.rows] == ["macro", "micro", "micro", "macro", "macro", "macro"]
    assert [a.type_idx for a in ann.rows] == [1, 2, 2, 1, 1, 1]
    assert ann.issue_counts() == {"end 0": 1, "apex 0": 1, "apex -1": 1, "start 0": 1, "apex > end": 1}
    assert len(ann.issues) == 5
    assert ann.issues[0].startswith(f"{path}:2: s01_a macro 10/15/0") and ann.issues[0].endswith("end 0")
    assert ann.issues[-1].startswith(f"{path}:6:")
    assert ann.subjects() == ["s01", "s02"]
    assert ann.videos() == ["s01_a", "s02_a", "s02_b"]
    assert ann.videos("s02") == ["s02_a", "s02_b"]
    assert len(ann.for_video("s02_b")) == 3
    assert [a.video for a in ann.for_subject("s01")] == ["s01_a", "s01_a"]
    assert ann.subject_of("s02_a") == "s02" and ann.subject_of("nope") is None


def test_two_zeros_is_its_own_oddity():
    assert oddities(_row(0, 0, 30)) == [">=2 zeros", "start 0", "apex 0"]
    assert oddities(_row(5, 8, 12)) == []


@pytest.mark.parametrize("body, message", [
    ("s01,s01_a,10,x,20,1,4\n", "gt.csv:2: column apex_frame is not an integer"),
    ("s01,s01_a,10,15,20,3,4\n", "gt.csv:2: type_idx must be 1 (macro) or 2 (micro), got 3"),
    ("s01,s01_a,10,15,20,1,4\ns01,s01_a,10,15\n", "gt.csv:3: expected 7 columns"),
    ("s01,s01_a,10,15,20,1,4,extra\n", "gt.csv:2: expected 7 columns"),
    (",s01_a,10,15,20,1,4\n", "gt.csv:2: empty subject or video_name"),
])
def test_malformed_rows_name_file_and_line(tmp_path, body, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_annotations(_csv(tmp_path, body))


def test_missing_column_and_missing_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("subject,video_name,start_frame\ns,v,1\n")
    with pytest.raises(ValueError, match="bad.csv:1: not an annotation CSV, missing column"):
        load_annotations(bad)
    with pytest.raises(ValueError, match="cannot read annotations"):
        load_annotations(tmp_path / "absent.csv")


def test_write_then_load_round_trip(tmp_path):
    rows = [Annotation("s1", "s1_v", 1, 5, 9, "micro", "12+14"), Annotation("s2", "s2_v", 3, 0, 0, "macro", "")]
    write_annotations(tmp_path / "out" / "gt.csv", rows)
    assert load_annotations(tmp_path / "out" / "gt.csv").rows == rows


def test_training_interval_repairs():
    assert training_interval(_row(0, 0, 30), 100) is None          # >= 2 zeros: skipped
    assert training_interval(_row(10, 15, 0), 100) == (10, 15, 20)  # end 0 -> 2*apex - start
    assert training_interval(_row(20, 0, 31), 100) == (20, 25, 31)  # apex 0 -> midpoint
    assert training_interval(_row(80, 90, 120), 100) == (80, 90, 99)  # end clipped to length - 1
    assert training_interval(_row(80, 100, 120), 100) is None       # apex past the video
    assert training_interval(_row(0, 4, 8), 100) == (0, 4, 8)       # start 0 taken literally
    assert training_interval(_row(40, 50, 45), 100) == (40, 50, 45)  # kept as stored, like the reference


def test_training_interval_fixes_unknown_apex():
    # The reference writes apex -1 on the last index (reference-model.md §10.6); the fix uses the midpoint.
    assert training_interval(_row(11, -1, 26), 500) == (11, 18, 26)


def test_real_casme2_oddities(shared_path):
    ann = load_annotations(shared_path("data", "annotations", "casme2.csv"))
    assert (len(ann.rows), len(ann.subjects()), len(ann.videos())) == (357, 22, 95)
    counts = ann.issue_counts()
    assert counts == {"end 0": 44, "apex 0": 1, "apex > end": 3}
    assert all(a.kind == "macro" for a in ann.rows if a.offset == 0)
    assert sum(a.kind == "micro" for a in ann.rows) == 57


def test_real_samm_oddities(shared_path):
    ann = load_annotations(shared_path("data", "annotations", "samm_lv_25fps.csv"))
    assert (len(ann.rows), len(ann.subjects()), len(ann.videos())) == (502, 30, 147)
    assert ann.issue_counts() == {"start 0": 12, "apex -1": 6}
    assert all(a.kind == "macro" for a in ann.rows if a.onset == 0)
    assert all(training_interval(a, 10_000)[0] <= training_interval(a, 10_000)[1]
               for a in ann.rows if a.apex == -1)
