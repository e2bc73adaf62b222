"""The import direction of docs/architecture.md: each package imports only from the rows below it,
and the live path (mespot/stream) never pulls in torch, training, evaluation, export or the CLIs."""
from __future__ import annotations

import ast
from pathlib import Path

import mespot

PACKAGE = Path(mespot.__file__).resolve().parent
# docs/architecture.md, top row first.
LAYERS = (("cli",), ("bench", "client"), ("serve",), ("train", "export", "synth", "view"), ("eval",), ("stream", "data"),
          ("intervals",), ("engine",), ("featurefile", "files", "errors", "paths", "models"), ("config",), ("types",))
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


def _package(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_every_package_imports_only_from_the_rows_below_it():
    row = {name: i for i, names in enumerate(LAYERS) for name in names}
    found = {_package(p) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE}
    assert found - {"__init__"} <= set(row), f"packages missing from LAYERS: {found - set(row)}"
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = _package(path)
        if me == "__init__":
            continue
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "mespot" and len(parts) > 1 and parts[1] != me and row[parts[1]] <= row[me]:
                upward.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert upward == []
