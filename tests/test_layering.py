"""The import direction of README's Layout: the live path (mespot/stream) stands on types, config
and engine only, so it never pulls in torch, training, evaluation, export or the CLIs."""
from __future__ import annotations

import ast
from pathlib import Path

import mespot

PACKAGE = Path(mespot.__file__).resolve().parent
FORBIDDEN_IN_STREAM = ("mespot.eval", "mespot.train", "mespot.export", "mespot.cli", "mespot.bench", "torch")


def _imports(path: Path) -> list[str]:
    """Every module a file imports, at the top or inside a function."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_stream_imports_nothing_from_eval_train_export_or_cli():
    bad = [f"{path.relative_to(PACKAGE)}: {name}"
           for path in sorted((PACKAGE / "stream").glob("*.py")) for name in _imports(path)
           if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_STREAM)]
    assert bad == []


def test_the_checker_sees_a_lazy_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from mespot.eval.proposals import iou\n    return iou\n")
    assert _imports(sample) == ["mespot.eval.proposals"]
