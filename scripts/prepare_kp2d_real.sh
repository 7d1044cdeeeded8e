#!/usr/bin/env bash
# Real training data for the low-resolution 2D students, labelled by MoveNet Thunder at high resolution
# (second opinion: Lightning). Needs `make pretrained` (MoveNet weights) and ../shared/data. ~10 min on 2 cores.
#   data/real/                 held-out and training splits (scripts/make_real_splits.py)
#   data/labels/lspet_train/   lspet_400[0:270]: ground truth kept, face joints from the teacher
#   data/labels/lspet_val/     lspet_400[270:300]: validation while training (never trained on)
#   data/labels/coco_train/    two thirds of coco_mini_train's keypoint images (ground truth kept)
#   data/labels/vtest_1_400/   vtest.avi frames 1-400, every 4th, HOG boxes (frames 401-795 stay held out)
set -euo pipefail
cd "$(dirname "$0")/.."
LRH=${LRH:-.venv/bin/lowres-hps}
SHARED=${SHARED:-../shared/data}
.venv/bin/python scripts/make_real_splits.py --shared "$SHARED"
$LRH label --dataset "lsp:$SHARED/lspet_400/joints.mat" --indices 0:270 --out data/labels/lspet_train
$LRH label --dataset "lsp:$SHARED/lspet_400/joints.mat" --indices 270:300 --out data/labels/lspet_val
$LRH label --dataset coco:data/real/coco_train.json --out data/labels/coco_train
$LRH label "$SHARED/opencv_samples/vtest.avi" --frames 1:400 --every 4 --out data/labels/vtest_1_400
