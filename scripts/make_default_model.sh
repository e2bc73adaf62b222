#!/usr/bin/env bash
# Rebuild the shipped default model from scratch: mespot/models/default.pt, default.onnx (+ .json).
#
#   scripts/make_default_model.sh        (from the repository root, after `make install`; ~20 min on 2 cores)
#
# 1. training faces (docs/model-card.md): the four faces MediaPipe finds in the left 662 columns of
#    ../shared/media/multi_face.jpg, Grace Hopper (matplotlib's public-domain sample photo), and the
#    mirror image of each. Held out (the accuracy bench's faces): astronaut and multi_face.jpg's
#    rightmost face; never used: the man of single_face.* and the .mov clips (the real-smile test);
# 2. spot-synth renders annotated videos of them (two halves in parallel, fixed seeds),
# 3. spot-extract computes features, 4. spot-train fit --config live trains (configs/live.yaml),
# 5. spot-export writes the ONNX file and its sidecar; all three files are copied to mespot/models/.
# Environment: MESPOT_SHARED (default ../shared), WORK (default build/default-model), BIN (.venv/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
SHARED=${MESPOT_SHARED:-../shared}
WORK=${WORK:-build/default-model}
VIDEOS=16           # videos per half, identities in turn
MINUTES=2           # per video
# Denser than the generator's default 2.5 / 4 per minute: more examples per second of rendering,
# still with >= 1.5 s of neutral (and the distractors) between expressions.
RATES="--micro-per-min 8 --macro-per-min 8"

test -f "$SHARED/media/multi_face.jpg" || {
    echo "make_default_model: $SHARED/media/multi_face.jpg not found (set MESPOT_SHARED)" >&2; exit 2; }
rm -rf "$WORK"
mkdir -p "$WORK/faces"
"$BIN/python" - "$SHARED/media/multi_face.jpg" "$WORK/faces" <<'PY'
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
F="$WORK/faces"
"$BIN/spot-synth" --out "$WORK/half_a" --identities "$F/multi_face_left.png,$F/grace_hopper_mirror.png" \
    --videos $VIDEOS --minutes $MINUTES --seed 101 $RATES --quiet &
A=$!
"$BIN/spot-synth" --out "$WORK/half_b" --identities "$F/multi_face_left_mirror.png,$F/grace_hopper.png" \
    --videos $VIDEOS --minutes $MINUTES --seed 102 $RATES --quiet
wait $A
mkdir -p "$WORK/videos"
mv "$WORK"/half_a/videos/*.mp4 "$WORK"/half_b/videos/*.mp4 "$WORK/videos/"
{ cat "$WORK/half_a/annotations.csv"; tail -n +2 "$WORK/half_b/annotations.csv"; } > "$WORK/annotations.csv"
"$BIN/spot-extract" "$WORK/videos" -o "$WORK/features" --workers 2
"$BIN/spot-train" fit --features "$WORK/features" --annotations "$WORK/annotations.csv" \
    --config live --threads 1 -o "$WORK/default.pt"   # one thread: the result does not depend on the core count
"$BIN/spot-export" --checkpoint "$WORK/default.pt" -o "$WORK/default.onnx"
cp "$WORK/default.pt" "$WORK/default.onnx" "$WORK/default.onnx.json" mespot/models/
echo "shipped: mespot/models/default.{pt,onnx,onnx.json}"
