"""`spot-eval`: JSON and table output, and one-line errors with exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mespot.cli.evaluate import main

GT = ("subject,video_name,start_frame,apex_frame,end_frame,type_idx,au\n"
      "s1,s1_a,0,5,9,2,12\n"
      "s1,s1_a,100,110,0,1,4\n"
      "s1,s1_a,200,220,240,1,12\n")
PRED = ("video_name,start_frame,end_frame,score,type_idx\n"
        "s1_a,0,4,0.9,2\n"          # IoU exactly 0.5 with the micro GT (inclusive frames)
        "s1_a,100,140,0.8,1\n"      # against the end-0 GT: never a match
        "s1_a,201,240,0.7,1\n")


@pytest.fixture
def files(tmp_path):
    (tmp_path / "gt.csv").write_text(GT)
    (tmp_path / "pred.csv").write_text(PRED)
    return str(tmp_path / "gt.csv"), str(tmp_path / "pred.csv")


def test_json_megc(files, capsys):
    assert main(["--gt", files[0], "--pred", files[1], "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["micro", "macro", "overall"]
    assert out["micro"] == {"tp": 1, "n": 1, "m": 1, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert (out["macro"]["tp"], out["macro"]["n"], out["macro"]["m"]) == (1, 2, 2)
    assert out["overall"]["tp"] == 2 and out["overall"]["f1"] == pytest.approx(2 / 3)


def test_json_reference_rule(files, capsys):
    assert main(["--gt", files[0], "--pred", files[1], "--rule", "reference", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["micro"]["tp"] == 0 and out["macro"]["tp"] == 1


def test_table_for_people(files, capsys):
    assert main(["--gt", files[0], "--pred", files[1]]) == 0
    out = capsys.readouterr().out
    assert "overall" in out and "0.6667" in out
    assert "1 ground-truth row(s) with end_frame 0" in out


def test_missing_and_malformed_files_exit_2(files, tmp_path, capsys):
    assert main(["--gt", str(tmp_path / "none.csv"), "--pred", files[1]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("spot-eval: error:") and "none.csv" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("video_name,start_frame,end_frame,score,type_idx\ns1_a,1,x,0.5,2\n")
    assert main(["--gt", files[0], "--pred", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.csv:2" in err
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    assert main(["--gt", str(binary), "--pred", files[1]]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_bad_rule_is_a_usage_error(files):
    with pytest.raises(SystemExit) as exc:
        main(["--gt", files[0], "--pred", files[1], "--rule", "strict"])
    assert exc.value.code == 2


def test_installed_command(files):
    command = Path(sys.executable).parent / "spot-eval"
    if not command.exists():
        pytest.skip("spot-eval is not installed beside this interpreter (pip install -e .)")
    done = subprocess.run([str(command), "--gt", files[0], "--pred", files[1], "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["micro"]["tp"] == 1
