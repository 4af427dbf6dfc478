#!/usr/bin/env bash
# Retrain the shipped default model (oct_srgan/weights/oct_srgan_x4.pt) on the shared Duke scans:
# preprocess (reference pairs, each input's gain/offset fitted) -> SRResNet stage, a fine-tune of the
# shipped weights with the intensity-faithful, mixed-degradation recipe -> export with its model card
# (three protocols, cross-validation figures from bench/crossval.py, no-reference measures on native
# scans of the test subjects and another device). From scratch: --set train.init_from=null.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/venv.sh"
cd "$ROOT"
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1000000000
DATA="${OCT_SRGAN_DATA:-$ROOT/../shared/data}"
OUT="${OCT_SRGAN_OUT:-$ROOT/outputs}"
cp oct_srgan/weights/oct_srgan_x4.pt "$OUT/base_x4.pt" 2>/dev/null || { mkdir -p "$OUT"; cp oct_srgan/weights/oct_srgan_x4.pt "$OUT/base_x4.pt"; }
oct-srgan preprocess "$DATA/oct/duke_bioptigen" --out "$OUT/duke" --reference average --seed 0 --overwrite --no-progress
oct-srgan train --config configs/oct_x4_srresnet.yaml --data "$OUT/duke" --out "$OUT/runs/oct_x4_srresnet" --overwrite \
  --set train.init_from="$OUT/base_x4.pt" "$@"
python bench/crossval.py --folds 3 --out "$OUT/cv" --set train.iterations=500 --set train.lr=4e-4 \
  --set "train.lr_milestones=[300,420]" --set train.val_interval=250
SCANS=()
for f in "$DATA"/oct/formats/octdl_bscan_rgb_channel_*.nii.gz "$DATA"/oct/duke_bioptigen/subject0{3,4}/{1,test}.tif; do
  SCANS+=(--scans "$f")
done
python -m oct_srgan.model_card "$OUT/runs/oct_x4_srresnet/generator.pt" "$OUT/duke" --out oct_srgan/weights \
  --cv "$OUT/cv/cv_summary.csv" "${SCANS[@]}"
