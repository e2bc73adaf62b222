"""spot-live's --view / --lsl / --demo-gt refusals: one line, exit 2, before anything slow loads, and
a missing extra named with its install line (the package stays importable without the extras)."""
from __future__ import annotations

import sys

import pytest

from mespot.cli.live import main


@pytest.mark.parametrize("args, says", [
    (["--demo", "--view-keep"], "--view-keep needs --view web"),
    (["--demo", "--lsl-probs"], "--lsl-probs needs --lsl"),
    (["--camera", "0", "--demo-gt", "x.csv"], "--demo-gt needs --demo"),
    (["--demo", "--demo-gt", "/nonexistent/dir/gt.csv"], "folder /nonexistent/dir does not exist"),
    (["--demo", "--view", "out.png"], "want native, web or a FILE.rrd"),
])
def test_view_and_lsl_options_are_checked_first(args, says, capsys):
    assert main([*args, "--no-ui"]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


@pytest.mark.parametrize("option, module, extra", [(["--view", "web"], "rerun", "view"),
                                                   (["--lsl"], "pylsl", "lsl")])
def test_a_missing_extra_is_one_line_naming_it(option, module, extra, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, module, None)            # as if it were not installed
    assert main(["--demo", "--no-ui", *option]) == 2
    err = capsys.readouterr().err
    assert f"pip install 'mespot[{extra}]'" in err and err.count("\n") == 1


@pytest.mark.parametrize("option", [["--view", "web"], ["--lsl"]])
def test_views_are_refused_for_several_streams(option, capsys):
    assert main(["--camera", "0", "--camera", "1", "--no-ui", *option]) == 2
    err = capsys.readouterr().err
    assert "work with one stream, not several" in err and err.count("\n") == 1
