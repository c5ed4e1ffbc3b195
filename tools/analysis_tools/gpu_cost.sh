#!/usr/bin/env bash
# The GPU cost table of docs/cost.md in one command: RetinaNet-R50 <-
# Swin-T at COCO training size (batch 8 of 800x1216, AMP) and PSPNet-R18-D8
# <- Swin-T at Cityscapes size (batch 8 of 512x1024, AMP), each with the
# authors' recipe and with the cost levers (distill_fraction=FRACTION,
# 0.25 by default: 2 of 8 images every step, and proto_head_grad=False),
# the deployed student with the AugmentedNeck plugin, and both phases of
# the two-stage recipes. Every row is one
# benchmark_cost.py run, so each ratio compares figures taken in the same
# process.
#
# On a GPU machine with the package installed (docs/get_started.md):
#   bash tools/analysis_tools/gpu_cost.sh work_dirs/gpu_cost
# A CPU smoke run of the same script:
#   DEVICE=cpu AMP= DET_SIZE="64 96" SEG_SIZE="64 128" ITERS=1 WARMUP=0 \
#     bash tools/analysis_tools/gpu_cost.sh /tmp/cost
# PYTHON names the interpreter (default: python on PATH).
set -euo pipefail
OUT=${1:-work_dirs/gpu_cost}
DEVICE=${DEVICE:-cuda}
AMP=${AMP---amp}
DET_SIZE=${DET_SIZE:-800 1216}
SEG_SIZE=${SEG_SIZE:-512 1024}
BATCH=${BATCH:-8}
FRACTION=${FRACTION:-0.25}
ITERS=${ITERS:-10}
WARMUP=${WARMUP:-3}
PYTHON=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)
DET=configs/det/prockd_swin-t_retinanet_r50_fpn_1x_coco_paper.py
FAST=configs/det/prockd_swin-t_retinanet_r50_fpn_1x_coco_frac-0.25-ownhead.py
AUG=configs/det/prockd_swin-t_retinanet_r50_fpn-augneck_1x_coco.py
SEG=configs/seg/prockd_swin-t_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py
# [ours] the recommended two-stage recipes: both phases and the whole
# recipe against the student's schedule
DET2=configs/det/prockd_swin-t_retinanet_r50_fpn_36e_coco.py
SEG2=configs/seg/prockd_swin-t_pspnet_r18-d8_4xb2-240k_cityscapes-512x1024.py
mkdir -p "$OUT"

bench() {  # NAME CONFIG SIZE [benchmark_cost.py options]
    local name=$1 config=$2 size=$3
    shift 3
    # shellcheck disable=SC2086  # SIZE and AMP are word lists on purpose
    "$PYTHON" "$HERE/benchmark_cost.py" "$config" --device "$DEVICE" $AMP \
        --size $size --batch "$BATCH" --iters "$ITERS" --warmup "$WARMUP" \
        --out "$OUT/$name.json" "$@" | tee "$OUT/$name.log"
}

bench 1_retinanet "$DET" "$DET_SIZE" --breakdown
bench 2_retinanet_fast "$FAST" "$DET_SIZE" \
    --cfg-options model.distill_fraction="$FRACTION"
bench 3_retinanet_augneck "$AUG" "$DET_SIZE"
bench 4_pspnet "$SEG" "$SEG_SIZE" --breakdown
bench 5_pspnet_fast "$SEG" "$SEG_SIZE" \
    --cfg-options model.distill_fraction="$FRACTION" model.proto_head_grad=False
bench 6_retinanet_two_stage "$DET2" "$DET_SIZE"
bench 7_pspnet_two_stage "$SEG2" "$SEG_SIZE"
"$PYTHON" "$HERE/cost_table.py" "$OUT"/*.json | tee "$OUT/table.md"
